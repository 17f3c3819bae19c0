"""The limits an HTTP/2 connection enforces, in one object the server takes.

Every field is documented where it is declared; ``docs/limits.md`` lists them with what a client
sees when it hits one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "H2Limits"]


@dataclass(frozen=True, slots=True)
class H2Limits:
    max_concurrent_streams: int = 1000
    """SETTINGS_MAX_CONCURRENT_STREAMS we advertise; streams beyond it are refused (REFUSED_STREAM)."""
    max_header_list_size: int = 256 * 1024
    """SETTINGS_MAX_HEADER_LIST_SIZE we advertise (RFC 7541 sizes: name + value + 32 per field)."""
    stream_window: int = 4 * 1024 * 1024
    """Inbound flow-control window of every stream (SETTINGS_INITIAL_WINDOW_SIZE)."""
    connection_window: int = 16 * 1024 * 1024
    """Inbound flow-control window of the connection (raised from 65,535 by a WINDOW_UPDATE)."""
    reset_memory: int = 1024
    """How many ids of streams we reset are remembered, so frames the peer had in flight are ignored."""

    def __post_init__(self) -> None:
        for name in ("max_concurrent_streams", "max_header_list_size", "reset_memory"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"H2Limits.{name} must be a positive int, got {value!r}")
        for name in ("stream_window", "connection_window"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 65535 <= value <= 2**31 - 1:
                raise ValueError(f"H2Limits.{name} must be an int in [65535, 2^31-1], got {value!r}")

    @property
    def max_header_block(self) -> int:
        """A header block (HEADERS + CONTINUATION fragments) larger than this ends the connection."""
        return 2 * self.max_header_list_size


DEFAULT_LIMITS = H2Limits()
