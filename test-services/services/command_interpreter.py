"""``VirtualObjectCommandInterpreter`` (contracts §3.12): combinators, awakeables, signals, timers.

Each awaitable command becomes a durable future plus a function mapping its value to the result
string (a timer's value is the literal ``"sleep"``). Combinators are the SDK's own
(``restate.race/any/all/all_settled``, ``future.or_timeout``); the winner of a race/any is the
first child, in argument order, that the combinator could have picked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gevent

import restate_sync as restate

from ._common import UNIT, ms

RESULTS = "results"

Awaitable = tuple[restate.DurableFuture[Any], Callable[[Any], str]]


def _identity(value: Any) -> str:
    return value


def _sleep_value(_: Any) -> str:
    return "sleep"


def _awk_state(key: str) -> str:
    return "awk-" + key


def _awaitable(ctx: restate.ObjectContext, command: dict[str, Any]) -> Awaitable:
    kind = command["type"]
    if kind == "createAwakeable":
        awakeable_id, future = ctx.awakeable()
        ctx.set(_awk_state(command["awakeableKey"]), awakeable_id)
        return future, _identity
    if kind == "sleep":
        return ctx.sleep(ms(command["timeoutMillis"])), _sleep_value
    if kind == "runThrowTerminalException":
        reason = command["reason"]

        def throw() -> str:
            raise restate.TerminalError(reason)

        return ctx.run(f"should-fail-with-{reason}", throw), _identity
    if kind == "runReturns":
        value = command["value"]

        def returns() -> str:
            gevent.sleep(0)  # genuinely asynchronous, so racing against it is a real race
            return value

        return ctx.run("run-returns", returns), _identity
    if kind == "createSignal":
        return ctx.signal(command["signalName"]), _identity
    raise restate.TerminalError(f"unknown awaitable command type {kind!r}", status_code=400)


def _first_done(awaitables: list[Awaitable], *, successful: bool) -> Awaitable:
    """The child a settled race (``successful=False``) or any (``True``) picked."""
    for awaitable in awaitables:
        future = awaitable[0]
        if future.done() and (not successful or future.exception() is None):
            return awaitable
    raise AssertionError("combinator settled without a settled child")


def _await_first_completed(awaitables: list[Awaitable]) -> str:
    restate.race(*(f for f, _ in awaitables)).result()  # raises the winner's error
    future, to_result = _first_done(awaitables, successful=False)
    return to_result(future.result())


def _await_first_successful(awaitables: list[Awaitable]) -> str:
    restate.any(*(f for f, _ in awaitables)).result()  # all failed: raises the last error
    future, to_result = _first_done(awaitables, successful=True)
    return to_result(future.result())


def _await_all_successful(awaitables: list[Awaitable]) -> str:
    values = restate.all(*(f for f, _ in awaitables)).result()
    return "|".join(to_result(v) for (_, to_result), v in zip(awaitables, values, strict=True))


def _await_all_completed(awaitables: list[Awaitable]) -> str:
    restate.all_settled(*(f for f, _ in awaitables)).result()
    parts = []
    for future, to_result in awaitables:
        error = future.exception()
        parts.append(f"err:{error.message}" if error is not None else f"ok:{to_result(future.result())}")
    return "|".join(parts)


def _awakeable_id(ctx: restate.ObjectSharedContext, key: str) -> str:
    awakeable_id = ctx.get(_awk_state(key))
    if not awakeable_id or not awakeable_id.strip():
        raise restate.TerminalError("No awakeable is registered")
    return awakeable_id


def _resolve(ctx: restate.ObjectSharedContext, request: dict[str, Any]) -> None:
    ctx.resolve_awakeable(_awakeable_id(ctx, request["awakeableKey"]), request["value"])


def _reject(ctx: restate.ObjectSharedContext, request: dict[str, Any]) -> None:
    ctx.reject_awakeable(_awakeable_id(ctx, request["awakeableKey"]), request["reason"])


_COMBINATORS: dict[str, Callable[[list[Awaitable]], str]] = {
    "awaitAny": _await_first_completed,
    "awaitFirstCompleted": _await_first_completed,
    "awaitAnySuccessful": _await_first_successful,
    "awaitFirstSucceededOrAllFailed": _await_first_successful,
    "awaitAllSucceededOrFirstFailed": _await_all_successful,
    "awaitAllCompleted": _await_all_completed,
}


def _interpret(ctx: restate.ObjectContext, command: dict[str, Any]) -> str:
    kind = command["type"]
    if kind == "awaitOne":
        future, to_result = _awaitable(ctx, command["command"])
        return to_result(future.result())
    combinator = _COMBINATORS.get(kind)
    if combinator is not None:
        awaitables = [_awaitable(ctx, c) for c in command["commands"]]
        if not awaitables:
            raise restate.TerminalError(f"{kind} needs at least one command", status_code=400)
        return combinator(awaitables)
    if kind == "awaitAwakeableOrTimeout":
        awakeable_id, awakeable = ctx.awakeable()
        ctx.set(_awk_state(command["awakeableKey"]), awakeable_id)
        try:
            return awakeable.or_timeout(ms(command["timeoutMillis"])).result()
        except restate.TimeoutError:
            raise restate.TerminalError("await-timeout") from None
    if kind == "resolveAwakeable":
        _resolve(ctx, command)
        return ""
    if kind == "rejectAwakeable":
        _reject(ctx, command)
        return ""
    if kind == "getEnvVariable":
        name = command["envName"]
        return ctx.run_sync("get_env", lambda: os.environ.get(name, ""))
    raise restate.TerminalError(f"unknown command type {kind!r}", status_code=400)


class VirtualObjectCommandInterpreter(restate.VirtualObject):
    @restate.handler(name="interpretCommands")
    def interpret_commands(ctx: restate.ObjectContext, request: dict[str, Any]) -> str:
        result = ""
        for command in request.get("commands") or []:
            result = _interpret(ctx, command)
            ctx.set(RESULTS, [*(ctx.get(RESULTS) or []), result])
        return result

    @restate.shared(name="resolveAwakeable", output=UNIT)
    def resolve_awakeable(ctx: restate.ObjectSharedContext, request: dict[str, Any]) -> None:
        _resolve(ctx, request)

    @restate.shared(name="rejectAwakeable", output=UNIT)
    def reject_awakeable(ctx: restate.ObjectSharedContext, request: dict[str, Any]) -> None:
        _reject(ctx, request)

    @restate.shared(name="hasAwakeable")
    def has_awakeable(ctx: restate.ObjectSharedContext, awakeable_key: str) -> bool:
        awakeable_id = ctx.get(_awk_state(awakeable_key))
        return bool(awakeable_id and awakeable_id.strip())

    @restate.shared(name="getResults")
    def get_results(ctx: restate.ObjectSharedContext) -> list[str]:
        return ctx.get(RESULTS) or []
