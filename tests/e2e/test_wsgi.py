"""``endpoint.app``, the WSGI application: under ``gevent.pywsgi``, mounted in a Flask app, and
answering exactly as the built-in HTTP/1.1 server does (routing, negotiation, identity, limits)."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import restate_sync as restate
from restate_sync.identity import format_public_key, sign_request_token
from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder, encode_frame
from restate_sync.protocol.messages import pb

from .embedding import served_and_registered

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

INVOKE_V6 = "application/vnd.restate.invocation.v6"
MANIFEST_V4 = "application/vnd.restate.endpointmanifest.v4+json"
LIMIT = 256 * 1024


class Echo(restate.Service):
    @restate.handler
    def plain(ctx: restate.Context, value: object) -> object:
        return value

    @restate.handler
    def step(ctx: restate.Context, value: object) -> object:
        return ctx.run_sync("copy", lambda: value)


class WsgiThread:
    """A WSGI app under ``gevent.pywsgi.WSGIServer`` on its own hub in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._wake: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import gevent.event
        from gevent.pywsgi import WSGIServer

        server = WSGIServer(("127.0.0.1", 0), self.app, log=None)
        server.start()
        self.address = server.address[:2]
        done = gevent.event.Event()
        self._wake = gevent.get_hub().loop.async_()
        self._wake.start(done.set)
        self._ready.set()
        done.wait()
        server.stop(timeout=1)
        self._stopped.set()

    def __enter__(self) -> WsgiThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._wake.send()
        assert self._stopped.wait(10)


def start_and_input(payload: bytes, known_entries: int = 1) -> bytes:
    start = pb.StartMessage(id=b"\x01" * 24, debug_id="inv_1wsgi", known_entries=known_entries)
    inp = pb.InputCommandMessage()
    inp.value.content = payload
    return encode_frame(m.START, start.SerializeToString()) + encode_frame(m.INPUT, inp.SerializeToString())


def messages(body: bytes) -> list[tuple[int, bytes]]:
    return [(t, p) for t, _f, p in FrameDecoder().feed(body)]


def exchange(
    address: tuple[str, int], method: str, path: str, body: bytes | None = None, **headers: str
) -> Any:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request(
            method, path, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()}
        )
        response = connection.getresponse()
        return (
            response.status,
            response.getheader("content-type"),
            response.getheader("x-restate-server"),
            response.read(),
        )
    finally:
        connection.close()


