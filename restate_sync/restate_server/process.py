"""Run one restate-server on loopback, on free ports, with its own data directory.

::

    with RestateServer() as server:
        server.register_deployment("http://127.0.0.1:9080")
        print(server.ingress_url)

The server is configured through environment variables only (:func:`.config.node_env`); its
process runs in its own process group (:class:`.processes.LoggedProcess`) and is also stopped
at interpreter exit if it was never closed. A :class:`RestateServer` is also one node of a
:class:`~restate_sync.restate_server.cluster.RestateCluster` (``node_name``,
``metadata_addresses`` and the cluster's settings in ``env``).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ..client import AdminClient, AdminError, IngressClient
from .config import DEFAULT_NODE_NAME, NodePorts, node_env
from .errors import RestateServerError
from .install import find_server_binary
from .processes import (
    LOOPBACK,
    ExitCleanup,
    LoggedProcess,
    port_is_free,
    stable_free_ports,
    tail_file,
    wait_until,
)

__all__ = ["RestateServer"]

logger = logging.getLogger("restate_sync.restate_server")

_LOG_TAIL_LINES = 40
_START_ATTEMPTS = 5


def _close_at_exit(server: RestateServer) -> None:
    logger.warning("restate-server (pid %s) was not closed; stopping it at exit", server.pid)
    server.close(timeout=5)


_unclosed: ExitCleanup[RestateServer] = ExitCleanup(_close_at_exit)


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
        node_name: str = DEFAULT_NODE_NAME,
        metadata_addresses: Sequence[str] | None = None,
    ) -> None:
        """Configure (but do not start) a server.

        ``data_dir`` None means a fresh temporary directory, removed by :meth:`close`. ``env``
        adds server environment variables (e.g. ``RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT``);
        inherited ``RESTATE_*`` variables are not passed on, so runs stay hermetic. ``binary``
        overrides :func:`find_server_binary`; a port of 0 means "pick a free one" (outside the
        ephemeral range, see :func:`.processes.stable_free_ports`, so a restart finds it free).
        ``node_name`` and ``metadata_addresses`` (default: only this node) matter for a node of a
        cluster.
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
        self.node_name = node_name
        self._metadata_addresses = list(metadata_addresses) if metadata_addresses is not None else None
        self._ports: dict[str, int] = {"ingress": ingress_port, "admin": admin_port, "node": node_port}
        self._explicit_ports = {name for name, port in self._ports.items() if port}
        self._process: LoggedProcess | None = None
        self._closed = False
        self._ever_healthy = False
        self._asked_to_exit = False
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
    def ports(self) -> NodePorts:
        """All three ports (once assigned by the first :meth:`start`)."""
        return NodePorts(ingress=self.ingress_port, admin=self.admin_port, node=self.node_port)

    @property
    def ingress_url(self) -> str:
        """``http://127.0.0.1:<ingress port>``."""
        return f"http://{LOOPBACK}:{self.ingress_port}"

    @property
    def admin_url(self) -> str:
        """``http://127.0.0.1:<admin port>``."""
        return f"http://{LOOPBACK}:{self.admin_port}"

    @property
    def pid(self) -> int | None:
        """The pid of the running server process (also its process group id), or None."""
        return self._process.pid if self._process is not None else None

    @property
    def binary(self) -> str:
        """The restate-server binary used (resolved on first start)."""
        if self._binary is None:
            self._binary = find_server_binary(install=True)
        return self._binary

    def is_running(self) -> bool:
        """Whether the server process is alive."""
        return self.pid is not None

    @property
    def unexpected_exit_code(self) -> int | None:
        """The exit code of a server process that exited without :meth:`stop`, :meth:`kill` or
        :meth:`close` (it crashed, or someone else killed it: ``-9`` for SIGKILL); else None."""
        process = self._process
        if process is None or self._asked_to_exit:
            return None
        return process.returncode

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
                self._assign_ports()
                self._wait_ports_free(deadline)
                self._spawn(binary)
                if not wait:
                    return self
                try:
                    self.wait_healthy(max(0.5, deadline - time.monotonic()))
                    return self
                except RestateServerError as exc:
                    lost_race = self._address_in_use()
                    self._reap_after_failure()
                    if not lost_race or time.monotonic() >= deadline or attempts >= _START_ATTEMPTS:
                        raise
                    if fresh and self._owns_data_dir and len(self._explicit_ports) < len(self._ports):
                        # Nothing worth keeping yet: start over on new ports in a clean data dir.
                        logger.info("restate-server lost a port race (%s); retrying on new ports", exc)
                        for name in self._ports:
                            if name not in self._explicit_ports:
                                self._ports[name] = 0
                        self._wipe_data_dir()
                    else:
                        logger.info("restate-server port still in use; retrying on the same ports")

    def _assign_ports(self) -> None:
        missing = [name for name, port in self._ports.items() if not port]
        for name, port in zip(missing, stable_free_ports(len(missing)), strict=True):
            self._ports[name] = port

    def _spawn(self, binary: str) -> None:
        assert self._data_dir is not None
        (self._data_dir / "tmp").mkdir(parents=True, exist_ok=True)
        process = LoggedProcess(
            [binary, "--no-logo"],
            self.log_path,
            env=self.server_env(),
            cwd=self._data_dir,
            name="restate-server",
        )
        self._asked_to_exit = False
        process.start(
            f"restate_sync: starting {binary} (ingress {self.ingress_port}, admin {self.admin_port}, "
            f"node {self.node_port}) at {time.strftime('%Y-%m-%dT%H:%M:%S')}"
        )
        self._process = process
        _unclosed.add(self)
        logger.info(
            "started restate-server pid %d: binary=%s ingress=%s admin=%s node=%s:%d data_dir=%s log=%s",
            process.pid,
            binary,
            self.ingress_url,
            self.admin_url,
            LOOPBACK,
            self.node_port,
            self._data_dir,
            self.log_path,
        )

    def server_env(self) -> dict[str, str]:
        """The environment the server process gets (inherited env minus ``RESTATE_*``, plus config)."""
        assert self._data_dir is not None
        return node_env(
            base_dir=self._data_dir,
            ports=self.ports,
            partitions=self.partitions,
            node_name=self.node_name,
            metadata_addresses=self._metadata_addresses,
            extra=self._extra_env,
        )

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
        process = self._process
        if process is None or process.proc is None:
            raise RestateServerError("restate-server was not started")
        proc = process.proc
        admin = AdminClient(self.admin_url, timeout=2.0)
        ingress = IngressClient(self.ingress_url, timeout=2.0)
        # After a restart, a query can succeed once on stale routing and then fail with
        # "node ... was shut down"; ask for two answers in a row before calling it ready.
        state = {"admin": False, "ingress": False, "query_successes": 0}
        last_query_error = ["not queried yet"]

        def healthy() -> bool:
            code = proc.poll()
            if code is not None:
                raise RestateServerError(
                    f"restate-server exited with code {code} before it was healthy; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            state["admin"] = state["admin"] or admin.health()
            state["ingress"] = state["admin"] and (state["ingress"] or ingress.health())
            if not state["ingress"]:
                return False
            if not partitions_ready:
                return True
            try:
                admin.query("SELECT count(*) AS n FROM sys_invocation")
            except (AdminError, OSError, http.client.HTTPException) as exc:
                last_query_error[0] = str(exc)
                state["query_successes"] = 0
                return False
            state["query_successes"] += 1
            return state["query_successes"] >= 2

        def not_healthy() -> RestateServerError:
            what = (
                "admin /health failing"
                if not state["admin"]
                else "ingress /restate/health failing"
                if not state["ingress"]
                else f"partitions not ready: {last_query_error[0]}"
            )
            return RestateServerError(
                f"restate-server (pid {proc.pid}) not healthy after {timeout:.1f}s ({what}); "
                f"log {self.log_path}:\n{self.log_tail()}"
            )

        wait_until(healthy, timeout, 0.02, on_timeout=not_healthy)
        elapsed = time.monotonic() - process.started_at
        self._ever_healthy = True
        logger.info("restate-server pid %d healthy after %.2fs", proc.pid, elapsed)
        return elapsed

    def log_tail(self, lines: int = _LOG_TAIL_LINES, since_start: bool = True) -> str:
        """The last ``lines`` non-empty lines of the server log (of the current run by default)."""
        if self._process is None:
            return tail_file(self.log_path, lines)
        return self._process.log_tail(lines, since_start)

    def _address_in_use(self) -> bool:
        tail = self.log_tail(200).lower()
        return "address in use" in tail or "address already in use" in tail

    def _wait_ports_free(self, deadline: float) -> None:
        def busy() -> list[int]:
            return [port for port in self._ports.values() if not port_is_free(port)]

        wait_until(
            lambda: not busy(),
            deadline - time.monotonic(),
            0.1,
            on_timeout=lambda: RestateServerError(
                f"loopback port(s) {busy()} still in use; cannot start restate-server"
            ),
        )

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
        if self._process is None:
            return
        self._asked_to_exit = True
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.kill()
        self._forget()

    def _forget(self) -> None:
        _unclosed.discard(self)

    def stop(self, timeout: float = 10) -> int | None:
        """Stop the server: SIGTERM to its process group, SIGKILL if it is still alive after ``timeout``.

        Returns the exit code (None if it was never started). The data directory is kept.
        """
        with self._lock:
            process = self._process
            if process is None:
                return None
            self._asked_to_exit = True
            if process.is_running():
                pid = process.pid
                took = process.stop(timeout)
                if took == float("inf"):
                    logger.warning("restate-server pid %d ignored SIGTERM for %.1fs; killed it", pid, timeout)
                logger.info("stopped restate-server pid %d (exit code %s)", pid, process.returncode)
            self._forget()
            return process.returncode

    def kill(self) -> None:
        """SIGKILL the server's process group at once (for crash tests); the data directory is kept."""
        with self._lock:
            process = self._process
            if process is None:
                return
            self._asked_to_exit = True
            if process.is_running():
                pid = process.pid
                try:
                    process.kill()
                except subprocess.TimeoutExpired as exc:
                    raise RestateServerError(f"restate-server pid {pid} survived SIGKILL") from exc
                logger.info("killed restate-server pid %d", pid)
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
