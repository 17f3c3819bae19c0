"""Every context operation, end to end through a real restate-server.

Run with ``--always-suspend`` to make every blocking await suspend and replay.
"""

from __future__ import annotations

import time

import pytest

from restate_sync.client import IngressError

from ..waiting import wait_until
from . import api_services

pytestmark = pytest.mark.e2e


def awakeable_id(env, key: str) -> str:
    return wait_until(lambda: env.ingress.call("Holder", "get", key=key), what=f"awakeable id for {key}")


# ---------------------------------------------------------------- state


@pytest.mark.parametrize("service", ["StateOps", "LazyStateOps"])
def test_state_operations(env, key, service):
    result = env.ingress.call(service, "exercise", key=key)
    assert result == {
        "a": 1,
        "b": {"nested": [1, 2]},
        "keys": ["a", "b"],
        "async_keys": ["a", "b"],
        "after_clear": None,
        "after_clear_all": [],
        "raw": None,
    }
    assert env.ingress.call(service, "keys", key=key) == []


@pytest.mark.parametrize("service", ["StateOps", "LazyStateOps"])
def test_state_persists_between_invocations(env, key, service):
    env.ingress.call(service, "put", {"key": "greeting", "value": {"hello": "world"}}, key=key)
    assert env.ingress.call(service, "read", "greeting", key=key) == {"hello": "world"}
    assert env.ingress.call(service, "keys", key=key) == ["greeting"]


def test_lazy_state_is_declared_to_the_server(env):
    assert env.admin.service("LazyStateOps")["enable_lazy_state"] is True
    assert env.admin.service("StateOps")["enable_lazy_state"] is False


def test_shared_handlers_cannot_write_state(env, key):
    message = env.ingress.call("StateOps", "try_write", key=key)
    assert "not available in a shared handler" in message


# ---------------------------------------------------------------- timers


def test_durable_sleep(env):
    started = time.monotonic()
    assert env.ingress.call("Timers", "sleep", 0.3) == "slept"
    assert time.monotonic() - started >= 0.3


# ---------------------------------------------------------------- calls and sends


def test_typed_and_string_calls(env):
    assert env.ingress.call("Caller", "greet_twice", "ada") == ["Hello, ada!", "Hello, ADA!"]


def test_object_call(env, key):
    assert env.ingress.call("Caller", "add", key) == 1
    assert env.ingress.call("Counter", "get", key=key) == 1


def test_idempotent_calls_execute_once(env, key):
    assert env.ingress.call("Caller", "add_idempotent", key) == [7, 7]
    assert env.ingress.call("Counter", "get", key=key) == 7


def test_send_returns_the_invocation_id(env, key):
    invocation_id = env.ingress.call("Caller", "send", {"key": key})
    assert invocation_id.startswith("inv_")
    assert env.ingress.attach(invocation_id) == 1


def test_delayed_send(env, key):
    started = time.monotonic()
    invocation_id = env.ingress.call("Caller", "send", {"key": key, "delay": 0.5})
    assert env.ingress.attach(invocation_id) == 1
    assert time.monotonic() - started >= 0.5


def test_terminal_errors_propagate_through_calls(env):
    assert env.ingress.call("Caller", "terminal") == {"code": 400, "message": "nope"}


def test_headers_reach_the_callee(env):
    headers = env.ingress.call("Caller", "headers")
    assert headers.get("x-forwarded") == "yes"


def test_raw_bytes_call(env):
    assert env.ingress.call("Caller", "raw", "bytes ✓") == "bytes ✓"


def test_fan_out_fan_in(env):
    names = [f"p{i}" for i in range(8)]
    assert env.ingress.call("Combos", "fan_out", names) == [f"Hello, {n}!" for n in names]


def test_cancel_a_call(env, key):
    assert env.ingress.call("Caller", "cancel_child", key) == "409:cancelled"


def test_cancel_invocation_by_id(env, key):
    sent = env.ingress.send("Awaiter", "wait", key)
    awakeable_id(env, key)  # the target is now blocked on its awakeable
    env.ingress.call("Caller", "cancel_by_id", sent["invocationId"])
    with pytest.raises(IngressError) as info:
        env.ingress.attach(sent["invocationId"])
    assert info.value.status == 409


def test_attach_invocation(env, key):
    sent = env.ingress.send("Awaiter", "wait", key)
    attacher = env.ingress.send("Caller", "attach", sent["invocationId"])
    env.ingress.resolve_awakeable(awakeable_id(env, key), "attached!")
    assert env.ingress.attach(attacher["invocationId"]) == "attached!"


# ---------------------------------------------------------------- awakeables and signals


def test_awakeable_resolved_from_outside(env, key):
    sent = env.ingress.send("Awaiter", "wait", key)
    env.ingress.resolve_awakeable(awakeable_id(env, key), {"payload": 42})
    assert env.ingress.attach(sent["invocationId"]) == {"payload": 42}


def test_awakeable_rejected_from_outside(env, key):
    sent = env.ingress.send("Awaiter", "wait", key)
    env.ingress.reject_awakeable(awakeable_id(env, key), "denied")
    with pytest.raises(IngressError) as info:
        env.ingress.attach(sent["invocationId"])
    assert info.value.message == "denied"


def test_awakeable_resolved_and_rejected_by_handlers(env, key):
    sent = env.ingress.send("Awaiter", "wait", key)
    env.ingress.call("Awaiter", "resolve", {"id": awakeable_id(env, key), "value": "from a handler"})
    assert env.ingress.attach(sent["invocationId"]) == "from a handler"
    other = key + "-r"
    sent = env.ingress.send("Awaiter", "wait", other)
    env.ingress.call("Awaiter", "resolve", {"id": awakeable_id(env, other), "reject": "no way"})
    with pytest.raises(IngressError) as info:
        env.ingress.attach(sent["invocationId"])
    assert (info.value.status, info.value.message) == (418, "no way")


