"""Reused greenlets for the HTTP/2 streams' handlers.

A new greenlet per stream costs more than the rest of a small invocation's transport work: on
CPython 3.11+ each greenlet gets its own frame stack (a 16 KiB ``mmap``, and its ``munmap`` when
the greenlet ends), besides gevent's bookkeeping. :class:`Workers` keeps the greenlets that
finished a call parked, at most ``max_idle`` of them, and hands them the next call.

Each call runs in a fresh :class:`contextvars.Context`, as it would on a greenlet of its own, so
nothing a handler sets in a context variable is seen by the next one.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.hub import Waiter

__all__ = ["DEFAULT_MAX_IDLE", "Workers"]

DEFAULT_MAX_IDLE = 128
"""Parked greenlets kept for later calls (each holds about 20 KiB); more finish and end."""


class Workers:
    """Runs ``fn(arg)`` calls on greenlets of the current hub, reusing the ones that finished.

    ``fn`` is expected to handle its exceptions (an escaping one ends its greenlet, which gevent
    reports). :meth:`close` ends the parked greenlets; calls spawned after it get greenlets that
    end with their call.
    """

    __slots__ = ("_closed", "_idle", "_loop", "max_idle")

    def __init__(self, max_idle: int = DEFAULT_MAX_IDLE) -> None:
        self.max_idle = max_idle
        self._idle: list[Waiter] = []
        self._closed = False
        self._loop: Any = None  # the hub's loop, known once a greenlet ran (servers start on their hub)

    @property
    def idle(self) -> int:
        """Greenlets parked for the next call."""
        return len(self._idle)

    def spawn(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` soon, on a parked greenlet if there is one."""
        idle = self._idle
        if idle:
            self._loop.run_callback(idle.pop().switch, (fn, arg))
        else:
            # the first call goes in a list the greenlet empties: gevent keeps a greenlet's
            # arguments as long as it runs, and this one runs for many calls
            gevent.spawn(self._work, [fn, arg])

    def _work(self, first: list[Any]) -> None:
        fn, arg = first
        first.clear()
        idle = self._idle
        if self._loop is None:
            self._loop = gevent.get_hub().loop
        while True:
            contextvars.Context().run(fn, arg)
            del fn, arg  # what the call referred to is freed now, not when the next one comes
            if self._closed or len(idle) >= self.max_idle:
                return
            waiter = Waiter()
            idle.append(waiter)
            try:
                fn, arg = waiter.get()
            except GreenletExit:  # close()
                return

    def close(self) -> None:
        """End the parked greenlets (each at the hub's next turn)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for waiter in idle:
            self._loop.run_callback(waiter.throw, GreenletExit)
