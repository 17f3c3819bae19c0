"""Local processes on loopback: free ports, bounded waits, process groups and log files.

The one toolkit behind :class:`~restate_sync.restate_server.RestateServer`, the test harnesses
(``restate_sync.testing``, the conformance port, the e2e tests) and the benchmark scripts:

* :func:`free_ports` / :func:`free_port` — free loopback ports, never handed out twice by this
  process within :data:`PORT_RESERVATION_SECONDS`; :func:`stable_free_ports`, the same but outside
  the kernel's ephemeral range (for servers that restart on their ports);
  :func:`port_is_free`, :func:`accepts_connections`;
* :func:`wait_until` — poll a condition, bounded by a timeout, with a clear error when it passes;
* :func:`kill_group`, :func:`stop_group` — signal a whole process group (a child started in its
  own session leads one), SIGTERM with a grace period, then SIGKILL;
* :func:`tail_file`, :func:`tail_lines`, :func:`file_size` — the last lines of a log;
* :class:`LoggedProcess` — one command in its own session, stdout and stderr appended to a log
  file, with readiness (:meth:`LoggedProcess.wait_listening`), stop/kill and the log's tail, and
  killed at interpreter exit if it was left running (:class:`ExitCleanup`).

Standard library only (``socket``, ``subprocess``, ``time``), so it works in plain threads and
under gevent monkey-patching alike.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = [
    "LOOPBACK",
    "PORT_RESERVATION_SECONDS",
    "STABLE_PORT_MIN",
    "ExitCleanup",
    "LoggedProcess",
    "ProcessError",
    "accepts_connections",
    "ephemeral_port_range",
    "file_size",
    "free_port",
    "free_ports",
    "kill_group",
    "port_is_free",
    "stable_free_ports",
    "stop_group",
    "tail_file",
    "tail_lines",
    "wait_listening",
    "wait_until",
]

T = TypeVar("T")
K = TypeVar("K")

LOOPBACK = "127.0.0.1"

PORT_RESERVATION_SECONDS = 120.0
"""How long a port handed out by :func:`free_ports` is not handed out again by this process."""

STABLE_PORT_MIN = 10_000
"""The lowest port :func:`stable_free_ports` hands out (below it live many well-known services)."""

_PICK_ATTEMPTS = 50
_STABLE_PICK_ATTEMPTS = 2_000
_DEFAULT_EPHEMERAL_RANGE = (32768, 60999)  # Linux's default
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOG_TAIL_LINES = 40
_TAIL_MAX_BYTES = 512 * 1024


class ProcessError(RuntimeError):
    """A managed process exited too early or did not become ready in time."""


# --------------------------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], T],
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
    *,
    on_timeout: Callable[[], BaseException] | None = None,
) -> T:
    """Poll ``condition`` every ``interval`` seconds until it returns something truthy; return it.

    After ``timeout`` seconds raises ``on_timeout()`` when given, else
    ``AssertionError("timed out after <timeout>s waiting for <what>")``. The condition is always
    tried at least once, and an exception it raises ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            if on_timeout is not None:
                raise on_timeout()
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------

_reserved_ports: dict[int, float] = {}
_ports_lock = threading.Lock()


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct free ports on ``host``, found by binding port 0 (all at once, so distinct).

    Ports handed out by this process in the last :data:`PORT_RESERVATION_SECONDS` are not handed
    out again, so that servers started concurrently from one process don't race each other for a
    port. (Another process can still take a port before its user binds it: callers that start a
    server on it retry on new ports when the bind fails.)
    """
    with _ports_lock:
        now = time.monotonic()
        _expire_reservations(now)
        for _ in range(_PICK_ATTEMPTS):
            socks: list[socket.socket] = []
            try:
                for _ in range(count):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.bind((host, 0))
                ports = [int(s.getsockname()[1]) for s in socks]
            finally:
                for s in socks:
                    s.close()
            if not any(p in _reserved_ports for p in ports):
                for p in ports:
                    _reserved_ports[p] = now
                return ports
        raise ProcessError(f"could not find {count} free port(s) on {host}")


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux: ``ip_local_port_range``).

    Elsewhere, or if it cannot be read, Linux's default ``(32768, 60999)``.
    """
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE_FILE.read_text().split()[:2])
    except (OSError, ValueError):
        return _DEFAULT_EPHEMERAL_RANGE
    return (low, high) if 0 < low <= high <= 65535 else _DEFAULT_EPHEMERAL_RANGE


