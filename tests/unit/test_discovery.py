"""The discovery manifest: shapes, options, version gating, protocol mode (docs/protocol.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest

import restate_sync as restate
from restate_sync.discovery import ManifestError, build_manifest, negotiate_manifest_version
from restate_sync.service import Options

ACCEPT_ALL = ", ".join(f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (1, 2, 3, 4))

# every key the manifest schema allows (the server rejects unknown keys)
SERVICE_KEYS = {
    "name", "ty", "handlers", "documentation", "metadata", "inactivityTimeout", "abortTimeout",
    "journalRetention", "idempotencyRetention", "enableLazyState", "ingressPrivate",
    "retryPolicyInitialInterval", "retryPolicyMaxInterval", "retryPolicyMaxAttempts",
    "retryPolicyExponentiationFactor", "retryPolicyOnMaxAttempts",
}  # fmt: skip
HANDLER_KEYS = (SERVICE_KEYS - {"handlers"}) | {"input", "output", "workflowCompletionRetention"}
INPUT_KEYS = {"required", "contentType", "jsonSchema"}
OUTPUT_KEYS = {"contentType", "setContentTypeIfEmpty", "jsonSchema"}


@dataclass
class Greeting:
    name: str


class Greeter(restate.Service):
    @restate.handler
    def greet(ctx: restate.Context, req: Greeting) -> str:
        return req.name

    @restate.handler
    def maybe(ctx: restate.Context, name: str | None) -> Greeting:
        return Greeting(name or "")

    @restate.handler
    def ping(ctx: restate.Context) -> None: ...

    @restate.handler
    def untyped(ctx, value):  # type: ignore[no-untyped-def]
        return value

    @restate.handler
    def raw(ctx: restate.Context, data: bytes) -> bytes:
        return data

    @restate.handler(accept="text/*", content_type="text/csv", input=restate.BytesSerde())
    def custom(ctx: restate.Context, data: bytes) -> str:
        return ""


class Configured(
    restate.VirtualObject,
    metadata={},
    inactivity_timeout=0,
    enable_lazy_state=False,
    invocation_retry_policy={"max_attempts": 5, "on_max_attempts": "pause", "exponentiation_factor": 1.5},
):
    """Docs."""

    @restate.handler(abort_timeout=timedelta(seconds=1.5), ingress_private=True)
    def h(ctx: restate.ObjectContext) -> None: ...


class Flow(restate.Workflow):
    @restate.main(workflow_completion_retention=0, journal_retention=10)
    def run(ctx: restate.WorkflowContext) -> None: ...

    @restate.handler(idempotency_retention=timedelta(hours=1))
    def signal(ctx: restate.WorkflowSharedContext) -> None: ...


def manifest(*services: Any, version: int = 4) -> dict[str, Any]:
    return build_manifest([s.__restate_service__ for s in services], version)


def handlers_of(service: type, version: int = 4) -> dict[str, dict[str, Any]]:
    return {h["name"]: h for h in manifest(service, version=version)["services"][0]["handlers"]}


def assert_known_keys(document: dict[str, Any]) -> None:
    assert set(document) == {"protocolMode", "minProtocolVersion", "maxProtocolVersion", "services"}
    for service in document["services"]:
        assert set(service) <= SERVICE_KEYS
        for handler in service["handlers"]:
            assert set(handler) <= HANDLER_KEYS
            assert set(handler["input"]) <= INPUT_KEYS
            assert set(handler["output"]) <= OUTPUT_KEYS
    json.dumps(document)  # plain JSON


def test_inputs_and_outputs():
    handlers = handlers_of(Greeter)
    assert handlers["greet"]["input"] == {
        "required": True,
        "contentType": "application/json",
        "jsonSchema": {
            "title": "Greeting",
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
    }
    assert handlers["greet"]["output"] == {
        "setContentTypeIfEmpty": False,
        "contentType": "application/json",
        "jsonSchema": {"type": "string"},
    }
    assert handlers["maybe"]["input"]["required"] is False
    assert handlers["maybe"]["output"]["jsonSchema"]["title"] == "Greeting"
    # no input: an optional JSON body (empty or null), as the Ruby SDK advertises it
    assert handlers["ping"] == {
        "name": "ping",
        "input": {"required": False, "contentType": "application/json"},
        "output": {"setContentTypeIfEmpty": False},
    }
    assert handlers["untyped"]["input"] == {"required": False, "contentType": "application/json"}
    assert handlers["untyped"]["output"] == {
        "setContentTypeIfEmpty": False,
        "contentType": "application/json",
    }
    assert handlers["raw"]["input"] == {"required": False, "contentType": "application/octet-stream"}
    assert handlers["raw"]["output"]["contentType"] == "application/octet-stream"
    assert handlers["custom"]["input"] == {"required": False, "contentType": "text/*"}
    assert handlers["custom"]["output"]["contentType"] == "text/csv"
    assert "ty" not in handlers["greet"]


def test_options_are_written_as_declared_and_unset_ones_omitted():
    service = manifest(Configured)["services"][0]
    assert service == {
        "name": "Configured",
        "ty": "VIRTUAL_OBJECT",
        "handlers": [
            {
                "name": "h",
                "ty": "EXCLUSIVE",
                "input": {"required": False, "contentType": "application/json"},
                "output": {"setContentTypeIfEmpty": False},
                "abortTimeout": 1500,
                "ingressPrivate": True,
            }
        ],
        "documentation": "Docs.",
        "metadata": {},
        "inactivityTimeout": 0,
        "enableLazyState": False,
        "retryPolicyMaxAttempts": 5,
        "retryPolicyExponentiationFactor": 1.5,
        "retryPolicyOnMaxAttempts": "PAUSE",
    }


def test_workflow_handlers():
    handlers = handlers_of(Flow)
    assert handlers["run"]["ty"] == "WORKFLOW"  # always explicit for the main handler
    assert handlers["run"]["workflowCompletionRetention"] == 0
    assert handlers["run"]["journalRetention"] == 10_000
    assert handlers["signal"]["ty"] == "SHARED"
    assert handlers["signal"]["idempotencyRetention"] == 3_600_000


@pytest.mark.parametrize("service", [Greeter, Configured, Flow])
def test_only_known_keys(service):
    assert_known_keys(manifest(service))


def test_examples_produce_valid_manifests():
    pytest.importorskip("pydantic")
    from examples import service_configuration, typed_handlers

    for ep in (service_configuration.endpoint, typed_handlers.endpoint):
        assert_known_keys(build_manifest(ep.services.values(), 4))


# --------------------------------------------------------------------------------------------
# versions
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (None, 2),
        ("", 2),
        (ACCEPT_ALL, 4),
        ("application/vnd.restate.endpointmanifest.v3+json", 3),
        ("application/vnd.restate.endpointmanifest.v2+json;q=1, text/plain", 2),
        ("application/vnd.restate.endpointmanifest.v1+json", None),
        ("application/json", None),
        # not ASCII digits, or far too many of them: refused, not a crash in int()
        ("application/vnd.restate.endpointmanifest.v\u00b2+json", None),
        ("application/vnd.restate.endpointmanifest.v" + "4" * 5000 + "+json", None),
        ("application/vnd.restate.endpointmanifest.v\u0664+json", None),
    ],
)
def test_negotiation(accept, version):
    assert negotiate_manifest_version(accept) == version


def test_v2_carries_docs_and_metadata():
    class Docs(restate.Service, metadata={"a": "b"}):
        """Documented."""

        @restate.handler(metadata={"c": "d"})
        def h(ctx: restate.Context) -> None: ...

    service = manifest(Docs, version=2)["services"][0]
    assert service["documentation"] == "Documented." and service["metadata"] == {"a": "b"}
    assert service["handlers"][0]["metadata"] == {"c": "d"}


@pytest.mark.parametrize(
    ("options", "field", "needed"),
    [
        ({"inactivity_timeout": 1}, "inactivityTimeout", 3),
        ({"abort_timeout": 0}, "abortTimeout", 3),
        ({"journal_retention": 1}, "journalRetention", 3),
        ({"idempotency_retention": 1}, "idempotencyRetention", 3),
        ({"enable_lazy_state": False}, "enableLazyState", 3),
        ({"ingress_private": False}, "ingressPrivate", 3),
        ({"invocation_retry_policy": {"max_attempts": 3}}, "retryPolicyMaxAttempts", 4),
        ({"invocation_retry_policy": {"initial_interval": 1}}, "retryPolicyInitialInterval", 4),
        ({"invocation_retry_policy": {"max_interval": 1}}, "retryPolicyMaxInterval", 4),
        ({"invocation_retry_policy": {"exponentiation_factor": 2}}, "retryPolicyExponentiationFactor", 4),
        ({"invocation_retry_policy": {"on_max_attempts": "kill"}}, "retryPolicyOnMaxAttempts", 4),
    ],
)
def test_fields_are_gated_by_version(options, field, needed):
    class AtService(restate.VirtualObject, **options):
        @restate.handler
        def h(ctx: restate.ObjectContext) -> None: ...

    class AtHandler(restate.VirtualObject):
        @restate.handler(**options)
        def h(ctx: restate.ObjectContext) -> None: ...

    for service, where in ((AtService, "AtService:"), (AtHandler, "AtHandler/h:")):
        for version in (2, 3, 4):
            if version >= needed:
                document = manifest(service, version=version)
                entry = document["services"][0]
                assert field in (entry if service is AtService else entry["handlers"][0])
            else:
                with pytest.raises(ManifestError) as info:
                    manifest(service, version=version)
                message = str(info.value)
                assert message.startswith(where)
                assert f"'{field}'" in message and f"needs discovery manifest v{needed}" in message
                assert f"negotiated v{version}" in message


def test_workflow_completion_retention_needs_v3():
    class Retained(restate.Workflow):
        @restate.main(workflow_completion_retention=timedelta(days=1))
        def run(ctx: restate.WorkflowContext) -> None: ...

    assert handlers_of(Retained, version=3)["run"]["workflowCompletionRetention"] == 86_400_000
    with pytest.raises(ManifestError, match=r"Retained/run: option workflow_completion_retention"):
        manifest(Retained, version=2)


def test_rules_the_server_enforces_are_checked_again_when_building():
    definition = Flow.__restate_service__
    run = definition.handlers["run"]
    bad = replace(run, options=Options(idempotency_retention=1))
    broken = replace(definition, handlers={"run": bad})
    with pytest.raises(ManifestError, match="idempotency_retention is not allowed"):
        build_manifest([broken], 4)
    signal = replace(definition.handlers["signal"], workflow_completion_retention=5)
    with pytest.raises(ManifestError, match=r"only allowed on @restate\.main"):
        build_manifest([replace(definition, handlers={"signal": signal})], 4)
    private = replace(
        Greeter.__restate_service__,
        options=Options(ingress_private=True),
        handlers={
            "ping": replace(
                Greeter.__restate_service__.handlers["ping"], options=Options(ingress_private=False)
            )
        },
    )
    with pytest.raises(ManifestError, match="cannot be ingress_private=False"):
        build_manifest([private], 4)


# --------------------------------------------------------------------------------------------
# through the endpoint
# --------------------------------------------------------------------------------------------


class Exchange:
    """What the HTTP servers hand to ``Endpoint.handle``, for GET requests."""

    def __init__(self, path: str, headers: dict[str, str], http2: bool = True) -> None:
        self.method = "GET"
        self.path = path
        self.headers = headers
        self.http2 = http2
        self.inbox = None
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.body = b""

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        self.status = status
        self.response_headers = dict(headers)
        self.body = body or b""

    def write(self, data: bytes) -> None:
        self.body += data

    def close(self) -> None:
        pass


def discover(ep: restate.Endpoint, accept: str | None = ACCEPT_ALL, http2: bool = True) -> Exchange:
    exchange = Exchange("/discover", {"accept": accept} if accept is not None else {}, http2)
    ep.handle(exchange)  # type: ignore[arg-type]
    return exchange


def test_endpoint_negotiates_and_derives_the_protocol_mode():
    ep = restate.endpoint(Greeter, Configured)
    answer = discover(ep)
    assert answer.status == 200
    assert answer.response_headers["content-type"] == "application/vnd.restate.endpointmanifest.v4+json"
    assert json.loads(answer.body)["protocolMode"] == "BIDI_STREAM"
    assert json.loads(discover(ep, http2=False).body)["protocolMode"] == "REQUEST_RESPONSE"


def test_forced_protocol_modes():
    streaming = restate.endpoint(Greeter).streaming_protocol()
    assert json.loads(discover(streaming, http2=False).body)["protocolMode"] == "BIDI_STREAM"
    request_response = restate.endpoint(Greeter).request_response_protocol()
    assert json.loads(discover(request_response).body)["protocolMode"] == "REQUEST_RESPONSE"


def test_an_option_the_negotiated_version_cannot_carry_is_a_500_naming_it():
    ep = restate.endpoint(Configured)
    answer = discover(ep, "application/vnd.restate.endpointmanifest.v3+json")
    assert answer.status == 500
    assert answer.response_headers["content-type"].startswith("text/plain")
    text = answer.body.decode()
    assert "invocation_retry_policy.max_attempts" in text and "'retryPolicyMaxAttempts'" in text
    assert "needs discovery manifest v4" in text


def test_no_supported_version_is_415():
    answer = discover(restate.endpoint(Greeter), "application/vnd.restate.endpointmanifest.v1+json")
    assert answer.status == 415