@pytest.mark.parametrize("outcome", ["resolve", "reject"])
def test_named_signals(env, outcome):
    sent = env.ingress.send("Awaiter", "wait_signal", "go")
    request = {"invocationId": sent["invocationId"], "name": "go"}
    request.update({"value": "green"} if outcome == "resolve" else {"reason": "red"})
    env.ingress.call("Awaiter", "signal", request)
    expected = "green" if outcome == "resolve" else "rejected: red"
    assert env.ingress.attach(sent["invocationId"]) == expected


# ---------------------------------------------------------------- combinators


def test_race(env):
    assert env.ingress.call("Combos", "race_sleep_vs_awakeable") == "sleep"


def test_all_any_all_settled(env):
    assert env.ingress.call("Combos", "all_and_any") == {
        "all": ["A", "B"],
        "any": "OK",
        "all_settled": ["ok:1", "err:first failed"],
        "all_error": "first failed",
    }


def test_nested_combinators(env):
    assert env.ingress.call("Combos", "nested") == [None, "n1", "n2"]


def test_or_timeout(env):
    assert env.ingress.call("Combos", "timeout") == {
        "timed_out": {"code": 408, "message": "Timeout occurred"},
        "fast": "fast",
    }


def test_wait_any(env):
    assert env.ingress.call("Combos", "wait_any") == [1, 1, 1]


# ---------------------------------------------------------------- run


def test_run_retry_policy_exhaustion_is_terminal(env, key):
    result = env.ingress.call("Runs", "retry_exhausted", key)
    assert result["attempts"] >= 3
    assert result["code"] == 500 and "still down" in result["message"]


def test_background_run_uses_another_thread(env):
    assert env.ingress.call("Runs", "background") is True


def test_context_calls_inside_run_are_rejected(env):
    assert "outside its handler greenlet" in env.ingress.call("Runs", "ctx_inside_run")
    assert "outside a Restate handler" in env.ingress.call("Runs", "accessor_inside_run")


def test_run_with_arguments_and_cooperative_io(env):
    assert env.ingress.call("Runs", "args") == 5
    assert env.ingress.call("Runs", "cooperative_io") == "yielded"


# ---------------------------------------------------------------- invocation metadata and accessors


def test_request_key_and_deterministic_random(env, key):
    info = env.ingress.call("Introspect", "info", "body!", key=key, headers={"x-test-header": "hi"})
    assert info["id"].startswith("inv_")
    assert info["key"] == key
    assert info["deterministic"] is True
    assert info["header"] == "hi"
    assert info["body"] == '"body!"'
    assert info["finished_before_end"] is False
    assert info["time_is_recent"] is True


def test_attempt_finished_event_wakes_waiters_when_the_attempt_ends(env, key):
    assert env.ingress.call("Watcher", "watch", key) is False
    assert wait_until(lambda: api_services.FINISHED.get(key), what="the watcher to see the event") is True


def test_accessors(env, key):
    result = env.ingress.call("Introspect", "accessors", key=key)
    assert result["key"] == key and result["same"] == "True"
    assert "Workflow @main handler" in result["wrong"] and "exclusive VirtualObject" in result["wrong"]


# ---------------------------------------------------------------- workflows (the seed's UserSignup)


def test_user_signup_workflow(env, key):
    sent = env.ingress.send("UserSignup", "run", "ada@example.com", key=key)
    wait_until(lambda: env.ingress.call("UserSignup", "status", key=key) == "waiting_for_approval")
    assert env.ingress.call("UserSignup", "peek", key=key) is None
    env.ingress.call("UserSignup", "approve", "approved by admin", key=key)
    assert env.ingress.attach(sent["invocationId"]) == {
        "user_id": "user-ada",
        "approval": "approved by admin",
    }
    assert env.ingress.call("UserSignup", "status", key=key) == "active"
    assert env.ingress.call("UserSignup", "peek", key=key) == "approved by admin"
    # the main handler runs once per key
    again = env.ingress.send("UserSignup", "run", "ada@example.com", key=key)
    assert again["status"] == "PreviouslyAccepted"
    with pytest.raises(IngressError) as info:
        env.ingress.call("UserSignup", "approve", "twice", key=key)
    assert info.value.status >= 400


def test_workflow_promise_rejection(env, key):
    sent = env.ingress.send("UserSignup", "run", "bob@example.com", key=key)
    wait_until(lambda: env.ingress.call("UserSignup", "status", key=key) == "waiting_for_approval")
    env.ingress.call("UserSignup", "reject", "not today", key=key)
    with pytest.raises(IngressError) as info:
        env.ingress.attach(sent["invocationId"])
    assert (info.value.status, info.value.message) == (403, "not today")


# ---------------------------------------------------------------- replay correctness


def test_non_determinism_fails_the_attempt_with_570(env, key):
    sent = env.ingress.send("NonDeterministic", "diverge", key=key)
    invocation_id = sent["invocationId"]

    def failure() -> object:
        rows = env.admin.query(f"SELECT last_failure FROM sys_invocation WHERE id = '{invocation_id}'")
        message = rows[0].get("last_failure", "") if rows else ""
        return "[570" in message and message

    message = wait_until(failure, timeout=30, what="the journal mismatch to be recorded")
    assert "SleepCommandMessage" in message and "RunCommandMessage" in message
    env.admin.kill_invocation(invocation_id)
    assert api_services.RUNS[f"nd:{key}"] >= 2
