"""The reused greenlets of the HTTP/2 streams' handlers."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from greenlet import getcurrent

from restate_sync.transport.workers import Workers

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def _run(workers: Workers, fn: Callable[[Any], object], arg: Any) -> None:
    done = Event()

    def call(value: Any) -> None:
        try:
            fn(value)
        finally:
            done.set()

    workers.spawn(call, arg)
    assert done.wait(timeout=5), "the call did not run"


def test_a_finished_greenlet_runs_the_next_call() -> None:
    workers = Workers()
    seen: list[object] = []
    _run(workers, lambda _: seen.append(getcurrent()), None)
    gevent.idle()  # the greenlet parks after its call returned
    assert workers.idle == 1
    _run(workers, lambda _: seen.append(getcurrent()), None)
    assert seen[0] is seen[1] and workers.idle in (0, 1)
    workers.close()


def test_each_call_starts_with_fresh_context_variables() -> None:
    workers = Workers()
    seen: list[str] = []

    def first(_: object) -> None:
        seen.append(VAR.get())
        VAR.set("left behind")  # never reset, as careless handler code might do

    _run(workers, first, None)
    gevent.idle()
    _run(workers, lambda _: seen.append(VAR.get()), None)
    assert seen == ["unset", "unset"]
    workers.close()


def test_at_most_max_idle_greenlets_stay_parked() -> None:
    workers = Workers(max_idle=2)
    gate = Event()
    started: list[int] = []

    def wait(i: int) -> None:
        started.append(i)
        gate.wait()

    for i in range(5):
        workers.spawn(wait, i)
    gevent.idle()
    assert sorted(started) == [0, 1, 2, 3, 4]
    gate.set()
    gevent.idle()
    gevent.idle()
    assert workers.idle == 2
    workers.close()


def test_close_ends_the_parked_greenlets_and_later_calls_still_run() -> None:
    workers = Workers()
    greenlets: list[Any] = []
    _run(workers, lambda _: greenlets.append(getcurrent()), None)
    gevent.idle()
    workers.close()
    gevent.idle()
    assert workers.idle == 0 and greenlets[0].dead
    ran: list[int] = []
    _run(workers, ran.append, 7)
    assert ran == [7]


def test_a_call_that_raises_ends_only_its_own_greenlet() -> None:
    workers = Workers()

    def fail(_: object) -> None:
        raise RuntimeError("escaped")

    failing = gevent.get_hub().print_exception
    gevent.get_hub().print_exception = lambda *args: None  # gevent would print the traceback
    try:
        workers.spawn(fail, None)
        gevent.idle()
    finally:
        gevent.get_hub().print_exception = failing
    assert workers.idle == 0
    ran: list[int] = []
    _run(workers, ran.append, 1)
    assert ran == [1]
    workers.close()


def test_a_parked_greenlet_holds_nothing_of_its_calls() -> None:
    import gc
    import weakref

    class Exchange:
        pass

    workers = Workers()
    exchange = Exchange()
    gone = weakref.ref(exchange)
    _run(workers, lambda _: None, exchange)  # the first call of a new greenlet
    del exchange
    gevent.idle()
    gc.collect()
    assert workers.idle == 1 and gone() is None, "the parked greenlet keeps its first call's argument"
    workers.close()
