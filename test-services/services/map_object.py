"""``MapObject`` (contracts §3.8): each entry is its own state key."""

from __future__ import annotations

from typing import Any

import restate_sync as restate

from ._common import UNIT


class MapObject(restate.VirtualObject):
    @restate.handler(output=UNIT)
    def set(ctx: restate.ObjectContext, entry: dict[str, Any]) -> None:
        ctx.set(entry["key"], entry["value"])

    @restate.handler
    def get(ctx: restate.ObjectContext, key: str) -> str:
        value = ctx.get(key)
        return value if value is not None else ""

    @restate.handler(name="clearAll")
    def clear_all(ctx: restate.ObjectContext) -> list[dict[str, str]]:
        entries = []
        for key in ctx.state_keys():
            entries.append({"key": key, "value": ctx.get(key)})
            ctx.clear(key)
        return entries
