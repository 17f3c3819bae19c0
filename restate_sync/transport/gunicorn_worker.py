"""A gunicorn worker class that serves an endpoint over h2c (bidirectional streaming) and HTTP/1.1.

::

    gunicorn -k restate_sync.gunicorn.Worker --workers 2 --bind 0.0.0.0:9080 module:endpoint

gunicorn keeps what it is for — pre-forking ``--workers`` processes on its listening sockets,
replacing dead ones, graceful reload on SIGHUP, SIGTERM with ``--graceful-timeout`` — and each
worker runs the endpoint's own gevent HTTP/2 server on gunicorn's listeners instead of a WSGI
loop, so the runtime gets HTTP/2 with many concurrent, bidirectionally streamed invocations per
connection (gunicorn's own HTTP/2 support serves a connection's streams one after the other, and
its gevent worker speaks HTTP/1.1 to a WSGI app, i.e. request/response mode).

The application (``module:endpoint``) is a restate_sync ``Endpoint`` (``endpoint.app`` works too).

* **Patching.** Like gunicorn's gevent worker, the worker monkey-patches the standard library
  first thing after the fork; set ``RESTATE_SYNC_NO_PATCH=1`` (environment or ``--env``) to leave
  it alone (then a warning says that blocking I/O in handlers stalls the worker).
* **Stopping** (SIGTERM from gunicorn: shutdown, SIGHUP reload, a lost parent): the worker stops
  accepting and gives the requests in flight up to ``--graceful-timeout`` seconds, then closes
  every connection. SIGINT/SIGQUIT stop at once.
* **max_requests is ignored**: recycling a worker after N requests would cut the runtime's pooled
  HTTP/2 connections and every invocation streaming on them; a warning says so at boot.
* ``--worker-connections`` (default 1000) is the server's ``max_connections`` per listener:
  at the cap it stops accepting until a connection closes. gunicorn's HTTP settings
  (``--limit-request-*``, ``--keep-alive``) do not apply: the endpoint's server has its own
  (``docs/limits.md``). gunicorn's request hooks (``pre_request``/``post_request``) and access
  log are not called: requests never pass through gunicorn's HTTP code. TCP listeners only.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from typing import Any, cast

import gevent
from gevent import hub, monkey
from gevent import select as gselect
from gevent import socket as gsocket
from gunicorn.workers.base import Worker as BaseWorker

from ..exchange import Handler
from .h2limits import DEFAULT_LIMITS
from .h2server import H2Server
from .patching import warn_if_unpatched
from .serving import InFlight, stop_servers

__all__ = ["NO_PATCH_ENV", "Worker"]

NO_PATCH_ENV = "RESTATE_SYNC_NO_PATCH"


# the signals that stop a worker: SIGTERM gracefully, SIGINT and SIGQUIT at once
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


class Worker(BaseWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn worker: the restate_sync h2c/HTTP/1.1 server on gunicorn's listeners."""

    handler: Handler
    sockets: list[Any]
    _handled: set[int]  # the stop signals whose handlers ran

    def init_signals(self) -> None:
        self._handled = set()
        super().init_signals()

    def _patch_wanted(self) -> bool:
        env = getattr(self.cfg, "env", None) or {}
        return not (_truthy(os.environ.get(NO_PATCH_ENV)) or _truthy(env.get(NO_PATCH_ENV)))

    def init_process(self) -> None:
        if self._patch_wanted():
            monkey.patch_all()
        # gunicorn's listeners as gevent sockets, for the gevent server
        self.sockets = [
            gsocket.socket(s.FAMILY, gsocket.SOCK_STREAM, fileno=s.sock.detach()) for s in self.sockets
        ]
        hub.reinit()
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        target = self.wsgi
        handle = getattr(target, "handle", None)  # an Endpoint
        if handle is None:
            from .wsgi import WsgiApp

            if isinstance(target, WsgiApp):  # endpoint.app
                handle = target.handler
        if not callable(handle):
            raise TypeError(
                f"the restate_sync gunicorn worker serves a restate_sync Endpoint (module:endpoint), "
                f"got {type(target).__name__}; serve other WSGI apps with -k gevent"
            )
        self.handler = cast(Handler, handle)

    def notify(self) -> None:
        super().notify()
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False

    def run(self) -> None:
        warn_if_unpatched("gunicorn worker")
        if self.cfg.max_requests > 0:
            self.log.warning(
                "max_requests=%d is ignored by the restate_sync worker: recycling a worker would cut the "
                "runtime's HTTP/2 connections and every invocation streaming on them",
                self.cfg.max_requests,
            )
        in_flight = InFlight(self.handler)
        # gunicorn's --worker-connections bounds the open connections of each listener
        limits = replace(DEFAULT_LIMITS, max_connections=self.cfg.worker_connections)
        servers = [H2Server(in_flight.handle, sock, limits) for sock in self.sockets]
        for server in servers:
            server.start()
        while self.alive:
            self.notify()
            self._wait_for_signal(1.0)
        self._drain(servers, in_flight)

    def _wait_for_signal(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds; wake early when a signal arrives.

        gunicorn makes ``self.PIPE`` the interpreter's signal wakeup fd, into which the C-level
        signal handler writes the number of every signal it catches, before Python runs the
        handler. A stop signal read there whose Python handler has not run is handled here: seen
        once in CI, a reload's SIGTERM never set ``alive`` and the old worker served on, so the
        pipe is a second, independent path to the stop.
        """
        fd = self.PIPE[0]
        readable, _, _ = gselect.select([fd], [], [], timeout)
        if not readable:
            return
        try:
            caught = os.read(fd, 256)
        except BlockingIOError:
            return
        lost = [sig for sig in _STOP_SIGNALS if sig in caught and sig not in self._handled]
        for sig in lost:
            self.log.warning(
                "Worker (pid:%s) got %s but its handler did not run; handling it now",
                self.pid,
                signal.Signals(sig).name,
            )
            if sig == signal.SIGTERM:
                self.handle_exit(sig, None)
            else:
                self.handle_quit(sig, None)

    def _drain(self, servers: list[H2Server], in_flight: InFlight) -> None:
        """Stop accepting; wait (notifying the arbiter) for the requests in flight; close everything."""
        self.log.info("Worker draining (pid:%s): %d request(s) in flight", self.pid, in_flight.count)
        stop_servers(
            servers, in_flight, self.cfg.graceful_timeout, heartbeat=self.notify, on_timeout=self._log_timeout
        )

    def _log_timeout(self, count: int) -> None:
        self.log.warning(
            "Worker graceful timeout (pid:%s): %d request(s) still in flight; closing their "
            "connections (the runtime retries them)",
            self.pid,
            count,
        )

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._handled.add(sig)
        super().handle_exit(sig, frame)

    def handle_quit(self, sig: int, frame: Any) -> None:
        self._handled.add(sig)
        # out of the signal handler, so that gunicorn's blocking calls run on a greenlet
        gevent.spawn(super().handle_quit, sig, frame)

    def handle_usr1(self, sig: int, frame: Any) -> None:
        gevent.spawn(super().handle_usr1, sig, frame)
