"""pytest plugin: a real restate-server for the session, your services bound per test module.

Installed with restate-sync (a ``pytest11`` entry point), so there is nothing to configure::

    # test_greeter.py
    import pytest
    from myapp import Greeter, Counter

    restate_services = [Greeter, Counter]          # or an Endpoint (with its middleware)

    def test_greet(restate_ingress):
        assert restate_ingress.call("Greeter", "greet", "World") == "Hello, World!"

    @pytest.mark.restate(always_suspend="both")    # runs twice: streaming, then suspending
    def test_count(restate_ingress):
        assert restate_ingress.call("Counter", "add", 1, key="a") >= 1

Fixtures:

``restate_ingress`` / ``restate_admin``
    ingress and admin clients of the server this test talks to (with the module's services
    registered).
``restate_env``
    all of it: ``ingress``, ``admin``, ``server``, ``ingress_url``, ``admin_url``,
    ``endpoint_url``, ``always_suspend``.
``restate_server``
    that :class:`~restate_sync.restate_server.RestateServer`.
``restate_always_suspend``
    whether this test runs with every blocking await suspending.

Servers are session-scoped: one per distinct configuration (always-suspend or not, retries
disabled or not, extra ``server_env``), started on first use on loopback with free ports and a
fresh data directory, stopped at the end of the session. Each test module's services are served
by an endpoint of the module's own (started on first use, stopped after the module) and
registered with every server the module's tests use; a later module registering a service of
the same name takes it over.

Services come from the module attribute ``restate_services`` (a list of service classes or an
``Endpoint``), or from a module-level ``pytestmark = pytest.mark.restate(services=[...])``.

The marker ``@pytest.mark.restate(...)`` (on a test, class or module; the closest wins, key by
key) takes ``always_suspend`` (``True``, ``False`` or ``"both"``: the test runs once each way),
``disable_retries=True`` (a failing invocation fails after its first attempt), ``server_env``
(more restate-server environment variables) and ``services``. Without ``always_suspend``, the
command-line option ``--restate-always-suspend`` decides (default off), so a whole suite can be
run both ways.

The plugin imports the SDK only when a fixture is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["RestateEnv"]

MARKER = "restate"
OPTION = "--restate-always-suspend"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("restate", "Restate (restate-sync)")
    group.addoption(
        OPTION,
        action="store_true",
        default=False,
        help="run tests using the restate fixtures with restate-server's inactivity timeout at 0s, "
        "so every blocking await suspends and the invocation resumes by replay (a test's "
        "@pytest.mark.restate(always_suspend=...) wins)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(always_suspend=None, disable_retries=False, server_env=None, services=None): "
        "how the restate fixtures run this test (restate-sync's pytest plugin)",
    )


def _settings(node: Any) -> dict[str, Any]:
    """The marker keywords for ``node``, the closest marker winning per keyword."""
    merged: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers(MARKER))):  # farthest first
        if marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keywords only, got {marker.args!r}")
        unknown = set(marker.kwargs) - {"always_suspend", "disable_retries", "server_env", "services"}
        if unknown:
            raise pytest.UsageError(f"@pytest.mark.{MARKER}: unknown keyword(s) {sorted(unknown)}")
        merged.update(marker.kwargs)
    return merged


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "restate_always_suspend" not in metafunc.fixturenames:
        return
    mode = _settings(metafunc.definition).get("always_suspend")
    if mode == "both":
        metafunc.parametrize(
            "restate_always_suspend", [False, True], ids=["streaming", "always-suspend"], indirect=True
        )
    elif mode not in (None, True, False):
        raise pytest.UsageError(f"always_suspend must be True, False or 'both', not {mode!r}")


@dataclass
class RestateEnv:
    """What the ``restate_env`` fixture gives a test."""

    server: Any
    ingress: Any
    admin: Any
    endpoint_url: str
    always_suspend: bool

    @property
    def ingress_url(self) -> str:
        return str(self.server.ingress_url)

    @property
    def admin_url(self) -> str:
        return str(self.server.admin_url)


class _Servers:
    """The session's servers, one per configuration, started on first use."""

    def __init__(self) -> None:
        self._servers: dict[tuple[tuple[str, str], ...], Any] = {}
        self._registered: set[tuple[int, str]] = set()
        self._lock = threading.Lock()

    def get(self, env: Mapping[str, str]) -> Any:
        from ..restate_server import RestateServer

        key = tuple(sorted(env.items()))
        with self._lock:
            server = self._servers.get(key)
            if server is None:
                server = RestateServer(env=dict(env))
                server.start()
                self._servers[key] = server
            return server

    def register(self, server: Any, endpoint_url: str) -> None:
        with self._lock:
            if (id(server), endpoint_url) in self._registered:
                return
            server.register_deployment(endpoint_url)
            self._registered.add((id(server), endpoint_url))

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()


