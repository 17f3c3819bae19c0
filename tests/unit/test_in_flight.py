"""InFlight counts the requests a handler is serving; drain waits (bounded) until there are none."""

from __future__ import annotations

from typing import Any

import gevent
from gevent.event import Event

from restate_sync.transport.serving import InFlight


def _held(release: Event) -> tuple[InFlight, list[Any]]:
    in_flight = InFlight(lambda exchange: release.wait(30))
    greenlets = [gevent.spawn(in_flight.handle, object()) for _ in range(3)]
    with gevent.Timeout(5):
        while in_flight.count < 3:  # until all three are inside the handler
            gevent.sleep(0)
    return in_flight, greenlets


def test_drain_returns_true_once_the_requests_end_and_beats_meanwhile() -> None:
    release = Event()
    in_flight, greenlets = _held(release)
    assert in_flight.count == 3
    beats: list[int] = []

    def heartbeat() -> None:
        beats.append(in_flight.count)
        if len(beats) == 2:
            release.set()  # the requests end while drain waits

    assert in_flight.drain(30, heartbeat=heartbeat) is True
    assert in_flight.count == 0
    assert beats[:2] == [3, 3]
    gevent.joinall(greenlets, timeout=5, raise_error=True)


def test_drain_gives_up_after_its_timeout() -> None:
    release = Event()
    in_flight, greenlets = _held(release)
    try:
        assert in_flight.drain(0.05) is False
        assert in_flight.count == 3
    finally:
        release.set()
        gevent.joinall(greenlets, timeout=5, raise_error=True)
    assert in_flight.drain(0) is True  # nothing in flight: at once, whatever the timeout


def test_a_failing_handler_is_not_counted_forever() -> None:
    def fail(exchange: Any) -> None:
        raise RuntimeError("boom")

    in_flight = InFlight(fail)
    greenlet = gevent.spawn(in_flight.handle, object())
    greenlet.join(5)
    assert isinstance(greenlet.exception, RuntimeError)
    assert in_flight.count == 0
    assert in_flight.drain(0) is True