def stable_free_ports(count: int, host: str = LOOPBACK, *, rng: random.Random | None = None) -> list[int]:
    """``count`` distinct free ports on ``host`` outside the kernel's ephemeral range.

    A server that is stopped and started again on its ports (a restarted cluster node, a killed
    restate-server) can find a port from :func:`free_ports` taken in between: those come from the
    ephemeral range, which the kernel also hands out as the local port of every outgoing
    connection. Ports picked here (at random from :data:`STABLE_PORT_MIN` up to the start of the
    ephemeral range, and above its end) are never taken that way. Like :func:`free_ports`, a port
    is not handed out twice by this process within :data:`PORT_RESERVATION_SECONDS`; another
    process may still bind one first, so callers retry on new ports when a first bind fails.
    """
    if count <= 0:
        return []
    low, high = ephemeral_port_range()
    spans = [(lo, hi) for lo, hi in ((STABLE_PORT_MIN, low - 1), (high + 1, 65535)) if lo <= hi]
    if not spans:
        raise ProcessError(f"no ports outside the ephemeral range {low}-{high} above {STABLE_PORT_MIN}")
    weights = [hi - lo + 1 for lo, hi in spans]
    pick = rng or random.SystemRandom()
    with _ports_lock:
        now = time.monotonic()
        _expire_reservations(now)
        chosen: list[int] = []
        for _ in range(_STABLE_PICK_ATTEMPTS):
            lo, hi = pick.choices(spans, weights)[0]
            port = pick.randint(lo, hi)
            if port in chosen or port in _reserved_ports or not port_is_free(port, host):
                continue
            chosen.append(port)
            if len(chosen) == count:
                for p in chosen:
                    _reserved_ports[p] = now
                return chosen
        raise ProcessError(f"could not find {count} free port(s) outside {low}-{high} on {host}")


def _expire_reservations(now: float) -> None:
    for port, when in list(_reserved_ports.items()):
        if now - when > PORT_RESERVATION_SECONDS:
            del _reserved_ports[port]


