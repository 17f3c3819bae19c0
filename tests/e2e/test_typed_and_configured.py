"""Typed handlers and service configuration, registered with a real restate-server.

The examples ``typed_handlers.py`` and ``service_configuration.py`` are served and registered;
the admin API (``GET /services/{name}``) must show every declared option and both JSON Schemas
of every handler exactly as declared, typed calls through the ingress must return typed
responses, and a body that fails validation must end as a 400 naming the field (no retries).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

import restate_sync as restate
import restate_sync.testing
from restate_sync.client import IngressError
from restate_sync.discovery import build_manifest

pydantic = pytest.importorskip("pydantic")

from examples import service_configuration, typed_handlers  # noqa: E402  (needs pydantic)

pytestmark = pytest.mark.e2e


class Overrides(restate.Service):
    """Per-call serde overrides win over the target handler's types."""

    @restate.handler
    def compare(ctx: restate.Context, name: str) -> list[str]:
        typed = ctx.service_call(
            typed_handlers.TypedGreeter, "greet", typed_handlers.GreetingRequest(name)
        ).result()
        plain = ctx.service_call(
            typed_handlers.TypedGreeter,
            "greet",
            {"name": name},
            input_serde=restate.JsonSerde(),
            output_serde=restate.JsonSerde(),
        ).result()
        assert plain == {"message": typed.message, "length": typed.length}
        return [type(typed).__name__, type(plain).__name__]


SERVICES = (
    *typed_handlers.endpoint.services.values(),
    *service_configuration.endpoint.services.values(),
    Overrides,
)


@pytest.fixture(scope="module")
def env():
    with restate_sync.testing.start(*SERVICES) as environment:
        yield environment


# --------------------------------------------------------------------------------------------
# what the admin API reports
# --------------------------------------------------------------------------------------------

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def ms(text: str) -> int:
    """humantime (``"1d 2h"``, ``"100ms"``, ``"0s"``) → milliseconds."""
    parts = re.findall(r"(\d+)\s*([a-z]+)", text)
    assert parts and "".join(f"{n}{u}" for n, u in parts) == text.replace(" ", ""), text
    return sum(int(n) * _UNITS_MS[u] for n, u in parts)


_DURATIONS = {
    "inactivityTimeout": "inactivity_timeout",
    "abortTimeout": "abort_timeout",
    "journalRetention": "journal_retention",
    "idempotencyRetention": "idempotency_retention",
}
_RETRY = {
    "retryPolicyInitialInterval": ("initial_interval", ms),
    "retryPolicyMaxInterval": ("max_interval", ms),
    "retryPolicyMaxAttempts": ("max_attempts", int),
    "retryPolicyExponentiationFactor": ("exponentiation_factor", float),
    "retryPolicyOnMaxAttempts": ("on_max_attempts", lambda v: v.upper()),
}


def assert_options_arrived(declared: dict[str, Any], seen: dict[str, Any], where: str) -> None:
    """Every option field of a manifest entry, compared with the admin API's view of it."""
    for key, value in declared.items():
        if key in ("name", "ty", "handlers", "input", "output", "workflowCompletionRetention"):
            continue
        if key == "documentation":
            assert seen.get("documentation") == value, where
        elif key == "metadata":
            assert seen.get("metadata") == value, where
        elif key in _DURATIONS:
            assert ms(seen[_DURATIONS[key]]) == value, (where, key)
        elif key == "enableLazyState":
            assert seen["enable_lazy_state"] is value, where
        elif key == "ingressPrivate":
            assert seen["public"] is (not value), where
        elif key in _RETRY:
            field, convert = _RETRY[key]
            assert convert(seen["retry_policy"][field]) == value, (where, key)
        else:
            raise AssertionError(f"{where}: option field {key} not checked")


def assert_payload_arrived(declared: dict[str, Any], seen: dict[str, Any], where: str) -> None:
    for direction in ("input", "output"):
        payload = declared[direction]
        schema = payload.get("jsonSchema")
        assert seen.get(f"{direction}_json_schema") == schema, (where, direction)
        description = seen[f"{direction}_description"]
        if "contentType" not in payload:
            assert description == "none", (where, direction)
        elif schema is None:
            assert payload["contentType"] in description, (where, direction)


