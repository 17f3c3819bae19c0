"""The API a Python developer can trust, end to end through a real restate-server.

No-input handlers take the seed's curl calls, values of any type survive suspension and replay,
an unencodable run result fails its step once, misuse ends an invocation on its first attempt,
forgotten futures are reported, and ``RetryableError(retry_after=...)`` sets the retry delay.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from restate_sync.client import HTTPTransport, IngressError

from ..waiting import wait_until
from . import api_trust_services as svc

pytestmark = pytest.mark.e2e

JSON = {"content-type": "application/json"}


def curl(env: Any, path: str, body: bytes | None = None, method: str = "POST") -> tuple[int, Any]:
    """What ``curl localhost:8080<path> -H 'content-type: application/json' -d <body>`` does."""
    status, data = HTTPTransport(env.ingress_url, 30).request(
        method, path, body, JSON if body is not None else None
    )
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data.decode()


def invocation_row(env: Any, invocation_id: str) -> dict[str, Any]:
    rows = env.admin.query(
        f"SELECT status, completion_result, completion_failure FROM sys_invocation WHERE id = '{invocation_id}'"
    )
    assert rows, f"no sys_invocation row for {invocation_id}"
    row: dict[str, Any] = rows[0]
    return row


# ---------------------------------------------------------------- 1. the seed's workflow walkthrough


def test_seed_workflow_walkthrough_with_curl(env, key):
    status, sent = curl(env, f"/UserSignup/{key}/run/send", b'"user@example.com"')
    assert status == 202 and sent["status"] == "Accepted", sent
    # the seed's status call: a no-input handler invoked with `-d 'null'`
    wait_until(
        lambda: curl(env, f"/UserSignup/{key}/status", b"null") == (200, "waiting_for_approval"),
        what="the workflow to wait for approval",
    )
    assert curl(env, f"/UserSignup/{key}/status") == (200, "waiting_for_approval")  # no body at all
    assert curl(env, f"/UserSignup/{key}/approve", b'"approved by admin"') == (200, None)
    status, result = curl(env, f"/restate/workflow/UserSignup/{key}/attach", method="GET")
    assert status == 200 and result == {"user_id": "user-user", "approval": "approved by admin"}
    assert curl(env, f"/UserSignup/{key}/status", b"null") == (200, "active")
    # a body that is not null is refused with a clear message (not silently ignored)
    status, message = curl(env, f"/UserSignup/{key}/status", b"5")
    assert status == 400 and "takes no input" in str(message), message


# ---------------------------------------------------------------- 3. values of any type


def test_dataclass_from_run_sync_stored_and_read_back_after_suspension_and_replay(env, key):
    result = env.ingress.call("Accounts", "open", "ada", key=key)
    assert result == {
        "run_is_dataclass": True,
        "stored_is_dataclass": True,
        "stored": ["ada", 100, ["new"]],
        "untyped": {"owner": "ada", "balance": 100, "tags": ["new"]},
    }
    # it suspended (inactivity timeout 0) and replayed: the handler ran again, the steps did not
    assert svc.COUNTS[f"{key}:entries"] >= 2
    assert svc.COUNTS[f"{key}:create"] == 1 and svc.COUNTS[f"{key}:lambda"] == 1
    assert env.ingress.call("Accounts", "account", key=key) == {
        "owner": "ada",
        "balance": 100,
        "tags": ["new"],
    }


def test_unencodable_run_result_runs_once_and_fails_terminally(env, key):
    with pytest.raises(IngressError) as info:
        env.ingress.call("Accounts", "unencodable", key=key)
    assert "run 'charge'" in info.value.message and "Opaque" in info.value.message, info.value.message
    assert "type=" in info.value.message
    sent = env.ingress.send("Accounts", "unencodable", key=key + "-2")
    with pytest.raises(IngressError):
        env.ingress.attach(sent["invocationId"])
    row = invocation_row(env, sent["invocationId"])
    assert (row["status"], row["completion_result"]) == ("completed", "failure"), row
    assert "run 'charge'" in row["completion_failure"]
    # the side effect ran exactly once per invocation: no retry re-executed it
    assert svc.COUNTS[f"{key}:charge"] == 1 and svc.COUNTS[f"{key}-2:charge"] == 1


def test_call_results_are_decoded_to_the_target_handlers_output_type(env):
    assert env.ingress.call("Values", "call_typed", "bob") == {
        "reference_is_dataclass": True,
        "by_name": {"owner": "bob", "balance": 1, "tags": ["made"]},
    }


def test_typed_awakeable(env, key):
    sent = env.ingress.send("Values", "typed_awakeable", key)
    awakeable_id = wait_until(lambda: env.ingress.call("Holder", "get", key=key), what="the awakeable id")
    env.ingress.resolve_awakeable(awakeable_id, {"owner": "eve", "balance": 3, "tags": []})
    assert env.ingress.attach(sent["invocationId"]) == {"is_dataclass": True, "owner": "eve"}


def test_typed_signal(env):
    sent = env.ingress.send("Values", "typed_signal")
    env.ingress.call("Values", "send_signal", sent["invocationId"])
    assert env.ingress.attach(sent["invocationId"]) == {"is_dataclass": True, "owner": "sig"}


def test_typed_promise(env, key):
    sent = env.ingress.send("TypedFlow", "run", key=key)
    env.ingress.call("TypedFlow", "give", {"owner": "pat", "balance": 9, "tags": ["x"]}, key=key)
    assert env.ingress.attach(sent["invocationId"]) == {"is_dataclass": True, "owner": "pat"}


# ---------------------------------------------------------------- 4. misuse is terminal


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("set_in_shared", "ctx.set() is not available in a shared handler"),
        ("wrong_accessor", "restate.current_workflow_context() is for a Workflow @main handler"),
        ("ctx_in_run", "Restate context used outside its handler greenlet"),
        ("promise_outside_workflow", "ctx.promise() is only available in a Workflow's handlers"),
        ("negative_sleep", "sleep duration must not be negative"),
    ],
)
def test_misuse_ends_the_invocation_on_its_first_attempt(env, key, handler, message):
    sent = env.ingress.send("Misuse", handler, key=key)
    with pytest.raises(IngressError) as info:
        env.ingress.attach(sent["invocationId"])
    assert message in info.value.message, info.value.message
    assert info.value.status == 500
    row = invocation_row(env, sent["invocationId"])
    assert (row["status"], row["completion_result"]) == ("completed", "failure"), row
    assert message in row["completion_failure"]
    assert svc.COUNTS[f"{key}:misused"] == 1  # no retry misused it again


def test_unawaited_futures_are_reported_in_one_warning(env, key, caplog):
    caplog.set_level(logging.WARNING, logger="restate_sync.invocation")
    assert env.ingress.call("Misuse", "unawaited", key=key) == "returned"
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "restate_sync.invocation"
        and "Misuse/unawaited returned without awaiting" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    named = warnings[0].split("it created: ", 1)[1].split("; ", 1)[0]
    assert named == "run 'never' (never ran), sleep 'forgotten', sleep(60)", warnings[0]
    assert svc.COUNTS[f"{key}:never"] == 0


# ---------------------------------------------------------------- 7. RetryableError(retry_after=...)


def test_retryable_error_from_a_handler_sets_the_next_retry_delay(env, key):
    assert env.ingress.call("Retries", "handler_retry_after", 1.5, key=key) == 2
    first, second = svc.TIMES[f"{key}:handler"][:2]
    assert second - first >= 1.45, second - first  # restate-server's own first delay is far shorter


def test_retryable_error_in_a_run_block_sets_the_steps_retry_delay(env, key):
    started = time.monotonic()
    assert env.ingress.call("Retries", "run_retry_after", 1.0, key=key) == 2
    first, second = svc.TIMES[f"{key}:run"][:2]
    assert second - first >= 0.95, second - first  # the policy alone would retry after 10 ms
    assert time.monotonic() - started >= 0.95
