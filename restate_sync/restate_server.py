"""Find, install and run a real ``restate-server`` process (standard library only).

The binary is looked up in this order (:func:`find_server_binary`):

1. ``RESTATE_SERVER_BIN`` — an explicit path, which must exist and be executable;
2. ``restate-server`` on ``PATH``, but only when ``restate-server --version`` reports
   :data:`RESTATE_SERVER_VERSION`;
3. the cache directory ``${RESTATE_SYNC_CACHE:-${XDG_CACHE_HOME:-~/.cache}/restate_sync}/
   restate-server-<version>/``, which is filled on demand with
   ``npm install @restatedev/restate-server@<version>`` (atomically: npm installs into a temporary
   directory next to it, which is then renamed into place under a file lock).

:class:`RestateServer` runs one single-node server on loopback, on free ports, with its own data
directory, configured through environment variables only::

    with RestateServer() as server:
        server.register_deployment("http://127.0.0.1:9080")
        print(server.ingress_url)

Command line (used by the Makefile / CI to pre-install the binary)::

    python -m restate_sync.restate_server install   # installs if needed, prints the binary path
    python -m restate_sync.restate_server path      # prints the binary path, never installs

Everything here uses only the standard library (``subprocess``, ``socket``, ``time``), so it
works in plain threads and under gevent monkey-patching alike.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import http.client
import json
import logging
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from .client import AdminClient, AdminError, IngressClient

__all__ = [
    "RESTATE_SERVER_VERSION",
    "RestateServer",
    "RestateServerError",
    "ServerBinaryNotFound",
    "cache_dir",
    "find_server_binary",
    "install_server",
    "main",
]

RESTATE_SERVER_VERSION = "1.7.12"
"""The one restate-server version this project pins."""

NPM_PACKAGE = "@restatedev/restate-server"

logger = logging.getLogger("restate_sync.restate_server")

_LOOPBACK = "127.0.0.1"
_NODE_NAME = "restate-sync"
_INSTALL_LOCK_TIMEOUT = 900.0
_NPM_TIMEOUT = 600.0
_LOG_TAIL_LINES = 40


class RestateServerError(RuntimeError):
    """restate-server could not be found, installed, started or stopped."""


class ServerBinaryNotFound(RestateServerError):
    """No usable restate-server binary (and installing one was not allowed or failed)."""


# --------------------------------------------------------------------------------------------
# Finding and installing the binary
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The cache root: ``$RESTATE_SYNC_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/restate_sync``."""
    explicit = os.environ.get("RESTATE_SYNC_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "restate_sync"


def _npm_platform() -> str:
    """The ``<os>-<arch>`` suffix of the npm platform package, as node would name it."""
    system = sys.platform
    if system.startswith("linux"):
        os_name = "linux"
    elif system == "darwin":
        os_name = "darwin"
    else:
        raise ServerBinaryNotFound(
            f"restate-server is published on npm for linux and darwin only, not for {system!r}"
        )
    machine = platform.machine().lower()
    arch = {
        "x86_64": "x64",
        "amd64": "x64",
        "x64": "x64",
        "aarch64": "arm64",
        "arm64": "arm64",
        "armv8": "arm64",
        "armv8l": "arm64",
    }.get(machine)
    if arch is None:
        raise ServerBinaryNotFound(
            f"restate-server is published on npm for x64 and arm64 only, not {machine!r}"
        )
    return f"{os_name}-{arch}"


def _binary_in(prefix: Path) -> Path:
    """Where ``npm install --prefix <prefix>`` puts the native binary for this platform."""
    return (
        prefix
        / "node_modules"
        / "@restatedev"
        / f"restate-server-{_npm_platform()}"
        / "bin"
        / "restate-server"
    )


def _is_executable_file(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


_version_cache: dict[tuple[str, float, int], str | None] = {}
_version_cache_lock = threading.Lock()


def _binary_version(path: str | Path) -> str | None:
    """The version ``<path> --version`` reports (``restate-server 1.7.12`` → ``1.7.12``), or None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    cache_key = (str(path), st.st_mtime, st.st_size)
    with _version_cache_lock:
        if cache_key in _version_cache:
            return _version_cache[cache_key]
    version: str | None = None
    try:
        out = subprocess.run(
            [str(path), "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        words = out.stdout.strip().split()
        if out.returncode == 0 and words:
            version = words[-1].lstrip("v")
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("could not run %s --version: %s", path, exc)
    with _version_cache_lock:
        _version_cache[cache_key] = version
    return version


def find_server_binary(install: bool = True) -> str:
    """Return the path of a restate-server binary of the pinned version.

    Looks at ``RESTATE_SERVER_BIN``, then ``restate-server`` on ``PATH`` (only if it reports
    :data:`RESTATE_SERVER_VERSION`), then the cache directory; if none is there and ``install`` is
    true, installs it into the cache with npm (see :func:`install_server`).

    Raises :class:`ServerBinaryNotFound` with an explanation when nothing usable is found.
    """
    explicit = os.environ.get("RESTATE_SERVER_BIN")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.exists():
            raise ServerBinaryNotFound(f"RESTATE_SERVER_BIN={explicit!r} does not exist")
        if not _is_executable_file(path):
            raise ServerBinaryNotFound(f"RESTATE_SERVER_BIN={explicit!r} is not an executable file")
        return str(path.resolve())

    on_path = shutil.which("restate-server")
    if on_path:
        version = _binary_version(on_path)
        if version == RESTATE_SERVER_VERSION:
            return on_path
        logger.info(
            "skipping restate-server on PATH at %s: it reports version %s, the pin is %s",
            on_path,
            version or "<unknown>",
            RESTATE_SERVER_VERSION,
        )

    cached = _binary_in(cache_dir() / f"restate-server-{RESTATE_SERVER_VERSION}")
    if _is_executable_file(cached):
        return str(cached)
    if not install:
        raise ServerBinaryNotFound(
            f"restate-server {RESTATE_SERVER_VERSION} not found: set RESTATE_SERVER_BIN, put it on PATH, "
            f"or run `python -m restate_sync.restate_server install` (would install into {cached.parents[4]})"
        )
    return install_server()


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path``; yields False where file locks are unavailable.

    Polls a non-blocking lock rather than blocking in ``flock`` so that a gevent hub is not stalled.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield False
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    yield False  # e.g. some network file systems; the atomic rename still protects us
                    return
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
            if time.monotonic() >= deadline:
                raise ServerBinaryNotFound(
                    f"timed out after {timeout:.0f}s waiting for the install lock {path}"
                )
            if not announced:
                logger.info("waiting for another process installing restate-server (lock %s)", path)
                announced = True
            time.sleep(0.2)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def install_server(version: str = RESTATE_SERVER_VERSION, cache: str | Path | None = None) -> str:
    """Install restate-server ``version`` with npm into the cache (if not there) and return its path.

    npm installs into a temporary directory beside ``restate-server-<version>/``, which is renamed
    into place only once the binary is verified, under an exclusive file lock; an interrupted or
    concurrent install therefore never leaves a broken cache entry behind.
    """
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    final = root / f"restate-server-{version}"
    binary = _binary_in(final)
    if _is_executable_file(binary):
        return str(binary)
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / f".restate-server-{version}.lock", _INSTALL_LOCK_TIMEOUT) as locked:
        if _is_executable_file(binary):  # another process finished while we waited
            return str(binary)
        if locked:  # whoever held the lock before is done: any temporary directory left is stale
            for stale in root.glob(f".restate-server-{version}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
        npm = shutil.which("npm")
        if npm is None:
            raise ServerBinaryNotFound(
                f"restate-server {version} is not installed and npm is not on PATH; install Node.js/npm, "
                "or set RESTATE_SERVER_BIN to a restate-server binary"
            )
        tmp = Path(tempfile.mkdtemp(prefix=f".restate-server-{version}.tmp-", dir=root))
        tmp.chmod(0o755)  # mkdtemp makes it 0700; the cache entry may be shared
        try:
            cmd = [
                npm,
                "install",
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--ignore-scripts",
                "--no-update-notifier",
                "--prefix",
                str(tmp),
                f"{NPM_PACKAGE}@{version}",
            ]
            logger.info("installing %s@%s with npm into %s", NPM_PACKAGE, version, final)
            started = time.monotonic()
            try:
                proc = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    text=True,
                    timeout=_NPM_TIMEOUT,
                    check=False,
                    cwd=tmp,
                )
            except subprocess.TimeoutExpired as exc:
                raise ServerBinaryNotFound(f"`{' '.join(cmd)}` timed out after {_NPM_TIMEOUT:.0f}s") from exc
            if proc.returncode != 0:
                raise ServerBinaryNotFound(
                    f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n"
                    f"{_tail(proc.stderr or proc.stdout)}"
                )
            tmp_binary = _binary_in(tmp)
            if not _is_executable_file(tmp_binary):
                raise ServerBinaryNotFound(
                    f"npm installed {NPM_PACKAGE}@{version} but {tmp_binary.relative_to(tmp)} is missing "
                    f"(no binary published for {_npm_platform()}?); npm said:\n{_tail(proc.stderr)}"
                )
            got = _binary_version(tmp_binary)
            if got != version:
                raise ServerBinaryNotFound(
                    f"the installed restate-server reports version {got!r}, expected {version}"
                )
            if final.exists():  # a broken leftover (no binary in it): move it out of the way first
                trash = Path(tempfile.mkdtemp(prefix=f".restate-server-{version}.tmp-old-", dir=root))
                os.rename(final, trash / "old")
                shutil.rmtree(trash, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:
                if _is_executable_file(binary):  # lost a race against an installer without the lock
                    return str(binary)
                raise
            logger.info(
                "installed restate-server %s in %.1fs: %s", version, time.monotonic() - started, binary
            )
            return str(binary)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Running a server
# --------------------------------------------------------------------------------------------

_live_servers: set[RestateServer] = set()
_live_lock = threading.Lock()
_reserved_ports: dict[int, float] = {}
_ports_lock = threading.Lock()
_PORT_RESERVATION_SECONDS = 120.0


def _pick_free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, found by binding port 0 (all at once, so distinct).

    Ports handed out by this process recently are not handed out again, so that servers started
    concurrently from one process don't race each other for the same port.
    """
    with _ports_lock:
        now = time.monotonic()
        for port, when in list(_reserved_ports.items()):
            if now - when > _PORT_RESERVATION_SECONDS:
                del _reserved_ports[port]
        for _ in range(50):
            socks: list[socket.socket] = []
            try:
                for _ in range(count):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    socks.append(s)
                    s.bind((_LOOPBACK, 0))
                ports = [s.getsockname()[1] for s in socks]
            finally:
                for s in socks:
                    s.close()
            if not any(p in _reserved_ports for p in ports):
                for p in ports:
                    _reserved_ports[p] = now
                return ports
        raise RestateServerError("could not find free loopback ports")


def _port_is_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now (with SO_REUSEADDR, as restate does)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((_LOOPBACK, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@atexit.register
def _cleanup_at_exit() -> None:
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        if server._owner_pid != os.getpid():  # a forked child must not kill its parent's servers
            continue
        logger.warning("restate-server (pid %s) was not closed; stopping it at exit", server.pid)
        with contextlib.suppress(Exception):
            server.close(timeout=5)


class RestateServer:
    """One single-node restate-server on loopback, with free ports and its own data directory.

    Use it as a context manager (``__enter__`` starts it and waits until it is healthy,
    ``__exit__`` closes it), or call :meth:`start` and :meth:`close` yourself. The process runs in
    its own process group and is also stopped at interpreter exit if it was never closed.
    """

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        env: Mapping[str, str] | None = None,
        partitions: int = 2,
        log_file: str | None = None,
        startup_timeout: float = 30.0,
        binary: str | None = None,
        ingress_port: int = 0,
        admin_port: int = 0,
        node_port: int = 0,
    ) -> None:
        """Configure (but do not start) a server.

        ``data_dir`` None means a fresh temporary directory, removed by :meth:`close`. ``env``
        adds server environment variables (e.g. ``RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT``);
        inherited ``RESTATE_*`` variables are not passed on, so runs stay hermetic. ``binary``
        overrides :func:`find_server_binary`; a port of 0 means "pick a free one".
        """
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        self._owns_data_dir = data_dir is None
        self._data_dir: Path | None = Path(data_dir).resolve() if data_dir is not None else None
        self._extra_env = dict(env or {})
        self.partitions = partitions
        self._log_file = Path(log_file).resolve() if log_file is not None else None
        self.startup_timeout = startup_timeout
        self._binary = binary
        self._ports: dict[str, int] = {"ingress": ingress_port, "admin": admin_port, "node": node_port}
        self._explicit_ports = {name for name, port in self._ports.items() if port}
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._ever_healthy = False
        self._owner_pid = os.getpid()
        self._lock = threading.RLock()

    # ---- properties -----------------------------------------------------------------------

    @property
    def data_dir(self) -> str:
        """The server's base directory (created on first :meth:`start` when it was not given)."""
        if self._data_dir is None:
            raise RestateServerError("RestateServer not started yet: no data dir")
        return str(self._data_dir)

    @property
    def log_path(self) -> str:
        """The file the server's stdout and stderr go to (appended to across restarts)."""
        if self._log_file is not None:
            return str(self._log_file)
        return os.path.join(self.data_dir, "restate-server.log")

    @property
    def ingress_port(self) -> int:
        return self._port("ingress")

    @property
    def admin_port(self) -> int:
        return self._port("admin")

    @property
    def node_port(self) -> int:
        return self._port("node")

    @property
    def ingress_url(self) -> str:
        """``http://127.0.0.1:<ingress port>``."""
        return f"http://{_LOOPBACK}:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:<admin port>``."""
        return f"http://{_LOOPBACK}:{self.admin_port}"

    @property
    def pid(self) -> int | None:
        """The pid of the running server process (also its process group id), or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def binary(self) -> str:
        """The restate-server binary used (resolved on first start)."""
        if self._binary is None:
            self._binary = find_server_binary(install=True)
        return self._binary

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self.pid is not None

    def _port(self, name: str) -> int:
        port = self._ports[name]
        if not port:
            raise RestateServerError("RestateServer not started yet: no ports assigned")
        return port

    # ---- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> RestateServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self, wait: bool = True) -> RestateServer:
        """Start the server process; with ``wait`` (default) block until it is healthy.

        The first start picks the ports and data directory; later starts (see :meth:`restart`)
        reuse them. If a picked port turns out to be taken by someone else before the server
        binds it, a fresh server retries on new ports; a restart waits for its ports to free up.
        """
        with self._lock:
            if self._closed:
                raise RestateServerError("RestateServer is closed")
            if self.is_running():
                raise RestateServerError(f"restate-server is already running (pid {self.pid})")
            binary = self.binary
            if self._data_dir is None:
                self._data_dir = Path(tempfile.mkdtemp(prefix="restate-sync-server-"))
            self._data_dir.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + self.startup_timeout
            attempts = 0
            while True:
                attempts += 1
                fresh = not self._ever_healthy
                if not all(self._ports.values()):
                    missing = [name for name, port in self._ports.items() if not port]
                    for name, port in zip(missing, _pick_free_ports(len(missing)), strict=True):
                        self._ports[name] = port
                self._wait_ports_free(deadline)
                self._spawn(binary)
                if not wait:
                    return self
                try:
                    self.wait_healthy(max(0.5, deadline - time.monotonic()))
                    return self
                except RestateServerError as exc:
                    if not self._address_in_use() or time.monotonic() >= deadline or attempts >= 5:
                        self._reap_after_failure()
                        raise
                    self._reap_after_failure()
                    if fresh and self._owns_data_dir and len(self._explicit_ports) < len(self._ports):
                        # Nothing worth keeping yet: start over on new ports in a clean data dir.
                        logger.info("restate-server lost a port race (%s); retrying on new ports", exc)
                        for name in self._ports:
                            if name not in self._explicit_ports:
                                self._ports[name] = 0
                        self._wipe_data_dir()
                    else:
                        logger.info("restate-server port still in use; retrying on the same ports")

    def _spawn(self, binary: str) -> None:
        assert self._data_dir is not None
        tmpdir = self._data_dir / "tmp"
        tmpdir.mkdir(parents=True, exist_ok=True)
        env = self.server_env()
        log_path = Path(self.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(
                f"\n==== restate_sync: starting {binary} (ingress {self.ingress_port}, admin "
                f"{self.admin_port}, node {self.node_port}) at {time.strftime('%Y-%m-%dT%H:%M:%S')} ====\n".encode()
            )
            log.flush()
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                [binary, "--no-logo"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self._data_dir),
                start_new_session=True,  # own process group: killpg reaches it and only it
                close_fds=True,
            )
        self._started_at = time.monotonic()
        self._owner_pid = os.getpid()
        with _live_lock:
            _live_servers.add(self)
        logger.info(
            "started restate-server pid %d: binary=%s ingress=%s admin=%s node=%s:%d data_dir=%s log=%s",
            self._proc.pid,
            binary,
            self.ingress_url,
            self.admin_url,
            _LOOPBACK,
            self.node_port,
            self._data_dir,
            log_path,
        )

    def server_env(self) -> dict[str, str]:
        """The environment the server process gets (inherited env minus ``RESTATE_*``, plus config)."""
        assert self._data_dir is not None
        node = f"{_LOOPBACK}:{self.node_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        env.update(
            {
                "RESTATE_NODE_NAME": _NODE_NAME,
                "RESTATE_BASE_DIR": str(self._data_dir),
                "RESTATE_LISTEN_MODE": "tcp",
                "RESTATE_BIND_ADDRESS": node,
                # Both accept host:port or a URL; restate normalises to http://host:port/ anyway.
                "RESTATE_ADVERTISED_ADDRESS": f"http://{node}/",
                # Must be a list (TOML/JSON array syntax); a bare address fails to parse (RT0002).
                "RESTATE_METADATA_CLIENT__ADDRESSES": json.dumps([f"http://{node}/"]),
                "RESTATE_ADMIN__BIND_ADDRESS": f"{_LOOPBACK}:{self.admin_port}",
                "RESTATE_INGRESS__BIND_ADDRESS": f"{_LOOPBACK}:{self.ingress_port}",
                "RESTATE_DISABLE_TELEMETRY": "true",
                "RESTATE_DEFAULT_NUM_PARTITIONS": str(self.partitions),
                "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
                # restate makes invoker-* directories under TMPDIR at every start and leaves them.
                "TMPDIR": str(self._data_dir / "tmp"),
            }
        )
        env.update(self._extra_env)
        return env

    def wait_healthy(self, timeout: float | None = None, partitions_ready: bool = True) -> float:
        """Poll ``admin /health`` and ``ingress /restate/health`` until both answer 200.

        With ``partitions_ready`` (default) it then also waits until a query over
        ``sys_invocation`` succeeds: restate-server 1.7 reports healthy ~0.1-0.2 s before every
        partition has a leader, and until then ``/query`` fails with "node lookup for partition
        N failed" (the ingress itself just waits). Returns the seconds since the process was
        spawned. Raises :class:`RestateServerError` (with the tail of the server log) if the
        process exits first or ``timeout`` (default ``startup_timeout``) passes.
        """
        timeout = self.startup_timeout if timeout is None else timeout
        proc = self._proc
        if proc is None:
            raise RestateServerError("restate-server was not started")
        admin = AdminClient(self.admin_url, timeout=2.0)
        ingress = IngressClient(self.ingress_url, timeout=2.0)
        deadline = time.monotonic() + timeout
        admin_ok = ingress_ok = False
        last_query_error = "not queried yet"
        # After a restart, a query can succeed once on stale routing and then fail with
        # "node ... was shut down"; ask for two answers in a row before calling it ready.
        query_successes = 0
        while True:
            code = proc.poll()
            if code is not None:
                raise RestateServerError(
                    f"restate-server exited with code {code} before it was healthy; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            admin_ok = admin_ok or admin.health()
            ingress_ok = admin_ok and (ingress_ok or ingress.health())
            if ingress_ok and partitions_ready:
                try:
                    admin.query("SELECT count(*) AS n FROM sys_invocation")
                except (AdminError, OSError, http.client.HTTPException) as exc:
                    last_query_error = str(exc)
                    query_successes = 0
                else:
                    query_successes += 1
                    if query_successes >= 2:
                        last_query_error = ""
            elif ingress_ok:
                last_query_error = ""
            if ingress_ok and not last_query_error:
                elapsed = time.monotonic() - self._started_at
                self._ever_healthy = True
                logger.info("restate-server pid %d healthy after %.2fs", proc.pid, elapsed)
                return elapsed
            if time.monotonic() >= deadline:
                state = (
                    "admin /health failing"
                    if not admin_ok
                    else "ingress /restate/health failing"
                    if not ingress_ok
                    else f"partitions not ready: {last_query_error}"
                )
                raise RestateServerError(
                    f"restate-server (pid {proc.pid}) not healthy after {timeout:.1f}s ({state}); "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def log_tail(self, lines: int = _LOG_TAIL_LINES, since_start: bool = True) -> str:
        """The last ``lines`` non-empty lines of the server log (of the current run by default)."""
        try:
            with open(self.log_path, "rb") as f:
                if since_start:
                    f.seek(getattr(self, "_log_offset", 0))
                data = f.read()[-256 * 1024 :]
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"
        text = data.decode("utf-8", errors="replace")
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])

    def _address_in_use(self) -> bool:
        tail = self.log_tail(200).lower()
        return "address in use" in tail or "address already in use" in tail

    def _wait_ports_free(self, deadline: float) -> None:
        while True:
            busy = [port for port in self._ports.values() if not _port_is_free(port)]
            if not busy:
                return
            if time.monotonic() >= deadline:
                raise RestateServerError(f"loopback port(s) {busy} still in use; cannot start restate-server")
            time.sleep(0.1)

    def _wipe_data_dir(self) -> None:
        assert self._data_dir is not None
        keep = Path(self.log_path)
        for child in self._data_dir.iterdir():
            if child == keep:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    child.unlink()

    def _reap_after_failure(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._forget()

    def _forget(self) -> None:
        with _live_lock:
            _live_servers.discard(self)

    def stop(self, timeout: float = 10) -> int | None:
        """Stop the server: SIGTERM to its process group, SIGKILL if it is still alive after ``timeout``.

        Returns the exit code (None if it was not running). The data directory is kept.
        """
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning(
                        "restate-server pid %d ignored SIGTERM for %.1fs; killing it", proc.pid, timeout
                    )
                    _kill_group(proc.pid, signal.SIGKILL)
                    proc.wait(10)
                logger.info("stopped restate-server pid %d (exit code %s)", proc.pid, proc.returncode)
            self._forget()
            return proc.returncode

    def kill(self) -> None:
        """SIGKILL the server's process group at once (for crash tests); the data directory is kept."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                _kill_group(proc.pid, signal.SIGKILL)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired as exc:
                    raise RestateServerError(f"restate-server pid {proc.pid} survived SIGKILL") from exc
                logger.info("killed restate-server pid %d", proc.pid)
            self._forget()

    def restart(self, timeout: float = 10) -> RestateServer:
        """Start again on the same data directory and ports (stopping it first if it runs).

        Waits (bounded by ``startup_timeout``) for the ports to be bindable, then until healthy.
        """
        with self._lock:
            self.stop(timeout)
            return self.start()

    def close(self, timeout: float = 10) -> None:
        """Stop the server and remove its data directory if this object created it. Idempotent."""
        with self._lock:
            try:
                self.stop(timeout)
            finally:
                self._forget()
                if not self._closed:
                    self._closed = True
                    if self._owns_data_dir and self._data_dir is not None:
                        shutil.rmtree(self._data_dir, ignore_errors=True)
                        if self._data_dir.exists():
                            logger.warning("could not remove restate-server data dir %s", self._data_dir)

    # ---- admin convenience ----------------------------------------------------------------

    def register_deployment(self, uri: str, use_http_11: bool = False, force: bool = True) -> dict[str, Any]:
        """Register the deployment at ``uri`` with this server's admin API; returns the response JSON.

        Raises :class:`restate_sync.client.AdminError` (with the response body) on non-2xx.
        """
        return AdminClient(self.admin_url).register_deployment(uri, use_http_11=use_http_11, force=force)

    def __repr__(self) -> str:
        ports = ", ".join(f"{k}={v}" for k, v in self._ports.items())
        return f"<RestateServer pid={self.pid} {ports} data_dir={self._data_dir}>"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m restate_sync.restate_server {install,path,version}``."""
    parser = argparse.ArgumentParser(
        prog="python -m restate_sync.restate_server",
        description=f"Find or install restate-server {RESTATE_SERVER_VERSION}.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install into the cache if needed, then print the binary path")
    sub.add_parser("path", help="print the binary path (never installs; exit 1 if there is none)")
    sub.add_parser("version", help="print the pinned restate-server version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "version":
        print(RESTATE_SERVER_VERSION)
        return 0
    try:
        path = find_server_binary(install=args.command == "install")
    except ServerBinaryNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
