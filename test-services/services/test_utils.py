"""``TestUtilsService`` (contracts §3.11)."""

from __future__ import annotations

from typing import Any

import restate_sync as restate

from ._common import RAW, UNIT, ms


class TestUtilsService(restate.Service):
    __test__ = False  # not a pytest test class, whatever imports it

    @restate.handler
    def echo(ctx: restate.Context, value: str) -> str:
        return value

    @restate.handler(name="uppercaseEcho")
    def uppercase_echo(ctx: restate.Context, value: str) -> str:
        return value.upper()

    @restate.handler(name="echoHeaders")
    def echo_headers(ctx: restate.Context) -> dict[str, str]:
        return dict(ctx.request.headers)

    @restate.handler(name="rawEcho", input=RAW, output=RAW, accept="*/*")
    def raw_echo(ctx: restate.Context, data: bytes) -> bytes:
        return data

    @restate.handler(name="sleepConcurrently", output=UNIT)
    def sleep_concurrently(ctx: restate.Context, millis: list[int]) -> None:
        """v1.0 only: create every timer first, then await them all."""
        timers = [ctx.sleep(ms(m)) for m in millis or []]
        for timer in timers:
            timer.result()

    @restate.handler(name="countExecutedSideEffects")
    def count_executed_side_effects(ctx: restate.Context, increments: int) -> int:
        executed = 0

        def count() -> None:
            nonlocal executed
            executed += 1

        for _ in range(increments):
            ctx.run_sync("count", count)
        return executed

    @restate.handler(name="cancelInvocation", output=UNIT)
    def cancel_invocation(ctx: restate.Context, invocation_id: str) -> None:
        ctx.cancel_invocation(invocation_id)

    @restate.handler(name="resolveSignal", output=UNIT)
    def resolve_signal(ctx: restate.Context, request: dict[str, Any]) -> None:
        ctx.resolve_signal(request["invocationId"], request["signalName"], request["value"])

    @restate.handler(name="rejectSignal", output=UNIT)
    def reject_signal(ctx: restate.Context, request: dict[str, Any]) -> None:
        ctx.reject_signal(request["invocationId"], request["signalName"], request["reason"])
