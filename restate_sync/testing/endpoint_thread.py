"""Serve an endpoint from a background thread with its own gevent hub, for tests.

Tests then use plain blocking clients from the main thread. This is
``endpoint.start_in_thread`` (:class:`~restate_sync.transport.serving.ThreadedEndpointServer`)
bound to loopback with a short grace period: :meth:`EndpointThread.stop` closes the listener and
every connection soon after (restate-server keeps pooled connections to a deployment that merely
stopped listening, so a test that stops an endpoint must close them).
"""

from __future__ import annotations

from ..endpoint import Endpoint
from ..transport.serving import ThreadedEndpointServer

__all__ = ["EndpointThread"]

#: how long :meth:`EndpointThread.stop` lets requests in flight finish before closing connections
STOP_GRACE = 2.0


class EndpointThread(ThreadedEndpointServer):
    """Serves ``ep`` over h2c and HTTP/1.1 on ``host:port`` (default: a free loopback port)."""

    def __init__(self, ep: Endpoint, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(ep.handle, (host, port))
        self.endpoint = ep

    def start(self, timeout: float = 10.0) -> EndpointThread:
        super().start(timeout)
        return self

    def stop(self, grace: float = STOP_GRACE, timeout: float | None = 10.0) -> None:
        super().stop(grace, timeout)
