"""The endpoint's HTTP surface, spoken to directly over h2c: routes, statuses, bad input."""

from __future__ import annotations

import json
import logging

import pytest

import restate_sync as restate
from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder, encode_frame
from restate_sync.protocol.messages import pb
from restate_sync.testing import EndpointThread

from ..h2client import H2Client
from . import services

INVOKE_V6 = "application/vnd.restate.invocation.v6"
ACCEPT_ALL = ", ".join(f"application/vnd.restate.endpointmanifest.v{i}+json" for i in range(1, 5))


@pytest.fixture(scope="module")
def endpoint_url():
    thread = EndpointThread(restate.endpoint(*services.ALL)).start()
    yield thread.url
    thread.stop()


@pytest.fixture
def client(endpoint_url):
    with H2Client(endpoint_url) as c:
        yield c


def start_and_input(payload: bytes) -> bytes:
    start = pb.StartMessage(id=b"\x01" * 24, debug_id="inv_1direct", known_entries=1, partial_state=True)
    inp = pb.InputCommandMessage()
    inp.value.content = payload
    return encode_frame(m.START, start.SerializeToString()) + encode_frame(m.INPUT, inp.SerializeToString())


def decode(body: bytes):
    return [(t, m.MESSAGE_CLASSES[t].FromString(p)) for t, _f, p in FrameDecoder().feed(body)]


def test_health(client):
    response = client.request("GET", "/health")
    assert response.status == 200
    assert json.loads(response.body) == {"status": "ok"}
    assert response.headers["x-restate-server"].startswith("restate-sync/")


@pytest.mark.parametrize("prefix", ["", "/some/prefix"])
def test_discover_negotiates_the_highest_manifest(client, prefix):
    response = client.request("GET", f"{prefix}/discover", {"accept": ACCEPT_ALL})
    assert response.status == 200
    assert response.headers["content-type"] == "application/vnd.restate.endpointmanifest.v4+json"
    manifest = json.loads(response.body)
    assert manifest["protocolMode"] == "BIDI_STREAM"
    assert (manifest["minProtocolVersion"], manifest["maxProtocolVersion"]) == (5, 7)
    assert {s["name"] for s in manifest["services"]} == {"Greeter", "Counter", "Flaky", "Echo"}


def test_discover_v2_only(client):
    response = client.request(
        "GET", "/discover", {"accept": "application/vnd.restate.endpointmanifest.v2+json"}
    )
    assert response.headers["content-type"] == "application/vnd.restate.endpointmanifest.v2+json"


def test_discover_unsupported_version_is_415(client):
    response = client.request(
        "GET", "/discover", {"accept": "application/vnd.restate.endpointmanifest.v1+json"}
    )
    assert response.status == 415
    assert b"manifest" in response.body
    assert "x-restate-server" in response.headers


def test_unknown_route_is_404(client):
    assert client.request("GET", "/nope").status == 404


@pytest.mark.parametrize(
    "content_type, fragment",
    [
        ("application/json", b"not a Restate invocation"),
        ("application/vnd.restate.invocation.v99", b"unsupported service protocol version"),
        ("application/vnd.restate.invocation.v4", b"unsupported service protocol version"),
    ],
)
def test_wrong_content_type_is_415_and_logged(client, caplog, content_type, fragment):
    with caplog.at_level(logging.WARNING, logger="restate_sync.endpoint"):
        response = client.request("POST", "/invoke/Greeter/greet", {"content-type": content_type}, b"")
    assert response.status == 415
    assert fragment in response.body
    assert any("invoke Greeter/greet" in r.getMessage() for r in caplog.records)


def test_missing_content_type_is_415(client):
    assert client.request("POST", "/invoke/Greeter/greet", {}, b"").status == 415


@pytest.mark.parametrize("path", ["/invoke/Nope/greet", "/invoke/Greeter/nope"])
def test_unknown_service_or_handler_is_404(client, path):
    response = client.request("POST", path, {"content-type": INVOKE_V6}, b"")
    assert response.status == 404
    assert b"unknown" in response.body


def test_direct_invocation_round_trip(client):
    body = start_and_input(json.dumps("direct").encode())
    response = client.request("POST", "/prefix/invoke/Echo/echo", {"content-type": INVOKE_V6}, body)
    assert response.status == 200
    assert response.headers["content-type"] == INVOKE_V6
    kinds = [t for t, _ in decode(response.body)]
    assert kinds == [m.OUTPUT, m.END]
    assert decode(response.body)[0][1].value.content == b'"direct"'


def test_malformed_frame_gets_an_error_message_and_the_server_keeps_serving(client, caplog):
    garbage = encode_frame(m.START, b"\xff\xff\xff\xff")
    with caplog.at_level(logging.ERROR):
        response = client.request("POST", "/invoke/Echo/echo", {"content-type": INVOKE_V6}, garbage)
    assert response.status == 200
    ((kind, error),) = decode(response.body)
    assert kind == m.ERROR and error.code == 500 and "decode" in error.message
    assert any("failed" in r.getMessage() for r in caplog.records)
    # same connection, next request
    ok = client.request("POST", "/invoke/Echo/echo", {"content-type": INVOKE_V6}, start_and_input(b"1"))
    assert [t for t, _ in decode(ok.body)] == [m.OUTPUT, m.END]


def test_undecodable_json_input_is_a_terminal_400(client):
    response = client.request(
        "POST", "/invoke/Greeter/greet", {"content-type": INVOKE_V6}, start_and_input(b"{not json")
    )
    (_, output), (end_kind, _) = decode(response.body)
    assert end_kind == m.END
    assert output.failure.code == 400 and "cannot decode the input" in output.failure.message


def test_input_closed_mid_replay_is_a_protocol_violation(client):
    start = pb.StartMessage(id=b"\x01" * 24, debug_id="inv_1x", known_entries=3)
    response = client.request(
        "POST",
        "/invoke/Echo/echo",
        {"content-type": INVOKE_V6},
        encode_frame(m.START, start.SerializeToString()),
    )
    ((kind, error),) = decode(response.body)
    assert kind == m.ERROR and error.code == 571


def test_suspends_when_input_closes_before_a_completion(client):
    body = start_and_input(b'"k"')
    response = client.request("POST", "/invoke/Flaky/swallow", {"content-type": INVOKE_V6}, body)
    messages = decode(response.body)
    assert [t for t, _ in messages] == [m.SLEEP, m.SUSPENSION]
    assert list(messages[1][1].waiting_completions) == [1]


def test_stopping_the_server_closes_open_connections():
    thread = EndpointThread(restate.endpoint(services.Greeter)).start()
    client = H2Client(thread.url)
    try:
        assert client.request("GET", "/health").status == 200
        thread.stop()
        client.sock.settimeout(10)
        # the server closed its side: recv reports EOF (or a reset) instead of blocking
        try:
            assert client.sock.recv(65536) == b"" or client.sock.recv(65536) == b""
        except ConnectionResetError:
            pass
    finally:
        client.close()
