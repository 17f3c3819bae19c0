"""Request identity verification against a restate-server that signs its requests."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

import restate_sync as restate
from restate_sync.client import AdminError
from restate_sync.identity import format_public_key, sign_request_token
from restate_sync.restate_server import RestateServer
from restate_sync.testing import EndpointThread

from ..h2client import H2Client
from . import services

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    key = Ed25519PrivateKey.generate()
    pem = tmp_path_factory.mktemp("signing") / "key.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return key, pem


def test_signed_requests_are_accepted_and_unsigned_ones_rejected(signing_key):
    key, pem = signing_key
    ep = restate.endpoint(services.Greeter).identity_key(format_public_key(key.public_key()))
    thread = EndpointThread(ep).start()
    try:
        env = {"RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(pem)}
        with RestateServer(env=env) as server:
            server.register_deployment(thread.url)
            from restate_sync.client import IngressClient

            assert IngressClient(server.ingress_url).call("Greeter", "greet", "signed") == "Hello, signed!"
        with H2Client(thread.url) as client:
            assert client.request("GET", "/discover").status == 401
            assert client.request("GET", "/health").status == 200
            token = sign_request_token(key, format_public_key(key.public_key()), "/discover")
            ok = client.request(
                "GET",
                "/prefix/discover",
                {
                    "x-restate-signature-scheme": "v1",
                    "x-restate-jwt-v1": token,
                    "accept": "application/vnd.restate.endpointmanifest.v4+json",
                },
            )
            assert ok.status == 200
            wrong = client.request(
                "POST",
                "/invoke/Greeter/greet",
                {
                    "x-restate-signature-scheme": "v1",
                    "x-restate-jwt-v1": token,
                    "content-type": "application/vnd.restate.invocation.v6",
                },
                b"",
            )
            assert wrong.status == 401 and b"audience mismatch" in wrong.body
    finally:
        thread.stop()


def test_a_server_with_another_key_cannot_register(signing_key):
    _key, pem = signing_key
    other = Ed25519PrivateKey.generate()
    ep = restate.endpoint(services.Greeter).identity_key(format_public_key(other.public_key()))
    thread = EndpointThread(ep).start()
    try:
        env = {"RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(pem)}
        with RestateServer(env=env) as server, pytest.raises(AdminError) as info:
            server.register_deployment(thread.url)
        assert "401" in str(info.value) or info.value.status >= 400
    finally:
        thread.stop()
