"""``ObjectInterpreterL0/L1/L2`` and ``ServiceInterpreterHelper`` (contracts §3.13, §3.14).

No scenario uses them; they are the randomised-program verification services every reference SDK
binds. Semantics follow the Java reference: futures remembered by index are awaited only by an
explicit ``AwaitPromise`` (15); futures never awaited are left alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import gevent

import restate_sync as restate

from ._common import UNIT, ms

HELPER = "ServiceInterpreterHelper"
COUNTER = "counter"

SET_STATE = 1
GET_STATE = 2
CLEAR_STATE = 3
INCREMENT_STATE_COUNTER = 4
INCREMENT_STATE_COUNTER_INDIRECTLY = 5
SLEEP = 6
CALL_SERVICE = 7
CALL_SLOW_SERVICE = 8
INCREMENT_VIA_DELAYED_CALL = 9
SIDE_EFFECT = 10
THROWING_SIDE_EFFECT = 11
SLOW_SIDE_EFFECT = 12
RECOVER_TERMINAL_CALL = 13
RECOVER_TERMINAL_CALL_MAYBE_UN_AWAITED = 14
AWAIT_PROMISE = 15
RESOLVE_AWAKEABLE = 16
REJECT_AWAKEABLE = 17
INCREMENT_STATE_COUNTER_VIA_AWAKEABLE = 18
CALL_OBJECT = 19

INCREMENT_PROGRAM = {"commands": [{"kind": INCREMENT_STATE_COUNTER}]}


def interpreter_name(layer: int) -> str:
    return f"ObjectInterpreterL{layer}"


def _expect(
    future: restate.DurableFuture[Any], expected: Any, index: int, command: Any
) -> Callable[[], None]:
    def check() -> None:
        actual = future.result()
        if actual != expected:
            raise restate.TerminalError(
                f"Awaited promise mismatch. got {actual!r} expected {expected!r}; "
                f"command at index {index} was {command}"
            )

    return check


def _expect_failure(future: restate.DurableFuture[Any], index: int, command: Any) -> Callable[[], None]:
    def check() -> None:
        try:
            value = future.result()
        except restate.TerminalError:
            return
        raise restate.TerminalError(
            f"Awaited promise mismatch. should fail but instead got {value!r}; "
            f"command at index {index} was {command}"
        )

    return check


def _throwing_side_effect() -> None:
    if random.random() < 0.5:  # deliberately non-deterministic: a retryable failure
        raise ValueError("Random failure caused by a very cool language.")


def _slow_side_effect() -> None:
    gevent.sleep(0.001)


def run_program(layer: int, ctx: restate.ObjectContext, program: dict[str, Any]) -> None:
    me = {"layer": layer, "key": ctx.key}
    promises: dict[int, Callable[[], None]] = {}
    for i, command in enumerate(program.get("commands") or []):
        kind = command["kind"]
        if kind == SET_STATE:
            ctx.set(f"key-{command['key']}", f"value-{command['key']}")
        elif kind == GET_STATE:
            ctx.get(f"key-{command['key']}")
        elif kind == CLEAR_STATE:
            ctx.clear(f"key-{command['key']}")
        elif kind == INCREMENT_STATE_COUNTER:
            ctx.set(COUNTER, (ctx.get(COUNTER) or 0) + 1)
        elif kind == INCREMENT_STATE_COUNTER_INDIRECTLY:
            ctx.service_send(HELPER, "incrementIndirectly", me)
        elif kind == SLEEP:
            ctx.sleep(ms(command["duration"])).result()
        elif kind == CALL_SERVICE:
            expected = f"hello-{i}"
            promises[i] = _expect(ctx.service_call(HELPER, "echo", expected), expected, i, command)
        elif kind == CALL_SLOW_SERVICE:
            expected = f"hello-{i}"
            future = ctx.service_call(HELPER, "echoLater", {"sleep": command["sleep"], "parameter": expected})
            promises[i] = _expect(future, expected, i, command)
        elif kind == INCREMENT_VIA_DELAYED_CALL:
            ctx.service_send(HELPER, "incrementIndirectly", me, delay=ms(command["duration"]))
        elif kind == SIDE_EFFECT:
            expected = f"hello-{i}"
            result = ctx.run_sync("sideEffect", lambda expected=expected: expected)
            if result != expected:
                raise restate.TerminalError(f"Side effect result don't match: {result} != {expected}")
        elif kind == THROWING_SIDE_EFFECT:
            ctx.run_sync("throwingSideEffect", _throwing_side_effect)
        elif kind == SLOW_SIDE_EFFECT:
            ctx.run_sync("slowSideEffect", _slow_side_effect)
        elif kind == RECOVER_TERMINAL_CALL:
            try:
                ctx.service_call(HELPER, "terminalFailure").result()
            except restate.TerminalError:
                pass
            else:
                raise restate.TerminalError(
                    f"Test assertion failed, was expected to get a terminal error. Layer {layer}, Command {i}"
                )
        elif kind == RECOVER_TERMINAL_CALL_MAYBE_UN_AWAITED:
            promises[i] = _expect_failure(ctx.service_call(HELPER, "terminalFailure"), i, command)
        elif kind == AWAIT_PROMISE:
            check = promises.pop(command["index"], None)
            if check is None:
                raise restate.TerminalError(
                    f"{interpreter_name(layer)}: can not find a promise for the id {command['index']}."
                )
            check()
        elif kind == RESOLVE_AWAKEABLE:
            awakeable_id, awakeable = ctx.awakeable()
            promises[i] = _expect(awakeable, "ok", i, command)
            ctx.service_send(HELPER, "resolveAwakeable", awakeable_id)
        elif kind == REJECT_AWAKEABLE:
            awakeable_id, awakeable = ctx.awakeable()
            promises[i] = _expect_failure(awakeable, i, command)
            ctx.service_send(HELPER, "rejectAwakeable", awakeable_id)
        elif kind == INCREMENT_STATE_COUNTER_VIA_AWAKEABLE:
            tx_id, tx = ctx.awakeable()
            ctx.service_send(HELPER, "incrementViaAwakeableDance", {"interpreter": me, "txPromiseId": tx_id})
            their_id = tx.result()
            ctx.resolve_awakeable(their_id, "ok")
        elif kind == CALL_OBJECT:
            future = ctx.object_call(
                interpreter_name(layer + 1), "interpret", str(command["key"]), command["program"]
            )
            promises[i] = _expect(future, None, i, command)
        else:
            raise restate.TerminalError(f"unknown command kind {kind!r}", status_code=400)


def _make_layer(layer: int) -> type[restate.VirtualObject]:
    class ObjectInterpreter(restate.VirtualObject, name=interpreter_name(layer)):
        @restate.handler(output=UNIT)
        def interpret(ctx: restate.ObjectContext, program: dict[str, Any]) -> None:
            run_program(layer, ctx, program)

        @restate.shared
        def counter(ctx: restate.ObjectSharedContext) -> int:
            return ctx.get(COUNTER) or 0

    ObjectInterpreter.__name__ = ObjectInterpreter.__qualname__ = interpreter_name(layer)
    return ObjectInterpreter


ObjectInterpreterL0 = _make_layer(0)
ObjectInterpreterL1 = _make_layer(1)
ObjectInterpreterL2 = _make_layer(2)


def _send_increment(ctx: restate.Context, interpreter: dict[str, Any]) -> None:
    ctx.object_send(
        interpreter_name(int(interpreter["layer"])), "interpret", str(interpreter["key"]), INCREMENT_PROGRAM
    )


class ServiceInterpreterHelper(restate.Service):
    @restate.handler(output=UNIT)
    def ping(ctx: restate.Context) -> None:
        return None

    @restate.handler
    def echo(ctx: restate.Context, parameter: str) -> str:
        return parameter

    @restate.handler(name="echoLater")
    def echo_later(ctx: restate.Context, request: dict[str, Any]) -> str:
        ctx.sleep(ms(request["sleep"])).result()
        return request["parameter"]

    @restate.handler(name="terminalFailure", output=UNIT)
    def terminal_failure(ctx: restate.Context) -> None:
        raise restate.TerminalError("bye")

    @restate.handler(name="incrementIndirectly", output=UNIT)
    def increment_indirectly(ctx: restate.Context, interpreter: dict[str, Any]) -> None:
        _send_increment(ctx, interpreter)

    @restate.handler(name="resolveAwakeable", output=UNIT)
    def resolve_awakeable(ctx: restate.Context, awakeable_id: str) -> None:
        ctx.resolve_awakeable(awakeable_id, "ok")

    @restate.handler(name="rejectAwakeable", output=UNIT)
    def reject_awakeable(ctx: restate.Context, awakeable_id: str) -> None:
        ctx.reject_awakeable(awakeable_id, "error")

    @restate.handler(name="incrementViaAwakeableDance", output=UNIT)
    def increment_via_awakeable_dance(ctx: restate.Context, request: dict[str, Any]) -> None:
        awakeable_id, awakeable = ctx.awakeable()
        ctx.resolve_awakeable(request["txPromiseId"], awakeable_id)
        awakeable.result()
        _send_increment(ctx, request["interpreter"])
