"""Helpers of the embedding tests: the endpoint of ``embedded.py`` served in a process of its own,
in one embedding mode, and a local server that answers a socket round trip after a delay."""

from __future__ import annotations

import os
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from restate_sync.client import IngressClient
from restate_sync.restate_server import RestateServer
from restate_sync.restate_server.processes import LoggedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.e2e.embedded:endpoint"

#: mode -> (served over HTTP/1.1 in request/response mode?, path prefix of the deployment)
MODES: dict[str, tuple[bool, str]] = {
    "pywsgi": (True, ""),
    "flask": (True, "/restate"),
    "start": (False, ""),
    "gunicorn-wsgi": (True, ""),
    "gunicorn-h2": (False, ""),
}


def gunicorn_command(
    worker: str, port: int, *, workers: int = 1, graceful_timeout: float = 10, app: str = APP
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        worker,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--graceful-timeout",
        str(graceful_timeout),
        "--no-control-socket",
        app,
    ]


class Served:
    """The test endpoint in ``mode``, as a process of its own (patched unless ``patched=False``)."""

    def __init__(
        self,
        mode: str,
        log_dir: Path,
        *,
        patched: bool = True,
        workers: int = 1,
        graceful_timeout: float = 10,
        app: str = APP,
        port: int | None = None,
    ) -> None:
        self.mode = mode
        self.http1, prefix = MODES[mode]
        self.port = port or free_port()
        self.side_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{prefix}"
        env = None
        if mode == "gunicorn-wsgi":
            worker = "gevent" if patched else "tests.e2e.embedded.UnpatchedGeventWorker"
            cmd = gunicorn_command(
                worker, self.port, workers=workers, graceful_timeout=graceful_timeout, app=app
            )
        elif mode == "gunicorn-h2":
            cmd = gunicorn_command(
                "restate_sync.gunicorn.Worker",
                self.port,
                workers=workers,
                graceful_timeout=graceful_timeout,
                app=app,
            )
            if not patched:
                env = {"RESTATE_SYNC_NO_PATCH": "1"}
        else:
            cmd = [sys.executable, "-m", "tests.e2e.embedded", mode, str(self.port)]
            if not patched:
                cmd.append("--no-patch")
            env = {"SIDE_PORT": str(self.side_port)}
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process = LoggedProcess(
            cmd,
            log_dir / f"{mode}{'' if patched else '-unpatched'}-{self.port}.log",
            env=full_env,
            cwd=ROOT,
            name=f"{mode} endpoint",
        )

    def start(self) -> Served:
        self.process.start()
        self.process.wait_listening(self.port, timeout=30)
        if self.mode == "start":
            self.process.wait_listening(self.side_port, timeout=30)
        return self

    def register(self, server: RestateServer) -> None:
        server.register_deployment(self.url, use_http_11=self.http1)

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def stop(self, grace: float = 15) -> float:
        return self.process.stop(grace)

    def __enter__(self) -> Served:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_env(always_suspend: bool) -> dict[str, str]:
    """restate-server's environment for ``pytest --always-suspend``: every await suspends."""
    return {"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s"} if always_suspend else {}


@contextmanager
def served_and_registered(
    mode: str, log_dir: Path, *, always_suspend: bool = False, **kwargs: Any
) -> Iterator[tuple[Served, IngressClient]]:
    """A fresh restate-server and the endpoint in ``mode``, registered with it."""
    with (
        RestateServer(partitions=2, env=server_env(always_suspend)) as server,
        Served(mode, log_dir, **kwargs) as served,
    ):
        served.register(server)
        yield served, IngressClient(server.ingress_url, timeout=120)


class DelayedEcho:
    """A threaded TCP server on loopback: reads a line, waits ``delay`` seconds, answers ``pong``.

    Records when each exchange started and ended, so a test can see how many overlapped.
    """

    def __init__(self, delay: float = 0.5) -> None:
        self.delay = delay
        self.intervals: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                started = time.monotonic()
                self.rfile.readline()
                time.sleep(owner.delay)
                with owner._lock:  # ended before the answer lets the client go on to the next one
                    owner.intervals.append((started, time.monotonic()))
                self.wfile.write(b"pong\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> DelayedEcho:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.intervals.clear()

    def peak_overlap(self) -> int:
        """The largest number of exchanges that were in progress at the same moment."""
        with self._lock:
            events = sorted(
                [(start, 1) for start, _ in self.intervals] + [(end, -1) for _, end in self.intervals],
                key=lambda e: (e[0], e[1]),
            )
        peak = current = 0
        for _, step in events:
            current += step
            peak = max(peak, current)
        return peak


def call_concurrently(
    client: IngressClient, count: int, handler: str, argument: Any
) -> tuple[list[Any], float]:
    """``count`` concurrent calls of ``Embedded/<handler>``; their results and the seconds they took."""
    with ThreadPoolExecutor(count) as pool:
        started = time.monotonic()
        results = list(pool.map(lambda _: client.call("Embedded", handler, argument), range(count)))
        return results, time.monotonic() - started


class Gate:
    """A threaded TCP server on loopback that holds every connection until :meth:`open` is called.

    A ``run`` step that does a round trip to it (``Embedded/gated``) is in flight until then.
    """

    def __init__(self) -> None:
        self.arrived = 0
        self._opened = threading.Event()
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.rfile.readline()
                with owner._lock:
                    owner.arrived += 1
                owner._opened.wait(120)
                self.wfile.write(b"open\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def open(self) -> None:
        self._opened.set()

    def __enter__(self) -> Gate:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._opened.set()
        self._server.shutdown()
        self._server.server_close()
