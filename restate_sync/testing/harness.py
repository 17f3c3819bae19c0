"""Test harness: your services, served to a real restate-server, in one ``with`` block.

::

    import restate_sync.testing

    with restate_sync.testing.start(Greeter, Counter) as env:
        assert env.ingress.call("Greeter", "greet", "World") == "Hello, World!"

The restate-server binary is found through ``RESTATE_SERVER_BIN``, then ``PATH``, then installed
with npm into a cache directory (see :mod:`restate_sync.restate_server`). Everything listens on
loopback on free ports, with a fresh data directory, and is torn down on exit, also after a
failure. The endpoint runs on its own gevent hub in a background thread, so tests can use plain
blocking clients; under gevent monkey-patching it runs as a greenlet instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..client import AdminClient, IngressClient
from ..endpoint import Endpoint, endpoint
from ..restate_server import RestateServer

__all__ = ["EndpointThread", "TestEnvironment", "start"]


class EndpointThread:
    """Serves an endpoint over h2c on 127.0.0.1 in a background thread with its own gevent hub."""

    def __init__(self, ep: Endpoint, host: str = "127.0.0.1", port: int = 0) -> None:
        self.endpoint = ep
        self._bind = (host, port)
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._stop_watcher: Any = None
        self.address: tuple[str, int] | None = None
        self._thread = threading.Thread(target=self._run, name="restate-sync-endpoint", daemon=True)

    @property
    def url(self) -> str:
        assert self.address is not None, "EndpointThread not started"
        return f"http://{self.address[0]}:{self.address[1]}"

    def start(self, timeout: float = 10.0) -> EndpointThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the endpoint server did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the endpoint server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        import gevent
        from gevent.event import Event

        from ..transport.h2server import H2Server

        try:
            server = H2Server(self.endpoint.handle, self._bind)
            server.start()
            self.address = server.address[:2]
            hub = gevent.get_hub()
            done = Event()
            self._stop_watcher = hub.loop.async_()
            self._stop_watcher.start(done.set)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            done.wait()
            server.stop(timeout=2)  # closes the listener and every connection
        finally:
            self._stop_watcher.close()
            self._stopped.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and close every connection (the runtime must see them close)."""
        if self._stop_watcher is None or self._stopped.is_set():
            return
        self._stop_watcher.send()
        if not self._stopped.wait(timeout):
            raise RuntimeError("the endpoint server did not stop in time")
        self._thread.join(timeout)


@dataclass
class TestEnvironment:
    """What :func:`start` yields."""

    __test__ = False  # not a pytest test class

    server: RestateServer
    endpoint: EndpointThread
    ingress: IngressClient
    admin: AdminClient

    @property
    def ingress_url(self) -> str:
        return self.server.ingress_url

    @property
    def admin_url(self) -> str:
        return self.server.admin_url

    @property
    def endpoint_url(self) -> str:
        return self.endpoint.url


@contextlib.contextmanager
def start(
    *services: Any,
    always_suspend: bool = False,
    server_env: Mapping[str, str] | None = None,
    partitions: int = 2,
    use_http_11: bool = False,
) -> Iterator[TestEnvironment]:
    """Start restate-server and an endpoint for ``services`` (or one ``Endpoint``), registered.

    ``always_suspend=True`` sets the server's inactivity timeout to 0, so every await that has
    to wait suspends and the invocation resumes by replaying its journal.
    """
    if len(services) == 1 and isinstance(services[0], Endpoint):
        ep = services[0]
    else:
        ep = endpoint(*services)
    env = dict(server_env or {})
    if always_suspend:
        env.setdefault("RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT", "0s")
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(RestateServer(env=env, partitions=partitions))
        thread = EndpointThread(ep).start()
        stack.callback(thread.stop)
        server.register_deployment(thread.url, use_http_11=use_http_11)
        yield TestEnvironment(
            server=server,
            endpoint=thread,
            ingress=IngressClient(server.ingress_url),
            admin=AdminClient(server.admin_url),
        )
