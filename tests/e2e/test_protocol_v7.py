"""Service protocol V7 against a real restate-server 1.7 started with V7 (and vqueues) enabled.

Checks what the server really negotiates and accepts: V7 is pinned only when the server offers
it, the invocation's idempotency key reaches ``ctx.request``, a run exhausting a ``"pause"``
policy pauses the invocation, and the scope of a send reaches the callee.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import restate_sync as restate
import restate_sync.testing
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

V7_ENV = {"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true", "RESTATE_EXPERIMENTAL_ENABLE_VQUEUES": "true"}


class V7Probe(restate.Service):
    @restate.handler
    def request_keys(ctx: restate.Context) -> dict[str, Any]:
        return {
            "idempotency_key": ctx.request.idempotency_key,
            "scope": ctx.request.scope,
            "limit_key": ctx.request.limit_key,
        }

    @restate.handler
    def run_then_pause(ctx: restate.Context) -> str:
        def always_fails() -> str:
            raise RuntimeError("still broken")

        policy = restate.RunRetryPolicy(initial_interval=0.01, max_attempts=2, on_max_attempts="pause")
        return ctx.run_sync("always-fails", always_fails, retry_policy=policy)

    @restate.handler
    def send_scoped(ctx: restate.Context, scope: str) -> str:
        return ctx.service_send(V7Probe, "request_keys", scope=scope, limit_key="lk-1").invocation_id

    @restate.handler
    def misuse(ctx: restate.Context) -> list[str]:
        errors = []
        for options in (
            {"limit_key": "lk"},
            {"scope": ""},
            {"scope": "s", "limit_key": ""},
            {"idempotency_key": ""},
        ):
            try:
                ctx.service_send(V7Probe, "request_keys", **options)
            except restate.MisuseError as exc:
                errors.append(str(exc))
        return errors

    @restate.handler
    def steps(ctx: restate.Context) -> list[str]:
        return [ctx.run_sync(f"step-{i}", lambda i=i: f"s{i}") for i in range(3)]


@pytest.fixture(scope="module")
def v7() -> Iterator[restate_sync.testing.TestEnvironment]:
    with restate_sync.testing.start(V7Probe, server_env=V7_ENV) as environment:
        yield environment


def _pinned_version(env: restate_sync.testing.TestEnvironment, invocation_id: str) -> Any:
    rows = env.admin.query(
        f"SELECT pinned_service_protocol_version FROM sys_invocation WHERE id = '{invocation_id}'"
    )
    return rows[0]["pinned_service_protocol_version"] if rows else None


def test_v7_is_negotiated_when_the_server_offers_it(v7: restate_sync.testing.TestEnvironment) -> None:
    sent = v7.ingress.send("V7Probe", "steps")
    assert v7.ingress.attach(sent["invocationId"], timeout=30) == ["s0", "s1", "s2"]
    assert _pinned_version(v7, sent["invocationId"]) == 7


def test_v6_stays_without_the_flag() -> None:
    with restate_sync.testing.start(V7Probe) as env:
        sent = env.ingress.send("V7Probe", "steps")
        assert env.ingress.attach(sent["invocationId"], timeout=30) == ["s0", "s1", "s2"]
        assert _pinned_version(env, sent["invocationId"]) == 6


def test_the_invocations_own_idempotency_key_reaches_ctx_request(
    v7: restate_sync.testing.TestEnvironment,
) -> None:
    key = uuid.uuid4().hex
    got = v7.ingress.call("V7Probe", "request_keys", idempotency_key=key, timeout=30)
    assert got["idempotency_key"] == key
    # without one, restate 1.7 gives every ingress request its own (its safe ingress retries)
    assert v7.ingress.call("V7Probe", "request_keys", timeout=30)["idempotency_key"] != key


def test_run_retry_exhaustion_with_pause_pauses_the_invocation(
    v7: restate_sync.testing.TestEnvironment,
) -> None:
    sent = v7.ingress.send("V7Probe", "run_then_pause")
    invocation_id = sent["invocationId"]

    def status() -> Any:
        rows = v7.admin.query(f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'")
        return rows[0]["status"] if rows else None

    wait_until(lambda: status() == "paused", timeout=30, what="the invocation to be paused")


def test_a_send_carries_its_scope_and_limit_key(v7: restate_sync.testing.TestEnvironment) -> None:
    scope = f"scope-{uuid.uuid4().hex[:8]}"
    child = v7.ingress.call("V7Probe", "send_scoped", scope, timeout=30)
    got = v7.ingress.attach(child, timeout=30)
    assert (got["scope"], got["limit_key"]) == (scope, "lk-1")


def test_misused_keys_fail_fast_before_anything_is_journaled(
    v7: restate_sync.testing.TestEnvironment,
) -> None:
    errors = v7.ingress.call("V7Probe", "misuse", timeout=30)
    assert len(errors) == 4
    assert "limit_key needs a scope" in errors[0]
    assert all("non-empty" in e for e in errors[1:])
