"""The local-process toolkit (restate_sync.restate_server.processes), with real child processes."""

from __future__ import annotations

import math
import signal
import socket
import sys
from pathlib import Path

import pytest

from restate_sync.restate_server.processes import (
    ExitCleanup,
    LoggedProcess,
    ProcessError,
    accepts_connections,
    file_size,
    free_port,
    free_ports,
    port_is_free,
    tail_file,
    tail_lines,
    wait_until,
)

PY = sys.executable


# ---- wait_until --------------------------------------------------------------------------------


def test_wait_until_returns_the_first_truthy_value() -> None:
    answers = iter([0, None, "", "ready", "later"])
    assert wait_until(lambda: next(answers), timeout=5, interval=0) == "ready"


def test_wait_until_fails_with_what_it_waited_for() -> None:
    calls = []
    with pytest.raises(AssertionError, match=r"timed out after 0s waiting for the moon"):
        wait_until(lambda: calls.append(1), timeout=0, what="the moon")
    assert calls == [1], "the condition is tried at least once"


def test_wait_until_raises_the_callers_error_on_timeout() -> None:
    with pytest.raises(TimeoutError, match="custom"):
        wait_until(lambda: False, timeout=0, on_timeout=lambda: TimeoutError("custom"))


def test_an_error_in_the_condition_ends_the_wait() -> None:
    def boom() -> bool:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        wait_until(boom, timeout=60)


# ---- ports -------------------------------------------------------------------------------------


def test_free_ports_are_distinct_and_not_handed_out_again() -> None:
    first = free_ports(5)
    assert len(set(first)) == 5
    again = free_ports(5) + [free_port() for _ in range(5)]
    assert not set(first) & set(again)


def test_port_is_free_and_accepts_connections() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        assert not accepts_connections(port), "bound but not listening"
        listener.listen()
        assert accepts_connections(port)
    assert port_is_free(port)


# ---- logs --------------------------------------------------------------------------------------


def test_tail_file_keeps_the_last_non_empty_lines_since_a_mark(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("one\n\ntwo\n")
    mark = file_size(log)
    with log.open("a") as f:
        f.write("three\n\n  \nfour\nfive\n")
    assert tail_file(log, 2) == "four\nfive"
    assert tail_file(log, 10, since=mark) == "three\nfour\nfive"
    assert tail_file(log, 10) == "one\ntwo\nthree\nfour\nfive"
    assert tail_lines("a\n\nb\nc", 2) == "b\nc"


def test_tail_of_a_missing_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    assert file_size(missing) == 0
    assert tail_file(missing).startswith(f"<cannot read {missing}")


# ---- LoggedProcess -----------------------------------------------------------------------------


def test_a_logged_process_appends_its_output_after_a_banner(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "p.log"
    process = LoggedProcess([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"], log)
    process.start(banner="run 1").wait(30)
    process.start(banner="run 2").wait(30)
    assert process.starts == 2 and process.returncode == 0 and process.pid is None
    assert log.read_text().count("==== run ") == 2
    assert sorted(process.log_tail().splitlines()) == ["err", "out"], "only the current run"
    assert process.log_tail(since_start=False).splitlines()[0] == "==== run 1 ===="


def test_a_running_process_cannot_be_started_twice(tmp_path: Path) -> None:
    process = LoggedProcess([PY, "-c", "import time; time.sleep(60)"], tmp_path / "p.log", name="sleeper")
    process.start()
    try:
        with pytest.raises(ProcessError, match="sleeper is already running"):
            process.start()
    finally:
        process.kill()
    assert process.pid is None


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    # The leader starts a child (in its group) that listens; SIGTERM to the group ends both.
    port = free_port()
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-m', 'http.server', '--bind', '127.0.0.1', '{port}'])\n"
        "time.sleep(60)\n"
    )
    process = LoggedProcess([PY, "-c", script], tmp_path / "p.log")
    process.start()
    wait_until(lambda: accepts_connections(port), timeout=30, what="the child to listen")
    took = process.stop(grace=10)
    assert math.isfinite(took), "the leader exits on SIGTERM"
    assert process.returncode == -signal.SIGTERM
    wait_until(lambda: not accepts_connections(port), timeout=10, what="the child to be gone")


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = LoggedProcess([PY, "-c", script], tmp_path / "p.log")
    process.start()
    wait_until(lambda: "ignoring" in process.log_tail(), timeout=30, what="the handler to be installed")
    assert process.stop(grace=0.2) == math.inf
    assert process.returncode == -signal.SIGKILL
    assert process.stop() == 0.0, "stopping a stopped process is a no-op"


def test_wait_listening_fails_at_once_when_the_process_exits(tmp_path: Path) -> None:
    process = LoggedProcess(
        [PY, "-c", "import sys; print('cannot bind'); sys.exit(3)"], tmp_path / "p.log", name="server"
    )
    process.start()
    with pytest.raises(ProcessError, match=r"(?s)server exited with code 3 before listening.*cannot bind"):
        process.wait_listening(free_port(), timeout=60)


def test_wait_listening_returns_once_the_port_accepts(tmp_path: Path) -> None:
    port = free_port()
    process = LoggedProcess([PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)], tmp_path / "p.log")
    process.start()
    try:
        process.wait_listening(port, timeout=30)
        assert accepts_connections(port)
    finally:
        process.stop(grace=5)


def test_exit_cleanup_runs_for_what_is_still_registered() -> None:
    cleaned: list[str] = []
    registry: ExitCleanup[str] = ExitCleanup(cleaned.append)
    for name in ("closed", "left open", "also left"):
        registry.add(name)
    registry.discard("closed")
    registry.run()
    assert sorted(cleaned) == ["also left", "left open"]
    registry.run()
    assert len(cleaned) == 2, "each object is cleaned up once"
