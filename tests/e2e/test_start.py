"""``endpoint.start`` (on the current hub, next to another gevent server) and
``endpoint.start_in_thread`` (its own hub, for applications without gevent)."""

from __future__ import annotations

import gc
import signal
import urllib.request
import uuid
from pathlib import Path

import gevent
import pytest
from gevent import socket as gsocket

import restate_sync as restate
from restate_sync.client import AdminClient, IngressClient
from restate_sync.restate_server import RestateServer

from .embedding import Served, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


class Napper(restate.Service):
    @restate.handler
    def nap(ctx: restate.Context, seconds: float) -> str:
        ctx.sleep(seconds).result()
        return "rested"


class Tally(restate.VirtualObject):
    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        total = (ctx.get("total") or 0) + amount
        ctx.set("total", total)
        return total


def test_start_next_to_another_gevent_server_in_one_process(tmp_path: Path, always_suspend: bool) -> None:
    with (
        RestateServer(partitions=2, env=server_env(always_suspend)) as server,
        Served("start", tmp_path) as served,
    ):
        served.register(server)
        (deployment,) = AdminClient(server.admin_url).deployments()
        assert deployment["protocol_type"] == "BidiStream", deployment
        client = IngressClient(server.ingress_url)
        assert client.call("Embedded", "greet", "start") == "HELLO, START!"
        assert client.call("Counter", "add", 7, key=uuid.uuid4().hex) == 7
        with urllib.request.urlopen(f"http://127.0.0.1:{served.side_port}/", timeout=10) as response:
            assert response.read() == b"pong from the side app"
        # one process serves both: the endpoint's pid is the side app's process
        assert client.call("Embedded", "pid") == served.process.pid
        assert "not monkey-patched" not in served.log()


def _gevent_get(address: tuple[str, int], path: str) -> bytes:
    """GET over a gevent socket (cooperative: the hub keeps serving while it waits)."""
    with gsocket.create_connection(address, timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_start_serves_on_the_current_hub_and_changes_no_process_state() -> None:
    before = (gc.get_threshold(), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    tracking = gevent.config.track_greenlet_tree
    endpoint = restate.endpoint(Napper)
    with endpoint.start(bind="127.0.0.1:0") as server:
        host, port = server.address
        assert port > 0
        assert _gevent_get((host, port), "/health").endswith(b'{"status":"ok"}')
        assert server.in_flight.count == 0
        assert not server.join(timeout=0.01)  # still serving
    assert server.join(timeout=0)
    after = (gc.get_threshold(), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    assert after == before
    assert gevent.config.track_greenlet_tree == tracking
    with pytest.raises(OSError):
        _gevent_get((host, port), "/health")
    server.stop()  # a second stop is a no-op


def test_start_takes_a_listening_socket() -> None:
    listener = gsocket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = restate.endpoint(Napper).start(listener=listener)
    try:
        assert server.address == listener.getsockname()
        assert b"200 OK" in _gevent_get(server.address, "/health")
    finally:
        server.stop(grace=0)


def test_start_needs_exactly_one_of_bind_and_listener() -> None:
    endpoint = restate.endpoint(Napper)
    with pytest.raises(ValueError, match="exactly one"):
        endpoint.start()
    with pytest.raises(ValueError, match="exactly one"):
        endpoint.start(bind="127.0.0.1:0", listener=("127.0.0.1", 0))


def test_start_in_thread_serves_an_application_without_gevent(always_suspend: bool) -> None:
    endpoint = restate.endpoint(Napper, Tally)
    with (
        endpoint.start_in_thread(bind="127.0.0.1:0") as server,
        RestateServer(partitions=2, env=server_env(always_suspend)) as restate_server,
    ):
        restate_server.register_deployment(server.url)
        client = IngressClient(restate_server.ingress_url, timeout=60)
        key = uuid.uuid4().hex
        assert client.call("Tally", "add", 2, key=key) == 2
        assert client.call("Tally", "add", 3, key=key) == 5
        # plain blocking clients in this thread, the endpoint on its own hub meanwhile
        with urllib.request.urlopen(f"{server.url}/health", timeout=10) as response:
            assert response.status == 200
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(10) as pool:
            naps = list(pool.map(lambda _: client.call("Napper", "nap", 1.0), range(10)))
        assert naps == ["rested"] * 10
    assert server.join(timeout=0)
