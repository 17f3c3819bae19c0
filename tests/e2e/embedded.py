"""The endpoint the embedding tests serve, in a process of its own, in one of the embedding modes.

    python -m tests.e2e.embedded MODE PORT [--no-patch]

MODE:

* ``pywsgi`` — ``gevent.pywsgi.WSGIServer(("127.0.0.1", PORT), endpoint.app)``;
* ``flask`` — a Flask app with its own routes (``/ping``) and the endpoint mounted at ``/restate``
  with werkzeug's ``DispatcherMiddleware``, under pywsgi;
* ``start`` — ``endpoint.start(bind="127.0.0.1:PORT")`` (h2c and HTTP/1.1) next to another gevent
  server on the same hub: a plain WSGI app under pywsgi on ``SIDE_PORT``.

Under gunicorn the module is the application instead: ``gunicorn -k gevent tests.e2e.embedded:endpoint``
or ``-k restate_sync.gunicorn.Worker tests.e2e.embedded:endpoint``. :class:`UnpatchedGeventWorker`
is gunicorn's gevent worker without its ``monkey.patch_all()`` (gunicorn's own always patches),
to show what an unpatched process does.

The process monkey-patches the standard library first unless ``--no-patch`` is given; it prints
``READY`` once it serves and stops gracefully on SIGTERM.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--no-patch" not in sys.argv:
    from gevent import monkey

    monkey.patch_all()

import logging
import os
import signal
import socket
import time
from typing import Any

import restate_sync as restate


class Embedded(restate.Service):
    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        greeting = ctx.run_sync("greeting", lambda: f"Hello, {name}!")
        # a second step: one more suspend/replay cycle in request/response mode
        return ctx.run_sync("shout", lambda: greeting.upper())

    @restate.handler
    def round_trip(ctx: restate.Context, address: list[Any]) -> str:
        """A ``run`` step doing one blocking socket round trip to ``(host, port)``."""

        def call() -> str:
            with socket.create_connection((address[0], address[1]), timeout=30) as sock:
                sock.sendall(b"ping\n")
                return sock.recv(64).decode().strip()

        return ctx.run_sync("round-trip", call)

    @restate.handler
    def gated(ctx: restate.Context, address: list[Any]) -> int:
        """A ``run`` step waiting on a round trip to ``(host, port)``; returns the serving pid."""

        def wait() -> int:
            with socket.create_connection((address[0], address[1]), timeout=120) as sock:
                sock.sendall(b"let me through\n")
                sock.recv(64)
            return os.getpid()

        return ctx.run_sync("gate", wait)

    @restate.handler
    def slow(ctx: restate.Context, seconds: float) -> int:
        """A ``run`` step that takes ``seconds`` (``time.sleep``, patched); returns the serving pid."""

        def nap() -> int:
            time.sleep(seconds)
            return os.getpid()

        return ctx.run_sync("nap", nap)

    @restate.handler
    def pid(ctx: restate.Context) -> int:
        return os.getpid()


class Counter(restate.VirtualObject):
    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        current = ctx.get("count") or 0
        ctx.set("count", current + amount)
        return current + amount


endpoint = restate.endpoint(Embedded, Counter)
app = endpoint.app


def _ping_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A plain WSGI app, the 'other' server of the ``start`` mode."""
    body = b"pong from the side app"
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]


def _flask_app() -> Any:
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    flask_app = Flask("embedded")

    @flask_app.get("/ping")
    def ping() -> str:
        return "pong from flask"

    return DispatcherMiddleware(flask_app.wsgi_app, {"/restate": endpoint.app})


try:  # only under gunicorn, which the worker class below is for
    from gunicorn.workers.ggevent import GeventWorker

    class UnpatchedGeventWorker(GeventWorker):  # type: ignore[misc]
        """gunicorn's gevent worker without ``monkey.patch_all()`` (its sockets still gevent's)."""

        def patch(self) -> None:
            from gevent import socket as gsocket

            self.sockets = [
                gsocket.socket(s.FAMILY, gsocket.SOCK_STREAM, fileno=s.sock.detach()) for s in self.sockets
            ]

except ImportError:  # pragma: no cover - gunicorn is a dev dependency
    pass


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import gevent
    from gevent.pywsgi import WSGIServer

    mode, port = argv[0], int(argv[1])
    servers: list[Any] = []
    if mode == "pywsgi":
        servers.append(WSGIServer(("127.0.0.1", port), endpoint.app, log=None))
    elif mode == "flask":
        servers.append(WSGIServer(("127.0.0.1", port), _flask_app(), log=None))
    elif mode == "start":
        side = WSGIServer(("127.0.0.1", int(os.environ["SIDE_PORT"])), _ping_app, log=None)
        servers.append(side)
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    for server in servers:
        server.start()
    started = endpoint.start(bind=f"127.0.0.1:{port}") if mode == "start" else None
    done = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, done.set)
    print("READY", flush=True)
    done.wait()
    if started is not None:
        started.stop(grace=5)
    for server in servers:
        server.stop(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
