"""Virtual objects: keyed state, exclusive vs shared handlers, state_keys, clear_all.

restate-sync serve examples/virtual_objects.py:endpoint --bind 127.0.0.1:9080
curl localhost:8080/ShoppingCart/alice/add -H 'content-type: application/json' -d '{"item": "tea", "qty": 2}'
curl localhost:8080/ShoppingCart/alice/contents
"""

from __future__ import annotations

from typing import Any, TypedDict

import restate_sync as restate


class Line(TypedDict):
    item: str
    qty: int


class ShoppingCart(restate.VirtualObject):
    """One cart per key; writes are serialized per key, reads run concurrently."""

    @restate.handler
    def add(ctx: restate.ObjectContext, line: Line) -> int:
        quantity = (ctx.get(line["item"], type=int) or 0) + line["qty"]
        ctx.set(line["item"], quantity)
        return quantity

    @restate.handler
    def remove(ctx: restate.ObjectContext, item: str) -> None:
        ctx.clear(item)

    @restate.handler
    def checkout(ctx: restate.ObjectContext) -> dict[str, Any]:
        futures = {item: ctx.get_async(item) for item in ctx.state_keys()}
        contents = {item: future.result() for item, future in futures.items()}
        ctx.clear_all()
        return contents

    @restate.shared
    def contents(ctx: restate.ObjectSharedContext) -> dict[str, Any]:
        return {item: ctx.get(item) for item in ctx.state_keys()}


endpoint = restate.endpoint(ShoppingCart)
