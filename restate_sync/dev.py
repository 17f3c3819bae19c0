"""The local Restate behind ``restate-sync dev``: one restate-server, or a cluster, that it owns.

:class:`DevRuntime` starts a :class:`~restate_sync.restate_server.RestateServer` (or, with
``nodes`` > 1, a :class:`~restate_sync.restate_server.RestateCluster`), registers the endpoint,
and then watches it: a node that exits without being asked to (``kill -9`` it to watch the
others carry on) is reported and started again on its own data directory. SIGTERM and SIGHUP
stop the dev loop like Ctrl-C does (:meth:`DevRuntime.stopped_by_signals`), so whatever it
started is stopped with it, not left running reparented to init.

Runs under gevent monkey-patching (the CLI patches first): waits are cooperative, and signals are
delivered on the hub and thrown into the main greenlet as :class:`DevStop`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from .restate_server import RestateCluster, RestateServer, RestateServerError
from .restate_server.cluster import DEFAULT_CLUSTER_PARTITIONS
from .restate_server.readiness import wait_services_known
from .service import ServiceKind

__all__ = ["STOP_SIGNALS", "DevRuntime", "DevStop"]

logger = logging.getLogger("restate_sync.dev")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop ``restate-sync dev`` (besides SIGINT, which Python turns into KeyboardInterrupt)."""

_WATCH_INTERVAL = 1.0
_SINGLE_NODE_PARTITIONS = 2


class DevStop(BaseException):
    """Thrown into the main greenlet when a stop signal arrives (a BaseException: no ``except
    Exception`` on the way may swallow it)."""


class DevRuntime:
    """The restate-server (or cluster) of one ``restate-sync dev`` session."""

    def __init__(self, nodes: int = 1, partitions: int | None = None) -> None:
        if nodes < 1:
            raise SystemExit(f"error: --nodes must be at least 1, got {nodes}")
        self.nodes = nodes
        if partitions is None:
            partitions = _SINGLE_NODE_PARTITIONS if nodes == 1 else DEFAULT_CLUSTER_PARTITIONS
        self.runtime: RestateServer | RestateCluster = (
            RestateServer(partitions=partitions)
            if nodes == 1
            else RestateCluster(nodes, partitions=partitions)
        )
        self._stopping = False

    @property
    def ingress_url(self) -> str:
        return self.runtime.ingress_url

    def _servers(self) -> list[RestateServer]:
        runtime = self.runtime
        return list(runtime.nodes) if isinstance(runtime, RestateCluster) else [runtime]

    def start(self, deployment_url: str, endpoint: Any) -> None:
        """Start the server (or cluster), register ``deployment_url``, wait until every node knows it."""
        runtime = self.runtime
        runtime.start()
        runtime.register_deployment(deployment_url)
        if isinstance(runtime, RestateCluster):
            services = [(s.name, s.kind is not ServiceKind.SERVICE) for s in endpoint.services.values()]
            for url in runtime.ingress_urls:
                wait_services_known(url, services, runtime.startup_timeout)

    def describe(self) -> None:
        """Print where everything listens (and, for a cluster, how to watch a node fail)."""
        runtime = self.runtime
        if isinstance(runtime, RestateServer):
            print(
                f"restate-server pid {runtime.pid}   ingress: {runtime.ingress_url}   admin: {runtime.admin_url}"
            )
            return
        print(
            f"restate cluster {runtime.cluster_name}: {runtime.size} nodes, {runtime.partitions} partitions, "
            f"replication {runtime.replication}"
        )
        for node in runtime.nodes:
            print(
                f"  {node.node_name} pid {node.pid}   ingress: {node.ingress_url}   admin: {node.admin_url}"
            )
        print(
            "kill a node (kill -9 <pid>) and invocations carry on through the others; "
            "restate-sync starts it again on its own data"
        )

    @contextlib.contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        """Within the block, SIGTERM and SIGHUP raise :class:`DevStop` in the calling greenlet.

        Only the first signal does; later ones are ignored so they cannot interrupt the cleanup.
        """
        import gevent
        import greenlet

        main = greenlet.getcurrent()
        hub = gevent.get_hub()

        def on_signal(signum: int) -> None:
            if self._stopping:
                return
            self._stopping = True
            name = signal.Signals(signum).name
            hub.loop.run_callback(main.throw, DevStop(f"got {name}"))

        handlers = [gevent.signal_handler(s, on_signal, s) for s in STOP_SIGNALS]
        try:
            yield
        finally:
            self._stopping = True
            for handler in handlers:
                handler.cancel()

    def watch_forever(self) -> None:
        """Until interrupted: start again any node that exited without being asked to."""
        import gevent

        while True:
            gevent.sleep(_WATCH_INTERVAL)  # the endpoint serves on this hub meanwhile
            self.restart_exited_nodes()

    def restart_exited_nodes(self) -> list[str]:
        """Report and restart every node whose process exited; returns their names."""
        restarted = []
        runtime = self.runtime
        for index, node in enumerate(self._servers()):
            code = node.unexpected_exit_code
            if code is None:
                continue
            print(f"{node.node_name} exited with code {code}; starting it again on its own data")
            sys.stdout.flush()
            started = time.monotonic()
            try:
                if isinstance(runtime, RestateCluster):
                    runtime.start_node(index)
                else:
                    runtime.start()
            except RestateServerError as exc:
                print(f"{node.node_name} could not be started again: {exc}")
                raise
            print(f"{node.node_name} is back (pid {node.pid}) after {time.monotonic() - started:.1f}s")
            sys.stdout.flush()
            restarted.append(node.node_name)
        return restarted

    def close(self) -> None:
        """Stop everything this session started (idempotent)."""
        self._stopping = True
        self.runtime.close()