def test_every_declared_option_and_schema_arrives(env):
    manifest = build_manifest(restate.endpoint(*SERVICES).services.values(), 4)
    for declared in manifest["services"]:
        name = declared["name"]
        seen = env.admin.service(name)
        assert (
            seen["ty"]
            == {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}[
                declared["ty"]
            ]
        )
        assert_options_arrived(declared, seen, name)
        handlers = {h["name"]: h for h in seen["handlers"]}
        assert set(handlers) == {h["name"] for h in declared["handlers"]}
        for handler in declared["handlers"]:
            where = f"{name}/{handler['name']}"
            assert_options_arrived(handler, handlers[handler["name"]], where)
            assert_payload_arrived(handler, handlers[handler["name"]], where)
            if "workflowCompletionRetention" in handler:  # the server keeps it on the service
                assert ms(seen["workflow_completion_retention"]) == handler["workflowCompletionRetention"]


def test_configuration_example_as_written(env):
    """The values from examples/service_configuration.py, spelled out."""
    processor = env.admin.service("OrderProcessor")
    assert processor["documentation"] == "Processes customer orders"
    assert processor["metadata"] == {"team": "commerce", "tier": "critical"}
    assert (processor["inactivity_timeout"], processor["abort_timeout"]) == ("5m", "1m")
    assert (processor["journal_retention"], processor["idempotency_retention"]) == ("1d", "1h")
    assert processor["enable_lazy_state"] is True and processor["public"] is True
    assert processor["retry_policy"] == {
        "initial_interval": "100ms",
        "max_interval": "30s",
        "max_attempts": 10,
        "exponentiation_factor": 2.0,
        "on_max_attempts": "Kill",
    }
    handlers = {h["name"]: h for h in processor["handlers"]}
    cancel = handlers["cancel"]
    assert cancel["documentation"] == "Cancel the order (handler options override the service's)"
    assert cancel["metadata"] == {"audit": "true"}
    assert (cancel["inactivity_timeout"], cancel["journal_retention"]) == ("30s", "0s")  # zero is a value
    assert cancel["idempotency_retention"] == "10m"
    assert cancel["retry_policy"] == {"initial_interval": "1s", "max_attempts": 3, "on_max_attempts": "Pause"}
    assert handlers["status"]["enable_lazy_state"] is False and handlers["status"]["public"] is True
    assert handlers["process"]["documentation"] == "Charge and record an order."

    payments = env.admin.service("Payments")  # name= override of class PaymentGateway
    assert payments["public"] is False and payments["documentation"] == "Charges cards; internal."
    assert [h["name"] for h in payments["handlers"]] == ["charge"]
    assert payments["handlers"][0]["abort_timeout"] == "30s"

    onboarding = env.admin.service("Onboarding")
    assert onboarding["workflow_completion_retention"] == "30d"
    assert onboarding["journal_retention"] == "7d"
    flow = {h["name"]: h for h in onboarding["handlers"]}
    assert flow["run"]["ty"] == "Workflow" and flow["run"]["abort_timeout"] == "2m"
    assert flow["approve"]["public"] is False
    assert flow["status"]["inactivity_timeout"] == "0s" and flow["status"]["idempotency_retention"] == "1h"


