"""The limits an HTTP/1.1 connection of the built-in server enforces, in one object.

``H2Server(..., http1_limits=Http1Limits(...))`` (and ``endpoint.start``/``serve``) take it; the
WSGI application has only the body limit (``endpoint.wsgi_app(max_body_size=...)``), the server in
front of it owns the connection. ``docs/limits.md`` lists every limit with what a client sees
when it hits one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .body import DEFAULT_MAX_BODY_SIZE
from .limitcheck import check_positive_fields

__all__ = ["DEFAULT_HTTP1_LIMITS", "Http1Limits"]


@dataclass(frozen=True, slots=True)
class Http1Limits:
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    """Largest request body: a larger content-length is answered 413 before any of it is read;
    a chunked body is cut off (413 if no response was sent yet) as soon as it crosses it."""
    max_head_size: int = 64 * 1024
    """Request line plus headers; beyond it 431 and the connection is closed. Also how far a
    pipelining client is read ahead while a response is being written."""
    head_timeout: float = 10.0
    """A request head must be complete within this many seconds of its first byte; then 408 and
    the connection is closed (slow-header clients)."""
    idle_timeout: float = 600.0
    """A keep-alive connection without a request for this long is closed. Longer than
    restate-server's own eviction of idle pooled connections, so the runtime closes them first."""
    body_timeout: float = 60.0
    """While a request body is incomplete, at most this many seconds may pass without a byte of
    it; then the request is abandoned and the connection closed."""
    send_timeout: float = 60.0
    """One response write that has not completed after this many seconds (the peer stopped
    reading) closes the connection."""

    def __post_init__(self) -> None:
        check_positive_fields(self)


DEFAULT_HTTP1_LIMITS = Http1Limits()
