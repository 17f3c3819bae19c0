"""``ListObject`` (contracts §3.7)."""

from __future__ import annotations

import restate_sync as restate

from ._common import UNIT

LIST = "list"


class ListObject(restate.VirtualObject):
    @restate.handler(output=UNIT)
    def append(ctx: restate.ObjectContext, value: str) -> None:
        ctx.set(LIST, [*(ctx.get(LIST) or []), value])

    @restate.handler
    def get(ctx: restate.ObjectContext) -> list[str]:
        return ctx.get(LIST) or []

    @restate.handler
    def clear(ctx: restate.ObjectContext) -> list[str]:
        previous = ctx.get(LIST) or []
        ctx.clear(LIST)
        return previous
