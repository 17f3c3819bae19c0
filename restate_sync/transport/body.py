"""Request bodies read incrementally into an exchange's inbox, under a size limit.

The two request/response transports share this: the built-in HTTP/1.1 server (:mod:`.http1`,
which reads the socket through h11) and the WSGI application (:mod:`.wsgi`, which reads
``wsgi.input``). Both

* refuse a request whose declared ``content-length`` is above the limit before reading any of it
  (:func:`declared_length`, :func:`too_large`);
* start reading the body only once the endpoint accepted the request (routing, request identity
  and content negotiation happen on the head), and feed it to the inbox chunk by chunk through a
  :class:`BodyFeed`, which stops with :class:`BodyTooLarge` as soon as the bytes received cross the
  limit — before they are queued, so at most ``limit`` bytes of one request are ever held.

Restate's runtime sends the whole invocation journal as one request body in request/response
mode, so the limit bounds the journal a deployment accepts over HTTP/1.1. The default is twice
restate-server's default message size limit (32 MiB, ``networking.message-size-limit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from ..exchange import EOF, SERVER_HEADER, Inbox

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "BodyFeed",
    "BodyTooLarge",
    "declared_length",
    "pump",
    "too_large",
]

DEFAULT_MAX_BODY_SIZE: Final = 64 * 1024 * 1024
"""Largest request body accepted over HTTP/1.1 and WSGI, in bytes."""

READ_SIZE: Final = 65536

# at most this many digits in a content-length (a 1 EiB body still fits)
_MAX_LENGTH_DIGITS = 19


class BodyTooLarge(Exception):
    """The request body crossed the size limit (the client is answered 413, or cut off)."""

    def __init__(self, limit: int, received: int) -> None:
        super().__init__(f"request body of more than {limit} bytes (received {received} so far)")
        self.limit = limit
        self.received = received


def declared_length(value: str | None) -> int | None:
    """The ``content-length`` of a request, None if absent; ``ValueError`` unless ASCII digits."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > _MAX_LENGTH_DIGITS or not (text.isascii() and text.isdigit()):
        raise ValueError(f"malformed content-length {value[:40]!r}")
    return int(text)


def too_large(limit: int) -> tuple[int, list[tuple[str, str]], bytes]:
    """The 413 response (status, headers, body) for a body above ``limit`` bytes."""
    message = (
        f"request body larger than the endpoint's limit of {limit} bytes; raise max_body_size "
        "(see docs/limits.md) or use HTTP/2, which streams the journal\n"
    )
    return 413, [("content-type", "text/plain; charset=utf-8"), SERVER_HEADER], message.encode("utf-8")


class BodyFeed:
    """Puts request body chunks into an inbox, counting them against ``limit``; then ``EOF``."""

    __slots__ = ("ended", "inbox", "limit", "received")

    def __init__(self, inbox: Inbox, limit: int) -> None:
        self.inbox = inbox
        self.limit = limit
        self.received = 0
        self.ended = False

    def feed(self, data: bytes) -> None:
        """Queue ``data``; raises :class:`BodyTooLarge` (queueing nothing) once past the limit."""
        if not data:
            return
        received = self.received + len(data)
        if received > self.limit:
            raise BodyTooLarge(self.limit, received)
        self.received = received
        self.inbox.put(data)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.inbox.put(EOF)

    def room(self) -> int:
        """How many more bytes may arrive before the limit is crossed."""
        return self.limit - self.received


def pump(read: Callable[[int], bytes], feed: BodyFeed, length: int | None) -> bool:
    """Read a body with ``read(n)`` (``b""`` at its end) into ``feed``; True once it ended.

    ``length`` is the declared content-length, if any: no more than that is read, and a body that
    ends before it is incomplete (False: the client went away; nothing more is queued). Without
    one, reads go on until ``read`` returns ``b""``. Each read asks for at most one byte more than
    the limit leaves room for, so crossing it never reads a large block past it.
    """
    remaining = length
    while remaining is None or remaining > 0:
        size = READ_SIZE if remaining is None else min(READ_SIZE, remaining)
        data = read(min(size, feed.room() + 1))
        if not data:
            if remaining is not None:
                return False
            break
        feed.feed(data)
        if remaining is not None:
            remaining -= len(data)
    feed.end()
    return True
