"""The gunicorn worker's second path to a stop: the signal wakeup pipe.

gunicorn makes ``Worker.PIPE`` the interpreter's signal wakeup fd; CPython's C-level handler writes
each caught signal's number into it. These tests write those bytes themselves, as the C handler
does, so the case where the Python handler did not run can be produced on purpose.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from restate_sync.transport.gunicorn_worker import Worker


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, msg: str, *args: Any) -> None:
        self.warnings.append(msg % args)


@pytest.fixture
def worker() -> Any:
    w: Any = object.__new__(Worker)  # the parts _wait_for_signal uses, without a gunicorn arbiter
    w.PIPE = os.pipe()
    for fd in w.PIPE:
        os.set_blocking(fd, False)
    w.alive = True
    w.pid = os.getpid()
    w.log = _Log()
    w._handled = set()
    yield w
    for fd in w.PIPE:
        os.close(fd)


def test_a_sigterm_whose_handler_did_not_run_stops_the_worker(worker: Any) -> None:
    os.write(worker.PIPE[1], bytes([signal.SIGTERM]))
    worker._wait_for_signal(10.0)
    assert worker.alive is False
    assert worker.log.warnings == [
        f"Worker (pid:{worker.pid}) got SIGTERM but its handler did not run; handling it now"
    ]
    assert worker._handled == {signal.SIGTERM}


def test_a_handled_sigterm_is_not_handled_twice(worker: Any) -> None:
    worker.handle_exit(signal.SIGTERM, None)  # what the Python handler does
    os.write(worker.PIPE[1], bytes([signal.SIGTERM]))
    worker._wait_for_signal(10.0)
    assert worker.alive is False
    assert worker.log.warnings == []


def test_other_bytes_in_the_pipe_do_not_stop_the_worker(worker: Any) -> None:
    os.write(worker.PIPE[1], bytes([signal.SIGUSR1, signal.SIGHUP]) + b"1")  # b"1": gunicorn's reloader
    worker._wait_for_signal(10.0)
    assert worker.alive is True
    assert worker.log.warnings == []
    assert not _readable(worker.PIPE[0]), "the pipe was not drained"


def test_without_a_signal_it_returns_after_the_timeout(worker: Any) -> None:
    worker._wait_for_signal(0.01)
    assert worker.alive is True
    assert worker.log.warnings == []


def _readable(fd: int) -> bool:
    try:
        os.read(fd, 1)
    except BlockingIOError:
        return False
    return True
