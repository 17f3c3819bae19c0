"""HTTP/1.1 on the endpoint's port: request/response mode, directly and through restate-server."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import struct
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import gevent
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import restate_sync as restate
import restate_sync.testing
from restate_sync.exchange import SERVER_HEADER
from restate_sync.identity import format_public_key
from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder, encode_frame
from restate_sync.protocol.messages import pb
from restate_sync.testing import EndpointThread
from restate_sync.transport.http1limits import Http1Limits

pytestmark = pytest.mark.e2e

INVOKE_V6 = "application/vnd.restate.invocation.v6"
MANIFEST_V4 = "application/vnd.restate.endpointmanifest.v4+json"
ACCEPT_ALL = ", ".join(f"application/vnd.restate.endpointmanifest.v{i}+json" for i in range(1, 5))


# ---------------------------------------------------------------------------- services

SLOW_RUN_STARTED = threading.Event()
SLOW_RUN_CANCELLED = threading.Event()
GATE = threading.Event()


class H1Greeter(restate.Service):
    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        greeting = ctx.run_sync("greeting", lambda: f"Hello, {name}!")
        # a second step: one more suspend/replay cycle in request/response mode
        return ctx.run_sync("shout", lambda: greeting.upper())


class H1Counter(restate.VirtualObject):
    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        current = ctx.get("count") or 0
        ctx.set("count", current + amount)
        return current + amount

    @restate.shared
    def get(ctx: restate.ObjectSharedContext) -> int:
        return ctx.get("count") or 0


class H1Sleeper(restate.Service):
    @restate.handler
    def nap(ctx: restate.Context, times: int) -> str:
        for _ in range(times):
            ctx.sleep(0.05).result()
        return f"slept {times}x"


class H1Echo(restate.Service):
    @restate.handler
    def echo(ctx: restate.Context, value: object) -> object:
        return ctx.run_sync("copy", lambda: value)

    @restate.handler
    def plain(ctx: restate.Context, value: object) -> object:
        return value

    @restate.handler
    def slow(ctx: restate.Context) -> str:
        def wait() -> str:
            SLOW_RUN_STARTED.set()
            try:
                gevent.sleep(30)
            except gevent.GreenletExit:
                SLOW_RUN_CANCELLED.set()
                raise
            return "done"

        return ctx.run_sync("wait", wait)

    @restate.handler
    def gated(ctx: restate.Context) -> str:
        def wait() -> str:
            while not GATE.is_set():
                gevent.sleep(0.01)  # the endpoint's hub runs in another thread: poll
            return "opened"

        return ctx.run_sync("gate", wait)


SERVICES = (H1Greeter, H1Counter, H1Sleeper, H1Echo)


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def endpoint_thread():
    thread = EndpointThread(restate.endpoint(*SERVICES)).start()
    yield thread
    thread.stop()


@pytest.fixture
def conn(endpoint_thread):
    connection = http.client.HTTPConnection(*endpoint_thread.address, timeout=10)
    yield connection
    connection.close()


def start_and_input(payload: bytes) -> bytes:
    start = pb.StartMessage(id=b"\x01" * 24, debug_id="inv_1http1", known_entries=1, partial_state=True)
    inp = pb.InputCommandMessage()
    inp.value.content = payload
    return encode_frame(m.START, start.SerializeToString()) + encode_frame(m.INPUT, inp.SerializeToString())


def decode(body: bytes):
    return [(t, m.MESSAGE_CLASSES[t].FromString(p)) for t, _f, p in FrameDecoder().feed(body)]


def raw_exchange(address, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one response head; returns (head, bytes read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed inside a response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


# ---------------------------------------------------------------------------- direct HTTP/1.1


def test_health(conn):
    conn.request("GET", "/health")
    response = conn.getresponse()
    assert response.status == 200
    assert response.version == 11
    assert json.loads(response.read()) == {"status": "ok"}
    assert response.getheader("x-restate-server") == SERVER_HEADER[1]
    assert response.getheader("content-type") == "application/json"


@pytest.mark.parametrize("accept", [MANIFEST_V4, ACCEPT_ALL])
def test_discover_announces_request_response_mode(conn, accept):
    conn.request("GET", "/some/prefix/discover", headers={"accept": accept})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("content-type") == MANIFEST_V4
    manifest = json.loads(response.read())
    assert manifest["protocolMode"] == "REQUEST_RESPONSE"
    assert {s["name"] for s in manifest["services"]} == {s.__name__ for s in SERVICES}


def test_unknown_route_is_404(conn):
    conn.request("GET", "/nope")
    response = conn.getresponse()
    assert response.status == 404
    assert response.getheader("x-restate-server") == SERVER_HEADER[1]
    response.read()


def test_unknown_handler_is_404(conn):
    conn.request("POST", "/invoke/H1Echo/nope", body=b"", headers={"content-type": INVOKE_V6})
    response = conn.getresponse()
    assert response.status == 404
    assert b"unknown" in response.read()


def test_wrong_content_type_is_415(conn):
    conn.request("POST", "/invoke/H1Echo/plain", body=b"{}", headers={"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 415
    assert b"not a Restate invocation" in response.read()


def test_invocation_with_content_length_body(conn):
    body = start_and_input(b'"content-length"')
    conn.request("POST", "/invoke/H1Echo/plain", body=body, headers={"content-type": INVOKE_V6})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("content-type") == INVOKE_V6
    assert response.getheader("transfer-encoding") == "chunked"
    assert response.getheader("x-restate-server") == SERVER_HEADER[1]
    messages = decode(response.read())
    assert [t for t, _ in messages] == [m.OUTPUT, m.END]
    assert messages[0][1].value.content == b'"content-length"'


def test_invocation_with_chunked_body(conn):
    body = start_and_input(b'"chunked"')
    pieces = [body[:3], body[3:10], body[10:]]  # frame boundaries fall inside chunks
    conn.request(
        "POST",
        "/prefix/invoke/H1Echo/plain",
        body=iter(pieces),
        headers={"content-type": INVOKE_V6, "transfer-encoding": "chunked"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    assert response.status == 200
    messages = decode(response.read())
    assert [t for t, _ in messages] == [m.OUTPUT, m.END]
    assert messages[0][1].value.content == b'"chunked"'


def test_run_in_request_response_mode_proposes_then_suspends(conn):
    conn.request(
        "POST", "/invoke/H1Echo/echo", body=start_and_input(b'"x"'), headers={"content-type": INVOKE_V6}
    )
    messages = decode(conn.getresponse().read())
    assert [t for t, _ in messages] == [m.RUN, m.PROPOSE_RUN_COMPLETION, m.SUSPENSION]


def test_keep_alive_serves_several_requests_on_one_connection(conn):
    conn.request("GET", "/health")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    assert sock is not None
    for i in range(3):
        conn.request(
            "POST",
            "/invoke/H1Echo/plain",
            body=start_and_input(json.dumps(i).encode()),
            headers={"content-type": INVOKE_V6},
        )
        response = conn.getresponse()
        assert response.status == 200
        assert decode(response.read())[0][1].value.content == json.dumps(i).encode()
        assert conn.sock is sock  # same TCP connection, not reconnected
    conn.request("GET", "/discover", headers={"accept": ACCEPT_ALL})
    assert conn.getresponse().status == 200
    assert conn.sock is sock


def test_pipelined_requests_are_answered_in_order(endpoint_thread):
    request = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    last = b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    received = raw_exchange(endpoint_thread.address, request * 2 + last)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"200", b"200", b"404"]


def test_request_sent_while_a_response_streams_is_served_next(endpoint_thread):
    GATE.clear()
    body = start_and_input(b"")
    invoke = (
        b"POST /invoke/H1Echo/gated HTTP/1.1\r\nhost: x\r\n"
        + f"content-type: {INVOKE_V6}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(endpoint_thread.address, timeout=5) as sock:
        sock.sendall(invoke)
        head, received = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK")
        # the peer watcher reads this while the invocation is still running
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        # Give the watcher a moment to read the pipelined request while the run still blocks.
        # Not synchronisation: the assertions below hold whichever way the race goes; the pause
        # only makes the interesting interleaving (read during the invocation) the likely one.
        time.sleep(0.2)
        GATE.set()
        while chunk := sock.recv(65536):
            received += chunk
    invocation_body, _, rest = received.partition(b"0\r\n\r\n")
    assert b"HTTP/1.1 200 OK" in rest and rest.endswith(b'{"status":"ok"}')
    assert b"opened" in invocation_body  # the proposed run result, sent before suspending


def test_connection_close_is_honoured(endpoint_thread):
    received = raw_exchange(
        endpoint_thread.address, b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close" in head.lower()
    assert body == b'{"status":"ok"}'  # and then the server closed the connection


def test_http_1_0_client_gets_an_answer_and_a_close(endpoint_thread):
    received = raw_exchange(endpoint_thread.address, b"GET /health HTTP/1.0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b'{"status":"ok"}')


def test_expect_100_continue(endpoint_thread):
    body = start_and_input(b'"continued"')
    head = (
        b"POST /invoke/H1Echo/plain HTTP/1.1\r\nhost: x\r\n"
        + f"content-type: {INVOKE_V6}\r\ncontent-length: {len(body)}\r\n".encode()
        + b"expect: 100-continue\r\nconnection: close\r\n\r\n"
    )
    with socket.create_connection(endpoint_thread.address, timeout=5) as sock:
        sock.sendall(head)
        interim, rest = read_head(sock)
        assert interim == b"HTTP/1.1 100 Continue"
        assert rest == b""
        sock.sendall(body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in received.lower()


def test_malformed_request_gets_400_and_the_server_keeps_serving(endpoint_thread, caplog):
    with caplog.at_level(logging.WARNING, logger="restate_sync.transport"):
        received = raw_exchange(endpoint_thread.address, b"THIS IS NOT HTTP\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert f"x-restate-server: {SERVER_HEADER[1]}".encode() in received
    assert any("malformed HTTP/1.1 request" in r.getMessage() for r in caplog.records)
    # the next connection still works
    connection = http.client.HTTPConnection(*endpoint_thread.address, timeout=5)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n",
        b"POST /invoke/H1Echo/plain HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
        b"POST /invoke/H1Echo/plain HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["header-without-colon", "conflicting-content-length", "bad-chunk-size"],
)
def test_malformed_headers_and_bodies_get_400(endpoint_thread, request_bytes):
    received = raw_exchange(endpoint_thread.address, request_bytes)
    assert received.startswith(b"HTTP/1.1 400 ")


def test_oversized_request_head_gets_431(endpoint_thread):
    huge = b"x-filler: " + b"a" * (256 * 1024) + b"\r\n"
    received = raw_exchange(endpoint_thread.address, b"GET /health HTTP/1.1\r\nhost: x\r\n" + huge + b"\r\n")
    assert received.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_peer_leaving_during_an_invocation_stops_the_attempt(endpoint_thread, caplog):
    SLOW_RUN_STARTED.clear()
    SLOW_RUN_CANCELLED.clear()
    body = start_and_input(b"")
    request = (
        b"POST /invoke/H1Echo/slow HTTP/1.1\r\nhost: x\r\n"
        + f"content-type: {INVOKE_V6}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with caplog.at_level(logging.INFO, logger="restate_sync"):
        with socket.create_connection(endpoint_thread.address, timeout=5) as sock:
            sock.sendall(request)
            head, _ = read_head(sock)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert SLOW_RUN_STARTED.wait(5)
        assert SLOW_RUN_CANCELLED.wait(5), "the run kept going after the runtime went away"
    assert any("closed the connection during" in r.getMessage() for r in caplog.records)


class _BoomEndpoint(restate.Endpoint):
    def handle(self, exchange):
        if exchange.path == "/boom":
            raise RuntimeError("boom")
        super().handle(exchange)


def test_endpoint_exception_is_a_500_and_the_connection_stays_usable(caplog):
    thread = EndpointThread(_BoomEndpoint().bind(H1Echo)).start()
    connection = http.client.HTTPConnection(*thread.address, timeout=5)
    try:
        with caplog.at_level(logging.ERROR, logger="restate_sync.transport"):
            connection.request("GET", "/boom")
            response = connection.getresponse()
            assert response.status == 500
            assert response.getheader("x-restate-server") == SERVER_HEADER[1]
            response.read()
        assert any("error while serving GET /boom" in r.getMessage() for r in caplog.records)
        sock = connection.sock
        connection.request("GET", "/health")
        assert connection.getresponse().status == 200
        assert connection.sock is sock
    finally:
        connection.close()
        thread.stop()


def test_http2_still_served_on_the_same_port(endpoint_thread):
    from ..h2client import H2Client

    with H2Client(endpoint_thread.url) as client:
        response = client.request("GET", "/discover", {"accept": ACCEPT_ALL})
    assert response.status == 200
    assert json.loads(response.body)["protocolMode"] == "BIDI_STREAM"


# ---------------------------------------------------------------------------- through restate-server


@pytest.fixture(scope="module")
def env():
    with restate_sync.testing.start(*SERVICES, use_http_11=True) as environment:
        yield environment


def test_deployment_is_registered_as_http_1_1_request_response(env):
    (deployment,) = env.admin.deployments()
    assert deployment["http_version"] == "HTTP/1.1", deployment
    assert deployment["protocol_type"] == "RequestResponse", deployment


def test_greeter_with_runs(env):
    assert env.ingress.call("H1Greeter", "greet", "World") == "HELLO, WORLD!"


def test_counter_state(env):
    key = uuid.uuid4().hex
    assert env.ingress.call("H1Counter", "add", 5, key=key) == 5
    assert env.ingress.call("H1Counter", "add", 7, key=key) == 12
    assert env.ingress.call("H1Counter", "get", key=key) == 12


def test_sleep_suspends_and_resumes(env):
    assert env.ingress.call("H1Sleeper", "nap", 1) == "slept 1x"
    assert env.ingress.call("H1Sleeper", "nap", 3) == "slept 3x"


def test_large_journal_over_chunked_bodies(env):
    big = "x" * (300 * 1024)
    assert env.ingress.call("H1Echo", "echo", big) == big


def test_concurrent_invocations_use_several_connections(env):
    names = [f"n{i}" for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: env.ingress.call("H1Greeter", "greet", n), names))
    assert results == [f"HELLO, {n.upper()}!" for n in names]


# ---------------------------------------------------------------------------- limits (docs/limits.md)

LIMITS = Http1Limits(max_body_size=256 * 1024, head_timeout=0.5, idle_timeout=1.0, body_timeout=0.5)


@pytest.fixture(scope="module")
def limited():
    server = restate.endpoint(*SERVICES).start_in_thread(bind="127.0.0.1:0", http1_limits=LIMITS)
    yield server
    server.stop(grace=1)


@pytest.fixture(scope="module")
def signed_only():
    key = Ed25519PrivateKey.generate()
    ep = restate.endpoint(*SERVICES).identity_key(format_public_key(key.public_key()))
    server = ep.start_in_thread(bind="127.0.0.1:0")
    yield server
    server.stop(grace=1)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket timeout)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def invoke_head(path: str, framing: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {INVOKE_V6}\r\n{framing}\r\n\r\n".encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_content_length_above_the_limit_is_413_before_the_body_is_sent(limited):
    head = invoke_head("/invoke/H1Echo/plain", f"content-length: {LIMITS.max_body_size + 1}")
    with socket.create_connection(limited.address, timeout=5) as sock:
        sock.sendall(head)  # and not one byte of the body
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 413 "), received[:200]
    assert b"connection: close" in received.lower()
    assert b"max_body_size" in received


def waiting_start() -> bytes:
    """StartMessage (2 known entries) + InputCommand: the attempt waits for a second entry."""
    start = pb.StartMessage(id=b"\x02" * 24, debug_id="inv_1waiting", known_entries=2)
    inp = pb.InputCommandMessage()
    inp.value.content = b'"x"'
    return encode_frame(m.START, start.SerializeToString()) + encode_frame(m.INPUT, inp.SerializeToString())


def test_a_chunked_body_crossing_the_limit_is_413_and_the_connection_closed(limited):
    # nothing is answered before the body crosses the limit: the attempt waits for a second
    # entry, whose frame header declares a 1 MiB message
    prefix = waiting_start() + struct.pack(">HHI", m.INPUT, 0, 1024 * 1024)
    with socket.create_connection(limited.address, timeout=5) as sock:
        sock.sendall(invoke_head("/invoke/H1Echo/plain", "transfer-encoding: chunked") + chunk(prefix))
        sent = len(prefix)
        try:
            while sent <= LIMITS.max_body_size + 64 * 1024:
                sock.sendall(chunk(b"\0" * 16384))
                sent += 16384
        except OSError:
            pass  # the server may close before everything was sent
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 413 "), received[:200]


def test_an_unsigned_request_is_refused_on_its_head_without_reading_the_body(signed_only):
    head = invoke_head("/invoke/H1Echo/plain", "content-length: 33554432")  # 32 MiB, never sent
    with socket.create_connection(signed_only.address, timeout=5) as sock:
        sock.sendall(head)
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 401 Unauthorized\r\n"), received[:200]
    assert b"connection: close" in received.lower()


def test_expect_100_continue_is_not_answered_for_a_refused_request(limited):
    head = invoke_head("/invoke/H1Echo/nope", "content-length: 100\r\nexpect: 100-continue")
    with socket.create_connection(limited.address, timeout=5) as sock:
        sock.sendall(head)
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 404 Not Found\r\n"), received[:200]
    assert b"100 Continue" not in received


def test_both_content_length_and_transfer_encoding_is_400_and_the_connection_closed(limited):
    request = (
        invoke_head("/invoke/H1Echo/plain", "content-length: 5\r\ntransfer-encoding: chunked")
        + b"5\r\nhello\r\n0\r\n\r\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    with socket.create_connection(limited.address, timeout=5) as sock:
        sock.sendall(request)
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received[:200]
    assert b"RFC 9112" in received
    assert received.count(b"HTTP/1.1 ") == 1  # the request smuggled behind it is not answered


def test_a_head_not_complete_in_time_gets_408(limited):
    with socket.create_connection(limited.address, timeout=5) as sock:
        started = time.monotonic()  # before the server can have seen the first byte
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n")  # never finished
        received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received[:200]
    assert time.monotonic() - started >= LIMITS.head_timeout


def test_an_idle_keep_alive_connection_is_closed(limited):
    with socket.create_connection(limited.address, timeout=5) as sock:
        started = time.monotonic()  # the connection is idle from after the response on
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        head, body = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK")
        rest = read_until_closed(sock)  # the server closes once idle_timeout passed
    assert body + rest == b'{"status":"ok"}'
    assert time.monotonic() - started >= LIMITS.idle_timeout


def test_a_stalled_body_is_abandoned_with_408(limited):
    body = waiting_start()
    with socket.create_connection(limited.address, timeout=5) as sock:
        sock.sendall(invoke_head("/invoke/H1Echo/plain", f"content-length: {len(body) + 100}") + body)
        received = read_until_closed(sock)  # the last 100 bytes never come
    assert received.startswith(b"HTTP/1.1 408 "), received[:200]


def test_many_pipelined_requests_are_answered_in_order(limited):
    request = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    count = 3000  # about 100 KiB of requests, more than max_head_size is read ahead at a time
    with socket.create_connection(limited.address, timeout=10) as sock:
        sock.sendall(request * count + b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        received = read_until_closed(sock)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"200"] * count + [b"404"]
