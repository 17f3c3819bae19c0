"""Run an N-node restate-server cluster on loopback: one process, data directory and port set per node.

::

    with RestateCluster(nodes=3) as cluster:          # ready: every partition led and writable
        cluster.register_deployment("http://127.0.0.1:9080")
        print(cluster.ingress_urls)
        cluster.kill_node(1)                          # SIGKILL node 2 ...
        cluster.start_node(1)                         # ... and bring it back on its own data dir

The nodes are :class:`~restate_sync.restate_server.RestateServer` processes with one cluster
name and every role (worker, ingress, log server, admin, metadata server); the metadata servers
are replicated across the nodes (every node lists all of them), the log is the replicated
loglet, partitions are replicated on ``replication`` nodes (default 2), and only the first node
provisions the cluster. Ports are picked outside the kernel's ephemeral range, so a node that is
killed or stopped finds its ports free when it starts again; a node restarts on its own data
directory and node name (a node whose data directory is gone cannot rejoin under its old name).

Readiness is not ``/health`` (every node answers that within ~1 s, while partition leaders settle
5-8 s later): :meth:`RestateCluster.wait_ready` waits until every running node is healthy, every
partition accepted a write through every running node's ingress (:mod:`.readiness`), and every
node's admin API answers queries over all partitions.

Measured with restate-server 1.7.12 on 2 cores: ready ~8-9 s after the spawn, ~150-250 MiB RSS
per node; a node killed under load stalls the others for ~2 s while its partitions fail over.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from ..client import AdminClient
from .errors import RestateServerError
from .install import find_server_binary
from .process import RestateServer
from .processes import LOOPBACK, ExitCleanup, stable_free_ports
from .readiness import wait_partitions_writable

__all__ = ["CLUSTER_ROLES", "DEFAULT_CLUSTER_PARTITIONS", "RestateCluster", "cluster_node_env"]

logger = logging.getLogger("restate_sync.restate_server")

CLUSTER_ROLES = "[worker,http-ingress,log-server,admin,metadata-server]"
DEFAULT_CLUSTER_PARTITIONS = 4
_START_ATTEMPTS = 3


def cluster_node_env(*, cluster_name: str, provisions: bool, replication: int) -> dict[str, str]:
    """The settings that make a node part of a cluster (the first node alone ``provisions`` it)."""
    return {
        "RESTATE_CLUSTER_NAME": cluster_name,
        "RESTATE_ROLES": CLUSTER_ROLES,
        "RESTATE_METADATA_SERVER__TYPE": "replicated",
        "RESTATE_BIFROST__DEFAULT_PROVIDER": "replicated",
        "RESTATE_DEFAULT_REPLICATION": str(replication),
        "RESTATE_AUTO_PROVISION": "true" if provisions else "false",
    }


def _close_at_exit(cluster: RestateCluster) -> None:
    logger.warning("restate cluster %s was not closed; stopping it at exit", cluster.cluster_name)
    cluster.close(timeout=5)


_unclosed: ExitCleanup[RestateCluster] = ExitCleanup(_close_at_exit)


class RestateCluster:
    """``nodes`` restate-server processes forming one cluster on loopback.

    Use it as a context manager (``__enter__`` starts every node and waits until the cluster is
    ready, ``__exit__`` closes it, also after an error), or call :meth:`start` and :meth:`close`.
    Nodes are numbered from 0 in :attr:`nodes`; node 0 provisions the cluster and its ingress and
    admin URLs are :attr:`ingress_url` and :attr:`admin_url`.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        partitions: int = DEFAULT_CLUSTER_PARTITIONS,
        replication: int | None = None,
        env: Mapping[str, str] | None = None,
        data_dir: str | None = None,
        log_dir: str | None = None,
        binary: str | None = None,
        startup_timeout: float = 90.0,
        cluster_name: str | None = None,
    ) -> None:
        """Configure (but do not start) a cluster.

        ``replication`` defaults to ``min(2, nodes)``. ``env`` adds server environment variables
        for every node (they win over the cluster's own settings, except which node provisions);
        ``RESTATE_DEFAULT_NUM_PARTITIONS`` in it wins over ``partitions``. ``data_dir`` None means
        a fresh temporary directory (one sub-directory per node), removed by :meth:`close`.
        ``log_dir`` None puts each node's log into its data directory.
        """
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        extra = dict(env or {})
        if "RESTATE_DEFAULT_NUM_PARTITIONS" in extra:
            partitions = int(extra["RESTATE_DEFAULT_NUM_PARTITIONS"])
        if partitions < 1:
            raise ValueError("partitions must be >= 1")
        replication = min(2, nodes) if replication is None else replication
        if not 1 <= replication <= nodes:
            raise ValueError(f"replication must be between 1 and nodes ({nodes}), got {replication}")
        self.size = nodes
        self.partitions = partitions
        self.replication = replication
        self.cluster_name = cluster_name or f"restate-sync-{uuid.uuid4().hex[:12]}"
        self.startup_timeout = startup_timeout
        self._extra_env = extra
        self._owns_data_dir = data_dir is None
        self._root: Path | None = Path(data_dir).resolve() if data_dir is not None else None
        self._log_dir = Path(log_dir).resolve() if log_dir is not None else None
        self._binary = binary
        self.nodes: list[RestateServer] = []
        self._closed = False
        self._lock = threading.RLock()

    # ---- properties -----------------------------------------------------------------------

    @property
    def data_dir(self) -> str:
        """The cluster's directory (one ``node-<n>`` sub-directory per node)."""
        if self._root is None:
            raise RestateServerError("RestateCluster not started yet: no data dir")
        return str(self._root)

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_server_binary(install=True)
        return self._binary

    def _started_nodes(self) -> list[RestateServer]:
        if not self.nodes:
            raise RestateServerError("RestateCluster not started yet")
        return self.nodes

    @property
    def ingress_url(self) -> str:
        """The first node's ingress (where the official suite sends all its traffic)."""
        return self._started_nodes()[0].ingress_url

    @property
    def admin_url(self) -> str:
        """The first node's admin API."""
        return self._started_nodes()[0].admin_url

    @property
    def ingress_urls(self) -> list[str]:
        return [node.ingress_url for node in self._started_nodes()]

    @property
    def admin_urls(self) -> list[str]:
        return [node.admin_url for node in self._started_nodes()]

    @property
    def pids(self) -> list[int | None]:
        """Each node's pid (None for a node that is not running)."""
        return [node.pid for node in self.nodes]

    @property
    def pid(self) -> int | None:
        """The first node's pid (None if it is not running)."""
        return self.nodes[0].pid if self.nodes else None

    def running_nodes(self) -> list[RestateServer]:
        return [node for node in self.nodes if node.is_running()]

    def is_running(self) -> bool:
        """Whether any node is running."""
        return bool(self.running_nodes())

    def log_paths(self) -> list[str]:
        return [node.log_path for node in self.nodes]

    def log_tail(self, lines: int = 20, since_start: bool = True) -> str:
        """The last ``lines`` lines of every node's log, one section per node."""
        return "\n".join(
            f"--- {node.node_name} ({node.log_path}):\n{node.log_tail(lines, since_start)}"
            for node in self.nodes
        )

    # ---- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> RestateCluster:
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

    def start(self, wait: bool = True) -> RestateCluster:
        """Start every node; with ``wait`` (default) block until the cluster is ready.

        The first start picks the ports and directories; later starts reuse them. If a port
        picked for a fresh cluster was taken by someone else before its node bound it, the
        whole cluster starts over on new ports (every node lists every other node's address).
        """
        with self._lock:
            if self._closed:
                raise RestateServerError("RestateCluster is closed")
            if self.running_nodes():
                raise RestateServerError("the cluster is already running; use start_node() for one node")
            binary = self.binary
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="restate-sync-cluster-"))
            self._root.mkdir(parents=True, exist_ok=True)
            _unclosed.add(self)
            fresh = not self.nodes
            for attempt in range(1, _START_ATTEMPTS + 1):
                if not self.nodes:
                    self.nodes = self._make_nodes(binary)
                for node in self.nodes:
                    node.start(wait=False)
                logger.info(
                    "started restate cluster %s: %d nodes, %d partitions, replication %d, pids %s, dir %s",
                    self.cluster_name,
                    self.size,
                    self.partitions,
                    self.replication,
                    self.pids,
                    self._root,
                )
                if not wait:
                    return self
                try:
                    self.wait_ready()
                    return self
                except RestateServerError:
                    lost_race = any(node._address_in_use() for node in self.nodes)
                    self._kill_all()
                    if not (fresh and lost_race and self._owns_data_dir and attempt < _START_ATTEMPTS):
                        raise
                    logger.info(
                        "restate cluster %s lost a port race; retrying on new ports", self.cluster_name
                    )
                    self._wipe()
            raise AssertionError("unreachable")

    def _make_nodes(self, binary: str) -> list[RestateServer]:
        assert self._root is not None
        ports = stable_free_ports(3 * self.size)
        triples = [ports[3 * i : 3 * i + 3] for i in range(self.size)]
        addresses = [f"http://{LOOPBACK}:{node_port}/" for _, _, node_port in triples]
        nodes = []
        for i, (ingress, admin, node_port) in enumerate(triples):
            name = f"node-{i + 1}"
            env = cluster_node_env(
                cluster_name=self.cluster_name, provisions=i == 0, replication=self.replication
            )
            env.update(self._extra_env)
            env["RESTATE_AUTO_PROVISION"] = "true" if i == 0 else "false"
            log_file = str(self._log_dir / f"{name}.log") if self._log_dir is not None else None
            nodes.append(
                RestateServer(
                    data_dir=str(self._root / name),
                    env=env,
                    partitions=self.partitions,
                    log_file=log_file,
                    startup_timeout=self.startup_timeout,
                    binary=binary,
                    ingress_port=ingress,
                    admin_port=admin,
                    node_port=node_port,
                    node_name=name,
                    metadata_addresses=addresses,
                )
            )
        return nodes

    def wait_ready(
        self,
        timeout: float | None = None,
        nodes: Sequence[RestateServer] | None = None,
        *,
        queries: bool = True,
    ) -> float:
        """Wait until the cluster takes invocations through every running node; returns seconds waited.

        Every running node (or just ``nodes``, e.g. one that was restarted) must answer ``/health``
        on admin and ingress, then every partition must accept a write through each of their
        ingresses; then every running node's admin API must answer a query over all partitions
        (a node that rejoins makes queries fail cluster-wide for a few seconds, "expecting a
        partition store", while it catches up; ``queries=False`` skips this). Raises :class:`RestateServerError` (with the tail
        of every node's log) if a node exits or ``timeout`` (default ``startup_timeout``) passes.
        """
        timeout = self.startup_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + timeout
        targets = list(nodes) if nodes is not None else self.running_nodes()
        if not targets:
            raise RestateServerError("no node of the cluster is running")

        def remaining() -> float:
            return max(0.5, deadline - time.monotonic())

        try:
            for node in targets:
                node.wait_healthy(remaining(), partitions_ready=False)
            for node in targets:
                wait_partitions_writable(node.ingress_url, self.partitions, remaining())
            for node in self.running_nodes() if queries else []:
                node.wait_healthy(remaining(), partitions_ready=True)
        except RestateServerError as exc:
            raise RestateServerError(
                f"restate cluster {self.cluster_name} not ready: {exc}\n{self.log_tail()}"
            ) from exc
        elapsed = time.monotonic() - started
        logger.info("restate cluster %s ready after %.2fs", self.cluster_name, elapsed)
        return elapsed

    def _node(self, index: int) -> RestateServer:
        nodes = self._started_nodes()
        if not 0 <= index < len(nodes):
            raise IndexError(f"node index {index} out of range (the cluster has {len(nodes)} nodes)")
        return nodes[index]

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based) at once; its data directory and ports are kept."""
        with self._lock:
            self._node(index).kill()

    def stop_node(self, index: int, timeout: float = 10) -> int | None:
        """SIGTERM node ``index`` (SIGKILL after ``timeout``); returns its exit code."""
        with self._lock:
            return self._node(index).stop(timeout)

    def start_node(self, index: int, wait: bool = True, *, queries: bool = True) -> RestateServer:
        """Start node ``index`` again on its own data directory, node name and ports.

        With ``wait`` (default) blocks until it is healthy, every partition is writable through
        its ingress and (unless ``queries=False``) every node answers admin queries again
        (:meth:`wait_ready`; measured: ~1 s to writable, ~6 s more until queries work).
        """
        with self._lock:
            if self._closed:
                raise RestateServerError("RestateCluster is closed")
            node = self._node(index)
            node.start(wait=False)
            if wait:
                self.wait_ready(nodes=[node], queries=queries)
            return node

    def restart_node(self, index: int, timeout: float = 10) -> RestateServer:
        """Stop node ``index`` (gracefully, see :meth:`stop_node`) and start it again."""
        with self._lock:
            self.stop_node(index, timeout)
            return self.start_node(index)

    def kill(self) -> None:
        """SIGKILL every node (data directories kept)."""
        with self._lock:
            self._kill_all()

    def stop(self, timeout: float = 10) -> None:
        """Stop every node (SIGTERM, then SIGKILL after ``timeout``); data directories kept."""
        with self._lock:
            for node in self.nodes:
                node.stop(timeout)

    def restart(self, timeout: float = 10) -> RestateCluster:
        """Stop every node and start them all again on their data directories; waits until ready."""
        with self._lock:
            self.stop(timeout)
            return self.start()

    def _kill_all(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(RestateServerError):
                node.kill()

    def _wipe(self) -> None:
        for node in self.nodes:
            node.close()
        self.nodes = []
        if self._root is not None:
            for child in self._root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)

    def close(self, timeout: float = 10) -> None:
        """Stop every node and remove the cluster directory if this object created it. Idempotent."""
        with self._lock:
            try:
                for node in self.nodes:
                    with contextlib.suppress(Exception):
                        node.close(timeout)
            finally:
                _unclosed.discard(self)
                if not self._closed:
                    self._closed = True
                    if self._owns_data_dir and self._root is not None:
                        shutil.rmtree(self._root, ignore_errors=True)
                        if self._root.exists():
                            logger.warning("could not remove the cluster directory %s", self._root)

    # ---- admin convenience ----------------------------------------------------------------

    def admin(self, timeout: float = 30) -> AdminClient:
        """An admin client for the first running node."""
        running = self.running_nodes()
        if not running:
            raise RestateServerError("no node of the cluster is running")
        return AdminClient(running[0].admin_url, timeout=timeout)

    def register_deployment(self, uri: str, use_http_11: bool = False, force: bool = True) -> dict[str, Any]:
        """Register the deployment at ``uri`` through the first running node's admin API."""
        return self.admin().register_deployment(uri, use_http_11=use_http_11, force=force)

    def __iter__(self) -> Iterator[RestateServer]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"<RestateCluster {self.cluster_name} nodes={self.size} pids={self.pids} dir={self._root}>"
