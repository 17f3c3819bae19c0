"""The limits the HTTP/2 server enforces, in one object it takes (``H2Server(..., limits=...)``).

The defaults follow the servers users would otherwise put in front of a Python SDK — the ``h2``
library with hypercorn, and nginx — where they have an equivalent, and are chosen so that
restate-server's own client never runs into them: it pools connections, opens another one
before a connection's streams run out (recent versions cap a connection at 128 streams and
start a new one at 70% use; the scale test saw 116 connections for 10,000 invocations) and
evicts idle pooled connections after five minutes.
``docs/limits.md`` lists every limit with what a client sees when it hits one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .limitcheck import check_positive_fields

__all__ = ["DEFAULT_LIMITS", "H2Limits"]


@dataclass(frozen=True, slots=True)
class H2Limits:
    # ---- per stream and per header block
    max_concurrent_streams: int = 100
    """SETTINGS_MAX_CONCURRENT_STREAMS we advertise; a stream beyond it is refused (RST_STREAM
    REFUSED_STREAM, safe to retry). h2 and hypercorn: 100, nginx: 128."""
    max_header_list_size: int = 64 * 1024
    """SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce, counting every field (static-table
    references included) as name + value + 32 octets; beyond it GOAWAY ENHANCE_YOUR_CALM.
    h2/hypercorn: 64 KiB."""
    max_continuation_frames: int = 64
    """CONTINUATION frames allowed in one header block (empty ones included); beyond it GOAWAY
    ENHANCE_YOUR_CALM."""
    # ---- flow control and buffering
    stream_window: int = 4 * 1024 * 1024
    """Inbound flow-control window of every stream (SETTINGS_INITIAL_WINDOW_SIZE): request body
    octets a stream may have in flight that its invocation has not consumed yet."""
    connection_window: int = 16 * 1024 * 1024
    """Inbound flow-control window of the connection: unconsumed request body octets of all its
    streams together. The most memory one connection's request bodies can hold."""
    max_output_buffer: int = 1024 * 1024
    """Response octets queued for a connection whose peer does not read: beyond it the handlers'
    writes wait and the connection is not read from (no more PING/SETTINGS answers pile up)."""
    # ---- abuse
    max_premature_resets: int = 100
    """Streams the peer may reset before we answered them (CVE-2023-44487, "rapid reset"), net of
    the streams that completed normally; beyond it GOAWAY ENHANCE_YOUR_CALM."""
    reset_memory: int = 1024
    """How many ids of streams we reset are remembered, so frames the peer had in flight are ignored."""
    # ---- time (seconds; checked once a second)
    preface_timeout: float = 10.0
    """From accept to the client preface and its first SETTINGS frame; then the connection is closed."""
    head_timeout: float = 10.0
    """A request header block started (HEADERS without END_HEADERS) must be complete within this;
    otherwise GOAWAY ENHANCE_YOUR_CALM."""
    idle_timeout: float = 600.0
    """A connection with no open stream that received no frame for this long is closed with GOAWAY
    NO_ERROR. Longer than restate-server's own pool eviction (5 min), so the runtime closes its
    idle pooled connections first; a connection with an open stream is never idle."""
    send_timeout: float = 60.0
    """A send that makes no progress for this long (the peer stopped reading) closes the connection."""
    # ---- per server
    max_connections: int = 1000
    """Open connections per server process; at the cap the server stops accepting (the kernel's
    listen backlog holds new connections) until one closes, as nginx and gunicorn do."""

    def __post_init__(self) -> None:
        check_positive_fields(self)
        for name in ("stream_window", "connection_window"):
            value = getattr(self, name)
            if not 65535 <= value <= 2**31 - 1:
                raise ValueError(f"H2Limits.{name} must be in [65535, 2^31-1], got {value!r}")

    @property
    def credit_batch(self) -> int:
        """Request body octets an invocation consumes before the credit goes back (and when it
        ends): 16 KiB, less for small windows (a quarter of ``stream_window`` and of the
        connection window's share per stream), so the credit held back never stalls the peer."""
        share = self.connection_window // (4 * self.max_concurrent_streams)
        return max(1, min(16 * 1024, self.stream_window // 4, share))

    @property
    def max_header_block(self) -> int:
        """A header block (HEADERS + CONTINUATION fragments) larger than this ends the connection."""
        return 2 * self.max_header_list_size


DEFAULT_LIMITS = H2Limits()
