"""``NonDeterministic`` (contracts §3.9): deliberately diverges between executions.

A process-global map counts executions (including replays) per object key; odd executions take
the "left" branch, even ones the "right" branch, so a replay after the 100 ms sleep's suspension
records a different command and the SDK must fail the attempt with a journal mismatch (570).
"""

from __future__ import annotations

import threading
from collections import defaultdict

import restate_sync as restate

from ._common import UNIT, ms

_lock = threading.Lock()
_invocation_counts: defaultdict[str, int] = defaultdict(int)


def _do_left_action(ctx: restate.ObjectContext) -> bool:
    with _lock:
        _invocation_counts[ctx.key] += 1
        return _invocation_counts[ctx.key] % 2 == 1


def _increment_counter(ctx: restate.ObjectContext) -> None:
    # the contract's intent: Counter/{key} (Java's fixed "abc" makes the assertion vacuous)
    ctx.object_send("Counter", "add", ctx.key, 1)


def _finish(ctx: restate.ObjectContext) -> None:
    ctx.sleep(ms(100)).result()
    _increment_counter(ctx)


class NonDeterministic(restate.VirtualObject):
    @restate.handler(name="eitherSleepOrCall", output=UNIT)
    def either_sleep_or_call(ctx: restate.ObjectContext) -> None:
        if _do_left_action(ctx):
            ctx.sleep(ms(100)).result()
        else:
            ctx.object_call("Counter", "get", "abc").result()
        _finish(ctx)

    @restate.handler(name="callDifferentMethod", output=UNIT)
    def call_different_method(ctx: restate.ObjectContext) -> None:
        if _do_left_action(ctx):
            ctx.object_call("Counter", "get", "abc").result()
        else:
            ctx.object_call("Counter", "reset", "abc").result()
        _finish(ctx)

    @restate.handler(name="backgroundInvokeWithDifferentTargets", output=UNIT)
    def background_invoke_with_different_targets(ctx: restate.ObjectContext) -> None:
        if _do_left_action(ctx):
            ctx.object_send("Counter", "get", "abc")
        else:
            ctx.object_send("Counter", "reset", "abc")
        _finish(ctx)

    @restate.handler(name="setDifferentKey", output=UNIT)
    def set_different_key(ctx: restate.ObjectContext) -> None:
        if _do_left_action(ctx):
            ctx.set("a", "my-state")
        else:
            ctx.set("b", "my-state")
        _finish(ctx)
