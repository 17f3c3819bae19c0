"""ProxyRequestSigning: the runtime signs requests, the endpoint verifies them (§4.9)."""

from __future__ import annotations

from typing import NamedTuple

from restate_sync.client import HTTPTransport

from ..h2client import H2Client
from .harness import ConformanceEnv, long, new_key


class _Answer(NamedTuple):
    status: int
    body: bytes


# restate-server 1.7.12 asks for v3 (an unsigned request with this header is answered 200 otherwise)
MANIFEST = "application/vnd.restate.endpointmanifest.v3+json"


class TestProxyRequestSigning:
    def test_requestSigningPass(self, conf: ConformanceEnv) -> None:
        counter = new_key()
        conf.ingress.call("Counter", "add", 1, key=counter, idempotent=True)
        assert long(conf.ingress.call("Counter", "get", key=counter, idempotent=True)) == 1

    def test_unsignedDiscoveryIsRejected(self, conf: ConformanceEnv) -> None:
        """[port addition, not in the Kotlin suite] With E2E_REQUEST_SIGNING set the endpoint must
        "reject unsigned requests" (upstream: restatedev/e2e, sdk-tests contracts); otherwise requestSigningPass would
        pass against an endpoint that ignores the key."""
        assert conf.services is not None
        bogus_jwt = {"accept": MANIFEST, "x-restate-signature-scheme": "v1", "x-restate-jwt-v1": "a.b.c"}
        if conf.suite.server == "gunicorn":  # endpoint.app under gunicorn speaks HTTP/1.1 only
            http = HTTPTransport(conf.services.url, 10)
            unsigned = _Answer(*http.exchange("GET", "/discover", None, {"accept": MANIFEST})[::2])
            bogus = _Answer(*http.exchange("GET", "/discover", None, bogus_jwt)[::2])
        else:
            with H2Client(conf.services.url) as client:
                unsigned = client.request("GET", "/discover", {"accept": MANIFEST})
                bogus = client.request("GET", "/discover", bogus_jwt)
        # Rejected as unauthenticated (401/403), not for some other reason.
        assert unsigned.status in (401, 403), (
            f"unsigned /discover answered {unsigned.status}: {unsigned.body[:200]!r}"
        )
        assert bogus.status in (401, 403), (
            f"/discover with a bogus JWT answered {bogus.status}: {bogus.body[:200]!r}"
        )
