"""``AwakeableHolder`` (contracts §3.1): a synchronisation point between services and the runner."""

from __future__ import annotations

import restate_sync as restate

from ._common import UNIT


class AwakeableHolder(restate.VirtualObject):
    @restate.handler(output=UNIT)
    def hold(ctx: restate.ObjectContext, awakeable_id: str) -> None:
        ctx.set("id", awakeable_id)

    @restate.handler(name="hasAwakeable")
    def has_awakeable(ctx: restate.ObjectContext) -> bool:
        return ctx.get("id") is not None

    @restate.handler(output=UNIT)
    def unlock(ctx: restate.ObjectContext, payload: str) -> None:
        awakeable_id = ctx.get("id")
        if awakeable_id is None:
            raise restate.TerminalError("No awakeable is registered")
        ctx.resolve_awakeable(awakeable_id, payload)
