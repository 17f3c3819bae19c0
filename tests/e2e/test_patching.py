"""Blocking I/O in ``run`` steps, in every embedding mode, with and without monkey-patching.

Each mode serves the endpoint in a process of its own (patching is per process) to a fresh
restate-server. 20 invocations are sent at once; each one's ``run`` step does a socket round trip
to a local server that answers after 0.5 s (:class:`DelayedEcho`, which records when every
exchange began and ended).

* Patched, the round trips overlap: all 20 invocations finish in under 2.5 s.
* Unpatched, one blocked round trip blocks the whole process: the local server never sees two
  exchanges at once, the 20 take at least 20 × 0.5 s, and the process logged the warning.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from restate_sync.restate_server.processes import LoggedProcess, free_port

from .embedding import MODES, ROOT, DelayedEcho, call_concurrently, served_and_registered

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

COUNT = 20
DELAY = 0.5
BOUND = 2.5
WARNING = "the socket module is not monkey-patched"


@pytest.fixture(scope="module")
def echo():
    with DelayedEcho(DELAY) as server:
        yield server


@pytest.mark.parametrize("mode", list(MODES))
def test_blocking_io_in_run_steps_is_concurrent_only_when_patched(
    mode: str, echo: DelayedEcho, tmp_path: Path, always_suspend: bool
) -> None:
    if always_suspend:
        pytest.skip(
            "measures concurrency, the same with every await suspending; run without --always-suspend"
        )
    address = list(echo.address)

    with served_and_registered(mode, tmp_path, patched=True) as (served, client):
        assert client.call("Embedded", "greet", "warm-up") == "HELLO, WARM-UP!"
        echo.reset()
        results, took = call_concurrently(client, COUNT, "round_trip", address)
        assert results == ["pong"] * COUNT
        assert took < BOUND, (
            f"{mode}, patched: {COUNT} round trips of {DELAY}s took {took:.2f}s "
            f"(at most {echo.peak_overlap()} overlapped)"
        )
        assert WARNING not in served.log()

    with served_and_registered(mode, tmp_path, patched=False) as (served, client):
        assert client.call("Embedded", "greet", "warm-up") == "HELLO, WARM-UP!"
        echo.reset()
        results, took = call_concurrently(client, COUNT, "round_trip", address)
        assert results == ["pong"] * COUNT
        assert echo.peak_overlap() == 1, f"{mode}, unpatched: round trips overlapped"
        assert took >= COUNT * DELAY, f"{mode}, unpatched: {took:.2f}s, not serialized"
        log = served.log()
        assert log.count(WARNING) == 1, log[-3000:]


@pytest.mark.parametrize("no_patch", [False, True], ids=["patched", "no-patch"])
def test_restate_sync_serve_patches_unless_told_not_to(no_patch: bool, tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "restate_sync.cli", "serve", "examples/greeter.py:endpoint"]
    cmd += ["--bind", f"127.0.0.1:{port}"] + (["--no-patch"] if no_patch else [])
    process = LoggedProcess(cmd, tmp_path / "serve.log", cwd=ROOT, name="restate-sync serve")
    process.start()
    try:
        process.wait_listening(port, timeout=30)
    finally:
        process.stop()
    assert (WARNING in process.log_path.read_text()) is no_patch
