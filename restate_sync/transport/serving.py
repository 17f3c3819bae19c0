"""Running the endpoint server: on the current hub, on a thread of its own, as a process, or N of them.

* :class:`EndpointServer` (``endpoint.start``) serves h2c and HTTP/1.1 on the current gevent hub
  and returns at once. It changes nothing process-wide: no signal handlers, no garbage-collector
  tuning. ``stop(grace)`` stops accepting, gives the requests in flight up to ``grace`` seconds,
  then closes every connection (the runtime retries what was cut off; it keeps pooled connections
  to a deployment that merely stopped listening, so they must be closed).
* :class:`ThreadedEndpointServer` (``endpoint.start_in_thread``) does the same on a gevent hub of
  its own in a daemon thread, for applications that do not use gevent.
* :func:`serve` (``endpoint.serve``, ``restate-sync serve``) is ``start`` plus SIGTERM/SIGINT
  handlers and a wait for the end, with the process tuned for serving (:func:`tune_process`);
  :func:`serve_workers` pre-forks N such processes sharing one listening socket.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import gevent
from gevent.event import Event

from ..exchange import Exchange, Handler
from .h2limits import DEFAULT_LIMITS, H2Limits
from .h2server import CLOSE_WAIT, H2Server, parse_bind
from .http1limits import DEFAULT_HTTP1_LIMITS, Http1Limits
from .parent_watch import die_with_parent
from .patching import warn_if_unpatched

__all__ = [
    "DEFAULT_GRACE",
    "EndpointServer",
    "InFlight",
    "ThreadedEndpointServer",
    "bind_listener",
    "serve",
    "serve_workers",
    "stop_servers",
    "tune_process",
]

logger = logging.getLogger("restate_sync.transport")

DEFAULT_GRACE = 10.0
"""Seconds the requests in flight get when a server stops (``--grace``)."""


def bind_listener(bind: str, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket for ``HOST:PORT`` (IPv4 or IPv6), SO_REUSEADDR set."""
    host, port = parse_bind(bind)
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(info[0], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(info[4])
    sock.listen(backlog)
    return sock


def tune_process() -> None:
    """Process-wide settings for a dedicated server process (``serve`` and ``restate-sync serve``).

    Greenlet spawn-tree tracking is off (one greenlet per invocation makes it measurable), the
    objects loaded so far (code, services) are moved out of the garbage collector's sight, and
    young-generation collections run less often.
    """
    gevent.config.track_greenlet_tree = False
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 10_000), threshold[1], threshold[2])


class InFlight:
    """Wraps a handler and counts the requests it is handling; :meth:`drain` waits for none.

    Servers call :meth:`handle` (a method, not ``__call__``: CPython calls a method inline, but an
    instance's ``__call__`` through C, which deepens the C stack every greenlet switch copies).
    """

    __slots__ = ("_idle", "count", "handler")

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.count = 0
        self._idle = Event()
        self._idle.set()

    def handle(self, exchange: Exchange) -> None:
        self.count += 1
        self._idle.clear()
        try:
            self.handler(exchange)
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    def drain(self, timeout: float, heartbeat: Callable[[], None] | None = None) -> bool:
        """Block the calling greenlet until no request is in flight; False after ``timeout`` seconds.

        ``heartbeat``, if given, is called about once a second while waiting (a gunicorn worker
        tells its arbiter it is alive).
        """
        deadline = time.monotonic() + timeout
        while self.count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if heartbeat is None:
                self._idle.wait(remaining)
            else:
                heartbeat()
                self._idle.wait(min(1.0, remaining))
        return True


def stop_servers(
    servers: list[H2Server],
    in_flight: InFlight,
    grace: float,
    *,
    heartbeat: Callable[[], None] | None = None,
    on_timeout: Callable[[int], None] | None = None,
) -> bool:
    """The graceful stop every server takes: stop accepting, give the requests in flight up to
    ``grace`` seconds (none when ``grace <= 0``), then close every connection.

    ``heartbeat`` is called about once a second while waiting; ``on_timeout`` gets the number of
    requests still in flight when the grace ran out, before their connections are closed (the
    runtime retries them). Returns whether they all ended in time.
    """
    for server in servers:
        server.close()
    idle = grace > 0 and in_flight.drain(grace, heartbeat)
    if grace > 0 and not idle and on_timeout is not None:
        on_timeout(in_flight.count)
    for server in servers:
        server.stop(timeout=CLOSE_WAIT if idle else 0)
    return idle


