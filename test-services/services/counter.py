"""``Counter`` (contracts §3.4). ``get`` is shared, as the contract declares."""

from __future__ import annotations

import restate_sync as restate

from ._common import UNIT

COUNTER = "counter"


def _add(ctx: restate.ObjectContext, value: int) -> dict[str, int]:
    old = ctx.get(COUNTER) or 0
    new = old + value
    ctx.set(COUNTER, new)
    return {"oldValue": old, "newValue": new}


class Counter(restate.VirtualObject):
    @restate.handler
    def add(ctx: restate.ObjectContext, value: int) -> dict[str, int]:
        return _add(ctx, value)

    @restate.handler(name="addThenFail", output=UNIT)
    def add_then_fail(ctx: restate.ObjectContext, value: int) -> None:
        _add(ctx, value)
        raise restate.TerminalError(ctx.key)

    @restate.shared
    def get(ctx: restate.ObjectSharedContext) -> int:
        return ctx.get(COUNTER) or 0

    @restate.handler(output=UNIT)
    def reset(ctx: restate.ObjectContext) -> None:
        ctx.clear(COUNTER)