@pytest.fixture(scope="session")
def _restate_servers() -> Iterator[_Servers]:
    servers = _Servers()
    try:
        yield servers
    finally:
        servers.close()


def _module_services(request: pytest.FixtureRequest) -> Any:
    module = request.module
    services = getattr(module, "restate_services", None)
    if services is None:
        marks = getattr(module, "pytestmark", [])
        for mark in marks if isinstance(marks, list) else [marks]:
            if getattr(mark, "name", None) == MARKER and "services" in mark.kwargs:
                services = mark.kwargs["services"]
    if services is None:
        raise pytest.UsageError(
            f"{module.__name__} uses the restate fixtures but binds no services: set "
            "restate_services = [MyService, ...] (or an Endpoint) in the module, or "
            "pytestmark = pytest.mark.restate(services=[...])"
        )
    return services


@pytest.fixture(scope="module")
def _restate_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    from ..endpoint import Endpoint, endpoint
    from . import EndpointThread

    services = _module_services(request)
    if isinstance(services, Endpoint):
        ep = services
    else:
        ep = endpoint(*services)
    thread = EndpointThread(ep).start()
    try:
        yield thread.url
    finally:
        thread.stop()


@pytest.fixture
def restate_always_suspend(request: pytest.FixtureRequest) -> bool:
    """Whether this test runs with every blocking await suspending (see the module docs)."""
    param = getattr(request, "param", None)
    if param is not None:
        return bool(param)
    mode = _settings(request.node).get("always_suspend")
    if mode is None:
        return bool(request.config.getoption(OPTION))
    return bool(mode)


@pytest.fixture
def restate_server(
    request: pytest.FixtureRequest,
    restate_always_suspend: bool,
    _restate_servers: _Servers,
    _restate_endpoint: str,
) -> Any:
    """The session's restate-server for this test's configuration, with the module's services."""
    from .harness import ALWAYS_SUSPEND_ENV, DISABLE_RETRIES_ENV  # what the settings mean

    settings = _settings(request.node)
    env: dict[str, str] = {}
    if restate_always_suspend:
        env.update(ALWAYS_SUSPEND_ENV)
    if settings.get("disable_retries"):
        env.update(DISABLE_RETRIES_ENV)
    env.update(settings.get("server_env") or {})
    server = _restate_servers.get(env)
    _restate_servers.register(server, _restate_endpoint)
    return server


@pytest.fixture
def restate_env(restate_server: Any, restate_always_suspend: bool, _restate_endpoint: str) -> RestateEnv:
    """Clients and addresses of this test's restate-server (see the module docs)."""
    from ..client import AdminClient, IngressClient

    return RestateEnv(
        server=restate_server,
        ingress=IngressClient(restate_server.ingress_url),
        admin=AdminClient(restate_server.admin_url),
        endpoint_url=_restate_endpoint,
        always_suspend=restate_always_suspend,
    )


@pytest.fixture
def restate_ingress(restate_env: RestateEnv) -> Any:
    """An ingress client of this test's restate-server."""
    return restate_env.ingress


@pytest.fixture
def restate_admin(restate_env: RestateEnv) -> Any:
    """An admin client of this test's restate-server."""
    return restate_env.admin
