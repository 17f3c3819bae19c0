"""Endpoint.handle routing and content negotiation, driven through an in-memory exchange."""

from __future__ import annotations

import pytest

import restate_sync as restate
from restate_sync.exchange import SERVER_HEADER, Inbox


class Greeter(restate.Service):
    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        return f"Hello, {name}!"


class RecordingExchange:
    """The Exchange interface, recording the response instead of sending it."""

    http2 = True

    def __init__(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.inbox = Inbox()
        self.status: int | None = None
        self.response_headers: list[tuple[str, str]] = []
        self.body = b""

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        self.status = status
        self.response_headers = headers
        self.body = body or b""

    def write(self, data: bytes) -> None:
        self.body += data

    def close(self) -> None:
        pass


def answer(method: str, path: str, **headers: str) -> RecordingExchange:
    exchange = RecordingExchange(method, path, {k.replace("_", "-"): v for k, v in headers.items()})
    restate.endpoint(Greeter).handle(exchange)
    return exchange


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.restate.invocation.v\u00b2",  # str.isdigit() says yes, int() says no
        "application/vnd.restate.invocation.v\u0666",  # an Arabic-Indic six
        "application/vnd.restate.invocation.v" + "6" * 5000,
        "application/vnd.restate.invocation.v",
        "application/vnd.restate.invocation.v-6",
        "application/vnd.restate.invocation.v99",
    ],
)
def test_odd_protocol_versions_are_415(content_type):
    exchange = answer("POST", "/invoke/Greeter/greet", content_type=content_type)
    assert exchange.status == 415
    assert SERVER_HEADER in exchange.response_headers
    assert b"unsupported service protocol version" in exchange.body


def test_foreign_content_type_is_415():
    exchange = answer("POST", "/invoke/Greeter/greet", content_type="application/json")
    assert exchange.status == 415
    assert b"not a Restate invocation" in exchange.body


def test_odd_manifest_version_is_415():
    exchange = answer("GET", "/discover", accept="application/vnd.restate.endpointmanifest.v\u00b2+json")
    assert exchange.status == 415