def _url(host: str, port: int) -> str:
    """``http://host:port``, an IPv6 host in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _log_timeout(grace: float, count: int) -> None:
    logger.warning(
        "%d request(s) still in flight after the %gs grace period; closing their connections "
        "(the runtime retries them)",
        count,
        grace,
    )


def _listener(bind: str | tuple[str, int] | None, listener: Any) -> Any:
    if (bind is None) == (listener is None):
        raise ValueError("give exactly one of bind='HOST:PORT' and listener=<socket or (host, port)>")
    if listener is not None:
        return listener
    return parse_bind(bind) if isinstance(bind, str) else bind


class EndpointServer:
    """An endpoint server on the current gevent hub (what ``endpoint.start`` returns).

    ::

        server = endpoint.start(bind="127.0.0.1:9080")   # serving once this returns
        ...
        server.stop(grace=10)                             # or: with endpoint.start(...) as server:
    """

    def __init__(
        self,
        handler: Handler,
        bind: str | tuple[str, int] | None = None,
        *,
        listener: Any = None,
        limits: H2Limits = DEFAULT_LIMITS,
        http1_limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
    ) -> None:
        self.in_flight = InFlight(handler)
        self._server = H2Server(self.in_flight.handle, _listener(bind, listener), limits, http1_limits)
        self._stopping = False
        self._stopped = Event()

    def start(self) -> EndpointServer:
        """Bind (if not bound yet) and start accepting; returns at once."""
        self._server.start()
        return self

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on (the real port when bound to port 0)."""
        host, port = self._server.address[:2]
        return host, port

    @property
    def url(self) -> str:
        return _url(*self.address)

    def stop(self, grace: float = DEFAULT_GRACE) -> None:
        """Stop accepting; give in-flight requests up to ``grace`` seconds; close every connection.

        Safe to call more than once and from several greenlets: later calls wait for the first.
        """
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        try:
            stop_servers([self._server], self.in_flight, grace, on_timeout=partial(_log_timeout, grace))
        finally:
            self._stopped.set()

    def join(self, timeout: float | None = None) -> bool:
        """Block the calling greenlet until the server has stopped; False after ``timeout``."""
        return bool(self._stopped.wait(timeout))

    @property
    def stopped(self) -> bool:
        return bool(self._stopped.is_set())

    def __enter__(self) -> EndpointServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ThreadedEndpointServer:
    """An endpoint server on its own gevent hub in a daemon thread (``endpoint.start_in_thread``).

    For applications that do not use gevent. Handlers run on that thread's hub: they are
    concurrent with one another only where they block cooperatively — on the context (``ctx``
    calls) and on I/O done through gevent (a monkey-patched standard library, ``gevent.socket``,
    ...). Plain blocking I/O in a handler or ``run`` block holds up every invocation of this
    endpoint (not the application's other threads) while it lasts; CPU-bound work holds the
    GIL as any thread does. ``run(..., background=True)`` moves a block onto a thread pool.
    """

    def __init__(
        self,
        handler: Handler,
        bind: str | tuple[str, int] | None = None,
        *,
        listener: Any = None,
        limits: H2Limits = DEFAULT_LIMITS,
        http1_limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
    ) -> None:
        self._args = (handler, bind)
        self._kwargs: dict[str, Any] = {"listener": listener, "limits": limits, "http1_limits": http1_limits}
        _listener(bind, listener)  # the argument error here, not on the thread
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._error: BaseException | None = None
        self._wake: Any = None
        self._grace = DEFAULT_GRACE
        self._address: tuple[str, int] | None = None
        self._thread = threading.Thread(target=self._run, name="restate-sync-endpoint", daemon=True)

    def start(self, timeout: float = 10.0) -> ThreadedEndpointServer:
        """Start the thread and wait until the server listens (or failed to start)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the endpoint server did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"the endpoint server failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        try:
            server = EndpointServer(*self._args, **self._kwargs).start()
            self._address = server.address
            hub = gevent.get_hub()
            stop_requested = Event()
            self._wake = hub.loop.async_()
            self._wake.start(stop_requested.set)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self._stopped.set()
            return
        self._ready.set()
        try:
            stop_requested.wait()
            server.stop(self._grace)
        finally:
            self._wake.close()
            self._stopped.set()

    @property
    def address(self) -> tuple[str, int]:
        assert self._address is not None, "ThreadedEndpointServer not started"
        return self._address

    @property
    def url(self) -> str:
        return _url(*self.address)

    def stop(self, grace: float = DEFAULT_GRACE, timeout: float | None = None) -> None:
        """Stop as :meth:`EndpointServer.stop` does and wait for it (``timeout``: how long at most)."""
        if self._wake is None or self._stopped.is_set():
            return
        self._grace = grace
        self._wake.send()
        if not self._stopped.wait(timeout if timeout is not None else grace + 10):
            raise RuntimeError("the endpoint server did not stop in time")
        self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait (this thread) until the server has stopped; False after ``timeout``."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> ThreadedEndpointServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve_until_signalled(
    endpoint: Any, listener: Any, grace: float, limits: H2Limits, http1_limits: Http1Limits
) -> None:
    tune_process()
    warn_if_unpatched("serve")
    server = EndpointServer(endpoint.handle, listener=listener, limits=limits, http1_limits=http1_limits)
    server.start()

    def stop() -> None:
        logger.info("stopping: no new connections; in-flight invocations get %gs", grace)
        gevent.spawn(server.stop, grace)

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    host, port = server.address
    logger.info(
        "restate_sync pid %d serving %s on %s:%s", os.getpid(), ", ".join(endpoint.services), host, port
    )
    server.join()


def serve(
    endpoint: Any,
    bind: str,
    grace: float = DEFAULT_GRACE,
    limits: H2Limits = DEFAULT_LIMITS,
    http1_limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
) -> None:
    """Serve ``endpoint`` on ``bind`` in this process until SIGTERM/SIGINT (limits: docs/limits.md)."""
    _serve_until_signalled(endpoint, parse_bind(bind), grace, limits, http1_limits)


def serve_workers(
    endpoint: Any,
    bind: str,
    workers: int,
    grace: float = DEFAULT_GRACE,
    limits: H2Limits = DEFAULT_LIMITS,
    http1_limits: Http1Limits = DEFAULT_HTTP1_LIMITS,
) -> int:
    """Pre-fork ``workers`` processes that accept on one shared socket; returns an exit code.

    The parent only supervises: a worker that dies unexpectedly is replaced; SIGTERM/SIGINT are
    forwarded to every worker and the parent exits once they are gone. A worker whose supervisor
    is killed gets SIGTERM itself (:func:`.parent_watch.die_with_parent`) and stops gracefully.
    """
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    listener = bind_listener(bind)
    children: dict[int, int] = {}
    stopping = False
    supervisor = os.getpid()

    def spawn(slot: int) -> None:
        pid = os.fork()  # gevent's fork: the child gets a fresh hub
        if pid == 0:
            die_with_parent(supervisor)  # a killed supervisor leaves no worker behind
            code = 0
            try:
                _serve_until_signalled(endpoint, listener, grace, limits, http1_limits)
            except BaseException:
                logger.exception("worker %d crashed", slot)
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = slot

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for slot in range(workers):
        spawn(slot)
    logger.info("restate_sync supervisor pid %d started %d workers on %s", os.getpid(), workers, bind)
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            slot = children.pop(pid, -1)
            if slot < 0:
                continue
            if not stopping:
                logger.error("worker %d (pid %d) exited with status %d; replacing it", slot, pid, status)
                spawn(slot)
    finally:
        listener.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