def raw(address: tuple[str, int], data: bytes, timeout: float = 5) -> bytes:
    """Send ``data``; read one response (by its content-length) or until the server closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            None,
        )
        while (length is None or len(body) < length) and (chunk := sock.recv(65536)):
            body += chunk
    return head + b"\r\n\r\n" + body


# ---------------------------------------------------------------------------- the same answers


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def servers(key: Ed25519PrivateKey) -> Iterator[dict[str, tuple[str, int]]]:
    """The built-in server and the WSGI app, each with and without identity keys."""
    plain = restate.endpoint(Echo)
    signed = restate.endpoint(Echo).identity_key(format_public_key(key.public_key()))
    builtin = plain.start_in_thread(bind="127.0.0.1:0")
    builtin_signed = signed.start_in_thread(bind="127.0.0.1:0")
    with WsgiThread(plain.wsgi_app(max_body_size=LIMIT)) as wsgi, WsgiThread(signed.app) as wsgi_signed:
        yield {
            "builtin": builtin.address,
            "builtin-signed": builtin_signed.address,
            "wsgi": wsgi.address,
            "wsgi-signed": wsgi_signed.address,
        }
    builtin.stop(grace=1)
    builtin_signed.stop(grace=1)


REQUESTS: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("GET", "/health", None, {}),
    ("GET", "/discover", None, {"accept": MANIFEST_V4}),
    ("GET", "/some/prefix/discover", None, {"accept": "application/vnd.restate.endpointmanifest.v2+json"}),
    ("GET", "/discover", None, {"accept": "application/vnd.restate.endpointmanifest.v9+json"}),
    ("GET", "/discover", None, {}),
    ("GET", "/nope", None, {}),
    ("GET", "/invoke/Echo/plain", None, {}),
    ("POST", "/invoke/Echo/plain", b"{}", {"content_type": "application/json"}),
    ("POST", "/invoke/Echo/plain", b"", {"content_type": "application/vnd.restate.invocation.v99"}),
    ("POST", "/invoke/Echo/plain", b"", {"content_type": "application/vnd.restate.invocation.v²"}),
    ("POST", "/invoke/Echo/nope", b"", {"content_type": INVOKE_V6}),
    ("POST", "/invoke/Nope/plain", b"", {"content_type": INVOKE_V6}),
    ("POST", "/prefix/invoke/Echo/plain", start_and_input(b'"same"'), {"content_type": INVOKE_V6}),
    ("POST", "/invoke/Echo/step", start_and_input(b'"same"'), {"content_type": INVOKE_V6}),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r[0]} {r[1]} {r[3]}")
@pytest.mark.parametrize("signed", [False, True], ids=["open", "identity"])
def test_the_wsgi_app_answers_as_the_builtin_server(servers, request_, signed) -> None:
    method, path, body, headers = request_
    suffix = "-signed" if signed else ""
    builtin = exchange(servers["builtin" + suffix], method, path, body, **headers)
    wsgi = exchange(servers["wsgi" + suffix], method, path, body, **headers)
    assert wsgi[:3] == builtin[:3]
    if builtin[1] == INVOKE_V6:
        assert messages(wsgi[3]) == messages(builtin[3])
    else:
        assert wsgi[3] == builtin[3]


def test_discovery_over_wsgi_announces_request_response(servers) -> None:
    status, content_type, _, body = exchange(servers["wsgi"], "GET", "/discover", accept=MANIFEST_V4)
    assert (status, content_type) == (200, MANIFEST_V4)
    assert json.loads(body)["protocolMode"] == "REQUEST_RESPONSE"


def test_a_signed_request_is_accepted(servers, key) -> None:
    token = sign_request_token(key, format_public_key(key.public_key()), "/invoke/Echo/plain")
    status, content_type, _, body = exchange(
        servers["wsgi-signed"],
        "POST",
        "/restate/invoke/Echo/plain",
        start_and_input(b'"signed"'),
        content_type=INVOKE_V6,
        x_restate_signature_scheme="v1",
        x_restate_jwt_v1=token,
    )
    assert (status, content_type) == (200, INVOKE_V6)
    assert [t for t, _ in messages(body)] == [m.OUTPUT, m.END]


# ---------------------------------------------------------------------------- limits


def head(path: str, framing: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: {INVOKE_V6}\r\n{framing}\r\n\r\n".encode()


def test_content_length_above_the_limit_is_413_before_the_body_is_sent(servers) -> None:
    answer = raw(servers["wsgi"], head("/invoke/Echo/plain", f"content-length: {LIMIT + 1}"))
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"max_body_size" in answer


def test_a_chunked_body_crossing_the_limit_is_413(servers) -> None:
    # the attempt waits for a second entry (a 1 MiB message): nothing is answered before the limit
    prefix = start_and_input(b'"x"', known_entries=2) + struct.pack(">HHI", m.INPUT, 0, 1024 * 1024)
    with socket.create_connection(servers["wsgi"], timeout=5) as sock:
        sock.sendall(head("/invoke/Echo/plain", "transfer-encoding: chunked"))
        sock.sendall(f"{len(prefix):x}\r\n".encode() + prefix + b"\r\n")
        filler = b"4000\r\n" + b"\0" * 0x4000 + b"\r\n"
        received = b""
        try:
            for _ in range((LIMIT // 0x4000) + 4):
                sock.sendall(filler)
        except OSError:
            pass
        sock.settimeout(5)
        while b"\r\n\r\n" not in received and (chunk := sock.recv(65536)):
            received += chunk
    assert received.startswith(b"HTTP/1.1 413 "), received[:200]


def test_an_unsigned_request_is_refused_before_its_body_is_read(servers) -> None:
    answer = raw(servers["wsgi-signed"], head("/invoke/Echo/plain", "content-length: 33554432"))
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


def test_both_content_length_and_transfer_encoding_is_400_without_reading_the_body() -> None:
    # pywsgi drops the content-length of a chunked request and gunicorn refuses it with 400
    # itself, so the app's own check is shown with a WSGI call of its own
    class Unreadable:
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the body was read")

    started: list[str] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/invoke/Echo/plain",
        "CONTENT_TYPE": INVOKE_V6,
        "CONTENT_LENGTH": "5",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": Unreadable(),
        "wsgi.input_terminated": True,
    }
    body = b"".join(restate.endpoint(Echo).app(environ, lambda status, headers: started.append(status)))
    assert started == ["400 Bad Request"]
    assert b"RFC 9112" in body


# ---------------------------------------------------------------------------- through restate-server


def test_pywsgi_serves_endpoint_app_to_restate_server(tmp_path: Path, always_suspend: bool) -> None:
    with served_and_registered("pywsgi", tmp_path, always_suspend=always_suspend) as (_served, client):
        assert client.call("Embedded", "greet", "pywsgi") == "HELLO, PYWSGI!"
        key = uuid.uuid4().hex
        assert client.call("Counter", "add", 1, key=key) == 1
        assert client.call("Counter", "add", 1, key=key) == 2


def test_flask_routes_and_restate_handlers_share_one_port(tmp_path: Path, always_suspend: bool) -> None:
    with served_and_registered("flask", tmp_path, always_suspend=always_suspend) as (served, client):
        assert served.url.endswith("/restate")
        assert client.call("Embedded", "greet", "flask") == "HELLO, FLASK!"
        status, _, _, body = exchange(("127.0.0.1", served.port), "GET", "/ping")
        assert (status, body) == (200, b"pong from flask")
        status, _, _, body = exchange(("127.0.0.1", served.port), "GET", "/restate/health")
        assert (status, body) == (200, b'{"status":"ok"}')
