"""The boundary between the transports and the SDK.

A transport (``transport/``: HTTP/2, HTTP/1.1, WSGI, ...) turns one HTTP request into an
:class:`Exchange` and hands it to a :data:`Handler` — in practice ``Endpoint.handle`` — on a
greenlet of its own. Everything a transport knows of the SDK is in this module, and everything the
SDK knows of a transport is the :class:`Exchange` interface:

* the request head (``method``, ``path``, lower-case ``headers``, whether it came over HTTP/2);
* the request body, delivered into the exchange's :class:`Inbox` as ``bytes`` chunks followed by
  :data:`EOF` — or :data:`DISCONNECTED` when the peer reset the stream or went away;
* the response: ``respond`` (head, optionally with a complete body), ``write`` (streamed body
  bytes) and ``close`` (end of the response).

The inbox is also the invocation driver's one input queue: the results of ``run`` blocks are put
into the same inbox, so the handler greenlet blocks in exactly one place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final, Protocol

import gevent
from gevent.hub import Waiter
from greenlet import getcurrent

from ._version import __version__

__all__ = ["DISCONNECTED", "EOF", "SERVER_HEADER", "Exchange", "Handler", "Inbox"]

SERVER_HEADER: Final = ("x-restate-server", f"restate-sync/{__version__}")
"""Sent with every response: the SDK's name and version."""


class _Signal:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


EOF: Final = _Signal("EOF")
"""Inbox item: the request body ended."""
DISCONNECTED: Final = _Signal("DISCONNECTED")
"""Inbox item: the stream was reset or the connection was lost."""


class Inbox:
    """Single-consumer queue the handler greenlet blocks on; any greenlet of the same hub may put.

    ``on_take``, if given, is told how many octets of ``bytes`` items the consumer has taken:
    that is how a transport learns how much of the request body was *consumed*, not merely
    queued, and gives flow-control credit back only for that. It is told in batches, as soon as
    ``tell_at`` octets taken are untold; :meth:`discard` drops what is left when the consumer is
    done and says how much it was, the octets taken and not told included. So a consumer holds
    back less than ``tell_at`` octets of credit, waiting or not: a transport picks ``tell_at``
    small enough against its windows that the peer never stalls on it (HTTP/2:
    ``H2Limits.credit_batch``).
    """

    __slots__ = ("_hub", "_items", "_untold", "_waiter", "on_disconnect", "on_take", "tell_at")

    def __init__(self, on_take: Callable[[int], None] | None = None, tell_at: int = 1) -> None:
        self._items: deque[Any] = deque()
        self._waiter: Waiter | None = None
        self._hub = gevent.get_hub()
        self._untold = 0  # octets of bytes items taken, not yet told to on_take
        #: told the octets of the bytes items taken, in batches (None: nobody wants to know)
        self.on_take = on_take
        #: untold octets that make on_take be told at once (1: every bytes item taken)
        self.tell_at = tell_at
        #: called (on the hub) when DISCONNECTED is put, for consumers busy elsewhere
        self.on_disconnect: Callable[[], None] | None = None

    def put(self, item: Any) -> None:
        self._items.append(item)
        if item is DISCONNECTED and self.on_disconnect is not None:
            self._hub.loop.run_callback(self.on_disconnect)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            hub = self._hub
            if getcurrent() is hub:
                waiter.switch(None)
            else:
                hub.loop.run_callback(waiter.switch, None)

    def get(self, timeout: float | None = None) -> Any:
        """Next item; blocks the calling greenlet. Returns ``None`` on timeout."""
        items = self._items
        if not items:
            waiter = Waiter()
            self._waiter = waiter
            if timeout is None:
                waiter.get()
            else:
                timer = self._hub.loop.timer(timeout)
                timer.start(waiter.switch, None)
                try:
                    waiter.get()
                finally:
                    timer.close()
            self._waiter = None
        return self.get_nowait()

    def get_nowait(self) -> Any:
        """Next item, or ``None`` if there is none."""
        items = self._items
        if not items:
            return None
        item = items.popleft()
        if item.__class__ is bytes:
            untold = self._untold = self._untold + len(item)
            if untold >= self.tell_at:
                self._tell()
        return item

    def _tell(self) -> None:
        untold = self._untold
        self._untold = 0
        if self.on_take is not None:
            self.on_take(untold)

    def discard(self) -> int:
        """Drop every queued item; returns the octets of the ``bytes`` items among them, plus
        those taken and not told to ``on_take`` yet."""
        dropped = self._untold
        self._untold = 0
        if self._items:
            dropped += sum(len(item) for item in self._items if item.__class__ is bytes)
            self._items.clear()
        return dropped


class Exchange(Protocol):
    """One HTTP request/response as a transport hands it to the SDK."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    http2: bool
    inbox: Inbox  # request body: bytes chunks, then EOF (or DISCONNECTED)

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        """Send the response head; with ``body`` also send it and end the response."""

    def write(self, data: bytes) -> None:
        """Send response body bytes (after ``respond`` without a body)."""

    def close(self) -> None:
        """End the response."""


Handler = Callable[[Exchange], None]
"""What a transport calls for every request, on a greenlet of its own (``Endpoint.handle``)."""
