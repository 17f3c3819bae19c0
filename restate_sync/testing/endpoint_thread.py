"""Serve an endpoint over h2c from a background thread with its own gevent hub.

Tests then use plain blocking clients from the main thread. The thread is a daemon; :meth:`stop`
closes the listener and every connection (restate-server keeps pooled connections to a
deployment that merely stopped listening, so they must be closed).
"""

from __future__ import annotations

import threading
from typing import Any

from ..endpoint import Endpoint

__all__ = ["EndpointThread"]


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
