"""``KillTestRunner`` and ``KillTestSingleton`` (contracts §3.6)."""

from __future__ import annotations

import restate_sync as restate

from ._common import UNIT


class KillTestRunner(restate.VirtualObject):
    @restate.handler(name="startCallTree", output=UNIT)
    def start_call_tree(ctx: restate.ObjectContext) -> None:
        ctx.object_call("KillTestSingleton", "recursiveCall", ctx.key).result()


class KillTestSingleton(restate.VirtualObject):
    @restate.handler(name="recursiveCall", output=UNIT)
    def recursive_call(ctx: restate.ObjectContext) -> None:
        awakeable_id, awakeable = ctx.awakeable()
        ctx.object_send("AwakeableHolder", "hold", ctx.key, awakeable_id)
        awakeable.result()
        # inboxed behind this invocation: a deadlock by design
        ctx.object_call("KillTestSingleton", "recursiveCall", ctx.key).result()

    @restate.handler(name="isUnlocked", output=UNIT)
    def is_unlocked(ctx: restate.ObjectContext) -> None:
        return None
