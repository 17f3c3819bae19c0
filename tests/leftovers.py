"""No test may leave a process behind: a pytest plugin that checks at the end of the session.

At the start of the session every process the tests will start is marked: the environment
variable :data:`SESSION_ENV` gets a token unique to this session, and every child inherits it
(restate-server nodes, test-services, ``restate-sync`` subprocesses, forked workers: the harness
helpers drop only ``RESTATE_*``/``E2E_*`` variables). When the session finishes, every process
still running that carries the token in its environment, or that descends from this pytest
process, is left over: it is listed, killed, and the run fails.

Linux only (it reads ``/proc``); elsewhere it says so and checks nothing.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

SESSION_ENV = "PYTEST_RESTATE_SYNC_SESSION"
"""Not ``RESTATE_*``: restate-server's environment is built without inherited ``RESTATE_*``."""

GRACE_SECONDS = 10.0
"""How long processes that are on their way out get before they count as left over
(``LEFTOVER_GRACE_SECONDS`` in the environment overrides it)."""

_PROC = Path("/proc")
_token_key = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    token = uuid.uuid4().hex
    config.stash[_token_key] = token
    os.environ[SESSION_ENV] = token


def _state_and_ppid(pid: int) -> tuple[str, int] | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _command(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace").strip()[:300]


def leftover_processes(token: str, root: int | None = None) -> dict[int, str]:
    """Live processes (not zombies) carrying ``token`` or descending from ``root``: pid -> command."""
    root = os.getpid() if root is None else root
    marker = f"{SESSION_ENV}={token}".encode()
    parents: dict[int, int] = {}
    found: dict[int, str] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == root:
            continue
        info = _state_and_ppid(pid)
        if info is None or info[0] == "Z":
            continue
        parents[pid] = info[1]
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found[pid] = _command(pid)
    for pid in parents:
        ancestor, hops = parents.get(pid), 0
        while ancestor is not None and ancestor > 1 and hops < 64:
            if ancestor == root:
                found.setdefault(pid, _command(pid))
                break
            ancestor, hops = parents.get(ancestor), hops + 1
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    token = session.config.stash.get(_token_key, None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if token is None or not _PROC.is_dir():
        if reporter is not None:
            reporter.write_line("leftover-process check: not run (needs /proc)")
        return
    deadline = time.monotonic() + float(os.environ.get("LEFTOVER_GRACE_SECONDS", GRACE_SECONDS))
    left = leftover_processes(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = leftover_processes(token)
    if not left:
        return
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    lines = [f"  pid {pid}: {cmd}" for pid, cmd in sorted(left.items())]
    message = (
        f"{len(left)} process(es) started by the tests were still running at the end of the session "
        "(now killed):\n" + "\n".join(lines)
    )
    if reporter is not None:
        reporter.write_sep("=", "processes left behind", red=True)
        reporter.write_line(message)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
