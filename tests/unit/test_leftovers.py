"""The end-of-session check for left-over processes (tests/leftovers.py), run on an inner pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.leftovers import SESSION_ENV, leftover_processes

from ..waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = "from tests.leftovers import pytest_configure, pytest_sessionfinish\n"

LEAKY = """
import os, subprocess, sys, time

def test_leaks_a_child_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    print(f"LEAKED-SPAWNED {proc.pid}", flush=True)

def test_leaks_a_forked_child():
    pid = os.fork()
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    print(f"LEAKED-FORKED {pid}", flush=True)
"""

CLEAN = """
import subprocess, sys

def test_cleans_up_after_itself():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    proc.kill()
    proc.wait()
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_inner(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_inner.py").write_text(body)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEFTOVER_GRACE_SECONDS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_session_that_leaves_processes_behind_fails_and_they_are_killed(tmp_path: Path) -> None:
    result = run_inner(tmp_path, LEAKY)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    spawned = int(re.search(r"LEAKED-SPAWNED (\d+)", out).group(1))  # type: ignore[union-attr]
    forked = int(re.search(r"LEAKED-FORKED (\d+)", out).group(1))  # type: ignore[union-attr]
    assert "processes left behind" in out and "2 process(es) started by the tests" in out
    assert f"pid {spawned}:" in out and f"pid {forked}:" in out
    wait_until(lambda: not alive(spawned) and not alive(forked), timeout=10, what="leftovers to be killed")


def test_a_clean_session_passes(tmp_path: Path) -> None:
    result = run_inner(tmp_path, CLEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "processes left behind" not in result.stdout


def test_this_session_is_marked_and_has_nothing_left_over_yet() -> None:
    token = os.environ[SESSION_ENV]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in leftover_processes(token)
    finally:
        child.kill()
        child.wait()
    assert child.pid not in leftover_processes(token)
