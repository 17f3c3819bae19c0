"""Shared helpers of the benchmark scripts: processes, /proc readings, ports, machine facts.

Importing it re-executes the script under the project virtualenv (``.venv``) when another
python runs it: that venv provides ``restate_sync``, whose local-process toolkit
(:mod:`restate_sync.restate_server.processes`: free ports, readiness, process groups) the
process helpers here are built on, and :class:`~restate_sync.restate_server.RestateServer`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PROJECT_PYTHON = REPO / ".venv" / "bin" / "python"
OFFICIAL_VENV = BENCH_DIR / ".venv-official"
OFFICIAL_PYTHON = OFFICIAL_VENV / "bin" / "python"
TS_DIR = BENCH_DIR / "ts"
OUT_DIR = BENCH_DIR / "out"  # raw results, logs, profiles (git-ignored)

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_project_python() -> None:
    """Re-exec this script under the project venv (which has restate_sync) when run by another python."""
    if Path(sys.prefix).resolve() == (REPO / ".venv").resolve():
        return
    if not PROJECT_PYTHON.exists():
        log("project virtualenv missing: running `make setup` at the repository root")
        subprocess.run(["make", "-C", str(REPO), "setup"], check=True)
    os.execv(str(PROJECT_PYTHON), [str(PROJECT_PYTHON), *sys.argv])


ensure_project_python()  # what follows needs restate_sync

from restate_sync.restate_server.processes import (  # noqa: E402
    LoggedProcess,
    stop_group,
    wait_listening,
)
from restate_sync.restate_server.processes import free_port as free_port  # noqa: E402  (for the scripts)

# ---------------------------------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'
    return data[data.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1] is ppid
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all of its live descendants."""
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its live descendants, plus cutime+cstime (their reaped children).

    From /proc/<pid>/stat fields 14-17, in clock ticks (all threads of a process included).
    """
    ticks = 0
    for p in process_tree(pid):
        fields = _stat_fields(p)
        if fields is None:
            continue
        # after "pid (comm) ": index 0 is field 3 (state); utime=14 → 11, stime 12, cutime 13, cstime 14
        ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def rss_bytes(pid: int, tree: bool = False) -> int:
    """Resident set size (VmRSS) of ``pid`` (and its descendants with ``tree``)."""
    total = 0
    for p in process_tree(pid) if tree else [pid]:
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


def peak_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# ---------------------------------------------------------------------------------------- processes


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0, what: str = "") -> None:
    """Wait until ``proc`` listens on loopback ``port`` (:class:`ProcessError` if it exits first)."""
    wait_listening(port, proc, timeout, what=what or repr(proc.args))


class Processes:
    """Processes started in their own session, each stopped by its own process group id."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logged: dict[int, LoggedProcess] = {}  # by pid

    def start(
        self, cmd: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path = REPO
    ) -> subprocess.Popen[bytes]:
        logged = LoggedProcess(cmd, log_path, env={**os.environ, **(env or {})}, cwd=cwd)
        proc = logged.start()
        self._logged[proc.pid] = logged
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL after ``timeout``; also for a process started elsewhere."""
        logged = self._logged.pop(proc.pid, None)
        if logged is not None:
            logged.stop(timeout)
        else:
            stop_group(proc, timeout)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.procs)):
            self.stop(proc)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so ``finally`` blocks stop every child process."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------- machine


def _cmd_version(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def machine_facts() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    facts = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "node": _cmd_version(["node", "--version"]),
        "wrk": _cmd_version(["wrk", "--version"]).split(" [")[0] if shutil.which("wrk") else "missing",
    }
    try:
        import restate_sync
        from restate_sync.restate_server import RESTATE_SERVER_VERSION, find_server_binary

        facts["restate_sync"] = restate_sync.__version__
        facts["restate-server"] = _cmd_version([find_server_binary(install=False), "--version"]) or (
            RESTATE_SERVER_VERSION
        )
    except Exception as exc:  # pragma: no cover - informational only
        facts["restate-server"] = f"? ({exc})"
    if OFFICIAL_PYTHON.exists():
        facts["restate-sdk (PyPI)"] = _cmd_version(
            [str(OFFICIAL_PYTHON), "-c", "import importlib.metadata as m; print(m.version('restate-sdk'))"]
        )
        facts["hypercorn"] = _cmd_version(
            [str(OFFICIAL_PYTHON), "-c", "import importlib.metadata as m; print(m.version('hypercorn'))"]
        )
    pkg = TS_DIR / "node_modules" / "@restatedev" / "restate-sdk" / "package.json"
    if pkg.exists():
        facts["@restatedev/restate-sdk (npm)"] = json.loads(pkg.read_text())["version"]
    return facts


def _os_name() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return platform.system()


def load_average() -> str:
    with contextlib.suppress(OSError), open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])
    return "?"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} GiB"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