def free_port(host: str = LOOPBACK) -> int:
    """One free port on ``host`` (see :func:`free_ports`)."""
    return free_ports(1, host)[0]


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a listener could bind ``host:port`` now (with SO_REUSEADDR, as servers do)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def accepts_connections(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts a TCP connection on ``host:port`` right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# Process groups
# --------------------------------------------------------------------------------------------


def kill_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group ``pid`` leads; a group that is gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_group(proc: subprocess.Popen[Any], grace: float = 10.0, *, leader_only: bool = False) -> float:
    """Stop ``proc`` (the leader of its own process group) and everything left in its group.

    SIGTERM goes to the whole group, or with ``leader_only`` to the leader alone (like
    ``docker stop``); after ``grace`` seconds the group gets SIGKILL. Whatever is left of the
    group once the leader has exited is killed too. Returns the seconds the leader took to exit
    by itself: ``0.0`` if it had already exited, ``inf`` if it had to be killed.
    """
    if proc.poll() is not None:
        kill_group(proc.pid, signal.SIGKILL)  # the leader is gone; make sure nothing of its group lingers
        return 0.0
    started = time.monotonic()
    if leader_only:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    else:
        kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
        took = time.monotonic() - started
    except subprocess.TimeoutExpired:
        took = float("inf")
    kill_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    return took


# --------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------


def file_size(path: str | Path) -> int:
    """The size of ``path`` in bytes (0 if it does not exist): a mark for :func:`tail_file`."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def tail_lines(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of ``text``."""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def tail_file(
    path: str | Path, lines: int = _LOG_TAIL_LINES, *, since: int = 0, max_bytes: int = _TAIL_MAX_BYTES
) -> str:
    """The last ``lines`` non-empty lines of ``path``, of what was written after offset ``since``.

    Reads at most the last ``max_bytes`` of the file. A file that cannot be read gives a
    ``<cannot read ...>`` line instead of an error: this is for diagnostics.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(since, size - max_bytes))
            data = f.read()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return tail_lines(data.decode("utf-8", errors="replace"), lines)


# --------------------------------------------------------------------------------------------
# A process with a log file
# --------------------------------------------------------------------------------------------


def wait_listening(
    port: int,
    proc: subprocess.Popen[Any],
    timeout: float = 20.0,
    *,
    what: str = "process",
    host: str = LOOPBACK,
    log: Callable[[], str] | None = None,
) -> None:
    """Wait until ``host:port`` accepts connections while ``proc`` runs.

    Raises :class:`ProcessError` as soon as ``proc`` exits, or after ``timeout`` seconds; the
    message ends with ``log()`` (e.g. the tail of the process's log) when given.
    """

    def detail() -> str:
        return f"; log:\n{log()}" if log is not None else ""

    def listening() -> bool:
        if proc.poll() is not None:
            raise ProcessError(
                f"{what} exited with code {proc.returncode} before listening on {host}:{port}{detail()}"
            )
        return accepts_connections(port, host)

    wait_until(
        listening,
        timeout,
        0.05,
        on_timeout=lambda: ProcessError(f"{what} not listening on {host}:{port} after {timeout}s{detail()}"),
    )


class ExitCleanup(Generic[K]):
    """Objects to clean up at interpreter exit if they are still registered then.

    ``cleanup`` runs for each (errors suppressed), but only in the process that registered the
    object: a forked child leaves its parent's objects alone.
    """

    def __init__(self, cleanup: Callable[[K], object]) -> None:
        self._cleanup = cleanup
        self._owners: dict[K, int] = {}
        self._lock = threading.Lock()
        atexit.register(self.run)

    def add(self, obj: K) -> None:
        with self._lock:
            self._owners[obj] = os.getpid()

    def discard(self, obj: K) -> None:
        with self._lock:
            self._owners.pop(obj, None)

    def run(self) -> None:
        """Clean up (and forget) every object this process registered."""
        with self._lock:
            mine = [obj for obj, pid in self._owners.items() if pid == os.getpid()]
        for obj in mine:
            with contextlib.suppress(Exception):
                self._cleanup(obj)
            self.discard(obj)


def _stop_if_running(process: LoggedProcess) -> None:
    if process.is_running():  # one that exited by itself is not signalled
        process.stop(grace=0.5)


_left_running: ExitCleanup[LoggedProcess] = ExitCleanup(_stop_if_running)


class LoggedProcess:
    """One command in its own session, its stdout and stderr appended to ``log_path``.

    The process leads its own process group, so :meth:`kill` and :meth:`stop` reach whatever it
    forks, and only that. Every :meth:`start` writes a banner line to the log and remembers where
    the new run's output begins (:attr:`log_offset`), so :meth:`log_tail` shows the current run.
    It can be started again after it exited (same command, environment and log). One that is
    still running at interpreter exit is killed there, by the process that started it.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        log_path: str | Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        name: str | None = None,
    ) -> None:
        """``env`` None inherits this process's environment; ``name`` is used in messages."""
        self.cmd = [str(c) for c in cmd]
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.name = name or Path(self.cmd[0]).name
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_offset = 0
        self.started_at = 0.0

    # ---- state ---------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The pid (also the process group id) while the process runs, else None."""
        proc = self.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def returncode(self) -> int | None:
        proc = self.proc
        return proc.poll() if proc is not None else None

    def is_running(self) -> bool:
        return self.pid is not None

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, banner: str | None = None) -> subprocess.Popen[bytes]:
        """Start the command; ``banner`` (if given) is written to the log first, as a marker."""
        if self.is_running():
            raise ProcessError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            if banner:
                log.write(f"\n==== {banner} ====\n".encode())
                log.flush()
            self.log_offset = log.tell()
            self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # own process group: a group signal reaches it and only it
                close_fds=True,
            )
        self.starts += 1
        self.started_at = time.monotonic()
        _left_running.add(self)
        return self.proc

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the main process only (not its group)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the whole process group and reap the process.

        Raises :class:`subprocess.TimeoutExpired` if it is somehow still there after ``timeout``.
        """
        proc = self.proc
        if proc is None:
            return
        kill_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
        self._forget()

    def stop(self, grace: float = 10.0, *, leader_only: bool = False) -> float:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL (see :func:`stop_group`).

        Returns the seconds the process took to exit by itself (``inf`` if it had to be killed,
        ``0.0`` if it was not running).
        """
        proc = self.proc
        if proc is None:
            return 0.0
        try:
            return stop_group(proc, grace, leader_only=leader_only)
        finally:
            self._forget()

    def _forget(self) -> None:
        _left_running.discard(self)

    # ---- readiness and diagnostics -----------------------------------------------------------

    def wait_listening(self, port: int, timeout: float = 20.0, host: str = LOOPBACK) -> None:
        """Wait until ``host:port`` accepts connections (see :func:`wait_listening`)."""
        if self.proc is None:
            raise ProcessError(f"{self.name} was not started")
        wait_listening(
            port, self.proc, timeout, what=self.name, host=host, log=lambda: self.log_tail(_LOG_TAIL_LINES)
        )

    def log_tail(self, lines: int = _LOG_TAIL_LINES, since_start: bool = True) -> str:
        """The last ``lines`` non-empty lines of the log (of the current run by default)."""
        return tail_file(self.log_path, lines, since=self.log_offset if since_start else 0)

    def exited_error(self, what: str) -> ProcessError:
        """An error saying the process exited (``what``: when), with the tail of its log."""
        return ProcessError(
            f"{self.name} exited with code {self.returncode} {what}; log {self.log_path}:\n{self.log_tail()}"
        )

    def __repr__(self) -> str:
        return f"<LoggedProcess {self.name} pid={self.pid} log={self.log_path}>"
