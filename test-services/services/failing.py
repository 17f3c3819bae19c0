"""``Failing`` (contracts §3.5): terminal errors, retryable errors and run retry policies.

The attempt counters are process-global, in memory, not per key and not durable, as the contract
asks ("an atomic counter in the service"): plain module-level ints under a lock.
"""

from __future__ import annotations

import threading
from typing import Any

import restate_sync as restate

from ._common import UNIT

_lock = threading.Lock()
_eventual_success_calls = 0
_eventual_success_side_effects = 0
_eventual_failure_side_effects = 0

# 1–10 ms initial interval and factor 1.0 (contracts §3.5)
_RUN_RETRY_INTERVAL = 0.01


def _terminal(failure: dict[str, Any]) -> restate.TerminalError:
    return restate.TerminalError(failure["errorMessage"], metadata=failure.get("metadata") or None)


class Failing(restate.VirtualObject):
    @restate.handler(name="terminallyFailingCall", output=UNIT)
    def terminally_failing_call(ctx: restate.ObjectContext, failure: dict[str, Any]) -> None:
        raise _terminal(failure)

    @restate.handler(name="callTerminallyFailingCall")
    def call_terminally_failing_call(ctx: restate.ObjectContext, failure: dict[str, Any]) -> str:
        other_key = str(ctx.uuid())  # deterministic per invocation, like Java's ctx.random
        ctx.object_call("Failing", "terminallyFailingCall", other_key, failure).result()
        raise RuntimeError("This should be unreachable")

    @restate.handler(name="failingCallWithEventualSuccess")
    def failing_call_with_eventual_success(ctx: restate.ObjectContext) -> int:
        global _eventual_success_calls
        with _lock:
            _eventual_success_calls += 1
            attempt = _eventual_success_calls
            if attempt >= 4:
                _eventual_success_calls = 0
        if attempt >= 4:
            return 4
        raise ValueError(f"Failed at attempt: {attempt}")

    @restate.handler(name="terminallyFailingSideEffect", output=UNIT)
    def terminally_failing_side_effect(ctx: restate.ObjectContext, failure: dict[str, Any]) -> None:
        def fail() -> None:
            raise _terminal(failure)

        ctx.run_sync("sideEffect", fail)
        raise RuntimeError("Should not be reached.")

    @restate.handler(name="sideEffectSucceedsAfterGivenAttempts")
    def side_effect_succeeds_after_given_attempts(ctx: restate.ObjectContext, minimum_attempts: int) -> int:
        def attempt() -> int:
            global _eventual_success_side_effects
            with _lock:
                _eventual_success_side_effects += 1
                current = _eventual_success_side_effects
                if current >= minimum_attempts:
                    _eventual_success_side_effects = 0
            if current >= minimum_attempts:
                return current
            raise ValueError(f"Failed at attempt: {current}")

        policy = restate.RunRetryPolicy(
            initial_interval=_RUN_RETRY_INTERVAL, exponentiation_factor=1.0, max_attempts=minimum_attempts + 1
        )
        return ctx.run_sync("failing_side_effect", attempt, retry_policy=policy)

    @restate.handler(name="sideEffectFailsAfterGivenAttempts")
    def side_effect_fails_after_given_attempts(ctx: restate.ObjectContext, max_attempts: int) -> int:
        def attempt() -> None:
            global _eventual_failure_side_effects
            with _lock:
                _eventual_failure_side_effects += 1
                current = _eventual_failure_side_effects
            raise ValueError(f"Failed at attempt: {current}")

        policy = restate.RunRetryPolicy(
            initial_interval=_RUN_RETRY_INTERVAL, exponentiation_factor=1.0, max_attempts=max_attempts
        )
        try:
            ctx.run_sync("failing_side_effect", attempt, retry_policy=policy)
        except restate.TerminalError:
            with _lock:
                return _eventual_failure_side_effects
        raise restate.TerminalError("Expecting the side effect to fail!")