def test_typed_example_schemas(env):
    greeter = {h["name"]: h for h in env.admin.service("TypedGreeter")["handlers"]}
    greet = greeter["greet"]
    assert greet["input_json_schema"] == restate.schema_for(typed_handlers.GreetingRequest)
    assert greet["input_json_schema"]["required"] == ["name"]
    assert greet["output_json_schema"] == restate.schema_for(typed_handlers.GreetingResponse)
    assert greet["documentation"] == "Greet one person."
    assert greeter["maybe"]["input_json_schema"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert greeter["shout"]["input_description"] == "application/octet-stream"
    assert "input_json_schema" not in greeter["shout"]
    # no input: an optional JSON body (empty or null)
    assert greeter["ping"]["input_description"] == "application/json"
    assert greeter["ping"]["output_description"] == "none"

    desk = {h["name"]: h for h in env.admin.service("OrderDesk")["handlers"]}
    order_schema = desk["place"]["input_json_schema"]
    assert order_schema == typed_handlers.Order.model_json_schema()
    assert order_schema["$defs"]["LineItem"]["properties"]["quantity"]["minimum"] == 1
    assert desk["place"]["output_json_schema"] == typed_handlers.Receipt.model_json_schema()


# --------------------------------------------------------------------------------------------
# typed calls
# --------------------------------------------------------------------------------------------


def test_typed_calls_through_the_ingress(env):
    ingress = env.ingress
    assert ingress.call("TypedGreeter", "greet", {"name": "World", "greeting": "Hi"}) == {
        "message": "Hi, World!",
        "length": 10,
    }
    assert ingress.call("TypedGreeter", "greet_all", {"names": ["a", "b"]}) == [
        {"message": "Hello, a!", "length": 9},
        {"message": "Hello, b!", "length": 9},
    ]
    assert ingress.call("TypedGreeter", "maybe") == "Hello, stranger!"
    assert ingress.call("TypedGreeter", "maybe", "Ann") == "Hello, Ann!"
    assert ingress.call("TypedGreeter", "shout", b"abc\x00", raw=True) == b"ABC\x00"
    assert ingress.call("TypedGreeter", "ping", raw=True) == b""

    order = {"order_id": "o-1", "items": [{"sku": "tea", "quantity": 2, "unit_price": 3.5}], "coupon": "HALF"}
    receipt = {"order_id": "o-1", "total": 3.5, "item_count": 1}
    assert ingress.call("OrderDesk", "place", order, key="alice") == receipt
    assert ingress.call("OrderDesk", "last", key="alice") == receipt
    assert ingress.call("OrderDesk", "last", key="bob") is None

    assert ingress.call("Overrides", "compare", "x") == ["GreetingResponse", "dict"]


def test_configured_services_answer(env):
    ingress = env.ingress
    assert (
        ingress.call("OrderProcessor", "process", {"item": "book", "amount": 12.5}, key="o1")
        == "charged 12.50"
    )
    assert ingress.call("OrderProcessor", "status", key="o1") == "processed book: charged 12.50"
    assert ingress.call("OrderProcessor", "cancel", "changed my mind", key="o1") == "cancelled"
    with pytest.raises(IngressError) as private:
        ingress.call("Payments", "charge", 1.0)
    assert 400 <= private.value.status < 500 and "not public" in str(private.value)
    with pytest.raises(IngressError) as private_handler:
        ingress.call("Onboarding", "approve", "me", key="u1")
    assert 400 <= private_handler.value.status < 500


# --------------------------------------------------------------------------------------------
# validation failures are terminal 4xx naming the field
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "handler", "key", "payload", "message"),
    [
        ("TypedGreeter", "greet", None, {"name": 5}, "name: expected str, got int 5"),
        ("TypedGreeter", "greet", None, {"greeting": "Hi"}, "name: missing required field"),
        ("TypedGreeter", "greet_all", None, {"names": ["a", 2]}, "names[1]: expected str, got int 2"),
        (
            "OrderDesk",
            "place",
            "carol",
            {"order_id": "o", "items": [{"sku": "tea", "quantity": 0, "unit_price": 1}]},
            "items[0].quantity: Input should be greater than or equal to 1",
        ),
    ],
)
def test_invalid_bodies_fail_terminally_naming_the_field(env, service, handler, key, payload, message):
    idempotency_key = f"invalid-{service}-{handler}-{len(str(payload))}"
    with pytest.raises(IngressError) as info:
        env.ingress.call(service, handler, payload, key=key, idempotency_key=idempotency_key, timeout=20)
    assert info.value.status == 400
    assert f"cannot decode the input of {service}/{handler}: {message}" in str(info.value)
    (row,) = env.admin.query(
        "SELECT status, completion_result, completion_failure FROM sys_invocation "
        f"WHERE idempotency_key = '{idempotency_key}'"
    )
    assert row["status"] == "completed" and row["completion_result"] == "failure"
    assert row["completion_failure"].startswith("[400]") and message in row["completion_failure"]


def test_an_empty_body_for_a_required_input_is_rejected_by_the_ingress(env):
    with pytest.raises(IngressError) as info:
        env.ingress.call("TypedGreeter", "greet")
    assert info.value.status == 400 and "input validation error" in str(info.value)
    with pytest.raises(IngressError) as wrong_type:
        env.ingress.call("TypedGreeter", "shout", b"x", raw=True, headers={"content-type": "text/plain"})
    assert wrong_type.value.status in (400, 415)
