"""Running the endpoint server as a process: one process, or N pre-forked workers sharing a port.

SIGTERM or SIGINT stops accepting connections and gives in-flight invocations up to
``grace`` seconds before their connections are closed (the runtime retries what was cut off).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
from typing import Any

import gevent

from .h2limits import DEFAULT_LIMITS, H2Limits
from .h2server import H2Server, parse_bind
from .parent_watch import die_with_parent

__all__ = ["bind_listener", "serve", "serve_workers", "tune_process"]

logger = logging.getLogger("restate_sync.transport")

DEFAULT_GRACE = 10.0


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
    """Process-wide settings for a dedicated server process (used by ``restate-sync serve``).

    Greenlet spawn-tree tracking is off (one greenlet per invocation makes it measurable), the
    objects loaded so far (code, services) are moved out of the garbage collector's sight, and
    young-generation collections run less often.
    """
    gevent.config.track_greenlet_tree = False
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], 10_000), threshold[1], threshold[2])


def _run_server(endpoint: Any, listener: Any, grace: float, limits: H2Limits = DEFAULT_LIMITS) -> None:
    tune_process()
    server = H2Server(endpoint.handle, listener, limits=limits)
    server.start()

    def stop() -> None:
        logger.info("stopping: no new connections; in-flight invocations get %.0fs", grace)
        gevent.spawn(server.stop, grace)

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    host, port = server.address[:2]
    logger.info(
        "restate_sync pid %d serving %s on %s:%s", os.getpid(), ", ".join(endpoint.services), host, port
    )
    server.serve_forever()


def serve(endpoint: Any, bind: str, grace: float = DEFAULT_GRACE, limits: H2Limits = DEFAULT_LIMITS) -> None:
    """Serve ``endpoint`` on ``bind`` in this process until SIGTERM/SIGINT (``limits``: see docs/limits.md)."""
    _run_server(endpoint, parse_bind(bind), grace, limits)


def serve_workers(
    endpoint: Any, bind: str, workers: int, grace: float = DEFAULT_GRACE, limits: H2Limits = DEFAULT_LIMITS
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
                _run_server(endpoint, listener, grace, limits)
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
