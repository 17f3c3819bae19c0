"""A virtual object: a durable counter per key.

restate-sync serve examples/counter.py:endpoint --bind 127.0.0.1:9080
curl localhost:8080/Counter/my-counter/add -H 'content-type: application/json' -d '5'
curl localhost:8080/Counter/my-counter/get
"""

import restate_sync as restate


class Counter(restate.VirtualObject):
    """A counter whose value survives crashes; one `add` at a time per key."""

    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        current = ctx.get("count") or 0
        ctx.set("count", current + amount)
        return current + amount

    @restate.shared
    def get(ctx: restate.ObjectSharedContext) -> int:
        return ctx.get("count") or 0

    @restate.handler
    def reset(ctx: restate.ObjectContext) -> None:
        ctx.clear("count")


endpoint = restate.endpoint(Counter)
