"""The test harness: your services, served to a real restate-server (or cluster), registered.

::

    harness = RestateTestHarness(Greeter, Counter, disable_retries=True)
    harness.start()
    try:
        assert harness.ingress.call("Greeter", "greet", "World") == "Hello, World!"
    finally:
        harness.stop()

    with RestateTestHarness(Greeter, nodes=3) as harness:   # a three-node cluster
        ...

    with start(Greeter, Counter) as env:                      # the short form
        ...

What :meth:`RestateTestHarness.start` does, in order: start restate-server on loopback (free
ports, a fresh data directory) or an N-node :class:`~restate_sync.restate_server.RestateCluster`,
and wait until it is ready (for a cluster: every partition takes writes through every node);
serve the endpoint from a background thread with its own gevent hub; register it; for a
cluster, wait until every node's ingress knows the services. :meth:`~RestateTestHarness.stop`
tears all of it down, also after a failed start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from ..client import AdminClient, IngressClient
from ..endpoint import Endpoint, endpoint
from ..restate_server import RestateCluster, RestateServer
from ..restate_server.cluster import DEFAULT_CLUSTER_PARTITIONS
from ..restate_server.readiness import wait_services_known
from ..service import ServiceKind
from .endpoint_thread import EndpointThread

__all__ = [
    "ALWAYS_SUSPEND_ENV",
    "DEFAULT_PARTITIONS",
    "DISABLE_RETRIES_ENV",
    "RestateTestHarness",
    "TestEnvironment",
    "start",
]

DEFAULT_PARTITIONS = 2
"""Partitions of a single-node server (a cluster defaults to 4, as Restate's own suite runs it)."""

ALWAYS_SUSPEND_ENV: Mapping[str, str] = {"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s"}
"""Every await that has to wait suspends at once; the invocation resumes by replaying its journal."""

DISABLE_RETRIES_ENV: Mapping[str, str] = {
    "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "1",
    "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "kill",
}
"""The server's default invocation retry policy: one attempt, then the invocation is killed (its
caller gets an error). A service or handler with its own ``invocation_retry_policy`` keeps it."""

Runtime = RestateServer | RestateCluster


class RestateTestHarness:
    """A restate-server (or cluster) and an endpoint serving ``services``, for one test session.

    ``services`` are service classes or one :class:`~restate_sync.Endpoint`. ``always_suspend``
    sets the server's inactivity timeout to 0 (every await that waits suspends and resumes by
    replay); ``disable_retries`` makes a failing invocation fail after its first attempt
    (:data:`DISABLE_RETRIES_ENV`); ``server_env`` adds restate-server environment variables (they
    win); ``server_binary`` overrides the binary lookup; ``partitions`` defaults to 2 for one node
    and 4 for a cluster; ``nodes`` > 1 starts a cluster of that many nodes; ``use_http_11``
    registers the deployment in request/response mode.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *services: Any,
        always_suspend: bool = False,
        disable_retries: bool = False,
        server_binary: str | None = None,
        server_env: Mapping[str, str] | None = None,
        partitions: int | None = None,
        nodes: int = 1,
        use_http_11: bool = False,
        startup_timeout: float | None = None,
    ) -> None:
        if not services:
            raise ValueError("RestateTestHarness needs at least one service (or an Endpoint)")
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        if len(services) == 1 and isinstance(services[0], Endpoint):
            self.endpoint_definition: Endpoint = services[0]
        else:
            self.endpoint_definition = endpoint(*services)
        self.always_suspend = always_suspend
        self.disable_retries = disable_retries
        self.server_binary = server_binary
        self.nodes = nodes
        self.partitions = (
            partitions
            if partitions is not None
            else (DEFAULT_PARTITIONS if nodes == 1 else DEFAULT_CLUSTER_PARTITIONS)
        )
        self.use_http_11 = use_http_11
        self.startup_timeout = startup_timeout
        self._server_env = dict(server_env or {})
        self._server: Runtime | None = None
        self._endpoint: EndpointThread | None = None
        self._stack: contextlib.ExitStack | None = None
        self.deployment: dict[str, Any] = {}

    # ---- what a test uses -------------------------------------------------------------------

    def server_environment(self) -> dict[str, str]:
        """The restate-server settings this harness adds (options first, ``server_env`` wins)."""
        env: dict[str, str] = {}
        if self.always_suspend:
            env.update(ALWAYS_SUSPEND_ENV)
        if self.disable_retries:
            env.update(DISABLE_RETRIES_ENV)
        env.update(self._server_env)
        return env

    @property
    def server(self) -> Runtime:
        """The :class:`RestateServer`, or the :class:`RestateCluster` when ``nodes`` > 1."""
        if self._server is None:
            raise RuntimeError("the harness is not started")
        return self._server

    @property
    def cluster(self) -> RestateCluster:
        """The cluster (only when ``nodes`` > 1)."""
        server = self.server
        if not isinstance(server, RestateCluster):
            raise RuntimeError("this harness runs a single node; pass nodes=3 for a cluster")
        return server

    @property
    def endpoint(self) -> EndpointThread:
        """The endpoint server (its :attr:`~EndpointThread.url` is the registered deployment)."""
        if self._endpoint is None:
            raise RuntimeError("the harness is not started")
        return self._endpoint

    @property
    def ingress_url(self) -> str:
        """The ingress (of the first node of a cluster)."""
        return self.server.ingress_url

    @property
    def admin_url(self) -> str:
        """The admin API (of the first node of a cluster)."""
        return self.server.admin_url

    @property
    def endpoint_url(self) -> str:
        return self.endpoint.url

    @property
    def ingress(self) -> IngressClient:
        """A client for :attr:`ingress_url`."""
        return IngressClient(self.ingress_url)

    @property
    def admin(self) -> AdminClient:
        """A client for :attr:`admin_url`."""
        return AdminClient(self.admin_url)

    def is_started(self) -> bool:
        return self._stack is not None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> RestateTestHarness:
        """Start the server (or cluster) and the endpoint, register it, wait until it is known.

        Everything started is stopped again if a later step fails.
        """
        if self._stack is not None:
            raise RuntimeError("the harness is already started")
        with contextlib.ExitStack() as stack:
            server = self._make_server()
            stack.callback(server.close)
            server.start()
            thread = EndpointThread(self.endpoint_definition).start()
            stack.callback(thread.stop)
            self.deployment = server.register_deployment(thread.url, use_http_11=self.use_http_11)
            if isinstance(server, RestateCluster):
                services = [
                    (s.name, s.kind is not ServiceKind.SERVICE)
                    for s in self.endpoint_definition.services.values()
                ]
                for url in server.ingress_urls:
                    wait_services_known(url, services, server.startup_timeout)
            self._server, self._endpoint = server, thread
            self._stack = stack.pop_all()
        return self

    def _make_server(self) -> Runtime:
        env = self.server_environment()
        if self.nodes == 1:
            return RestateServer(
                env=env,
                partitions=self.partitions,
                binary=self.server_binary,
                startup_timeout=self.startup_timeout or 30.0,
            )
        return RestateCluster(
            self.nodes,
            env=env,
            partitions=self.partitions,
            binary=self.server_binary,
            startup_timeout=self.startup_timeout or 90.0,
        )

    def stop(self) -> None:
        """Stop the endpoint and the server (or cluster), removing its data. Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def __enter__(self) -> RestateTestHarness:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"server={self._server!r}" if self._server is not None else "not started"
        return (
            f"<RestateTestHarness {', '.join(self.endpoint_definition.services)} nodes={self.nodes} {state}>"
        )


TestEnvironment = RestateTestHarness
"""What :func:`start` yields (the started harness; the name predates the harness object)."""


@contextlib.contextmanager
def start(
    *services: Any,
    always_suspend: bool = False,
    disable_retries: bool = False,
    server_binary: str | None = None,
    server_env: Mapping[str, str] | None = None,
    partitions: int | None = None,
    nodes: int = 1,
    use_http_11: bool = False,
) -> Iterator[RestateTestHarness]:
    """The short form: a started :class:`RestateTestHarness` for the ``with`` block, stopped after it."""
    harness = RestateTestHarness(
        *services,
        always_suspend=always_suspend,
        disable_retries=disable_retries,
        server_binary=server_binary,
        server_env=server_env,
        partitions=partitions,
        nodes=nodes,
        use_http_11=use_http_11,
    )
    with harness:
        yield harness
