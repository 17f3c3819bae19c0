"""``CancelTestRunner`` and ``CancelTestBlockingService`` (contracts §3.3)."""

from __future__ import annotations

from datetime import timedelta

import restate_sync as restate

from ._common import UNIT

CANCELLED = 409


class CancelTestRunner(restate.VirtualObject):
    @restate.handler(name="startTest", output=UNIT)
    def start_test(ctx: restate.ObjectContext, operation: str) -> None:
        try:
            ctx.object_call("CancelTestBlockingService", "block", ctx.key, operation).result()
        except restate.TerminalError as exc:
            if exc.status_code != CANCELLED:
                raise
            ctx.set("canceled", True)

    @restate.handler(name="verifyTest")
    def verify_test(ctx: restate.ObjectContext) -> bool:
        return bool(ctx.get("canceled") or False)


class CancelTestBlockingService(restate.VirtualObject):
    @restate.handler(output=UNIT)
    def block(ctx: restate.ObjectContext, operation: str) -> None:
        awakeable_id, awakeable = ctx.awakeable()
        ctx.object_call("AwakeableHolder", "hold", ctx.key, awakeable_id).result()
        awakeable.result()
        if operation == "CALL":
            # a self-call on the same key: it sits in the inbox behind us, a deadlock by design
            ctx.object_call("CancelTestBlockingService", "block", ctx.key, operation).result()
        elif operation == "SLEEP":
            ctx.sleep(timedelta(days=1024)).result()
        elif operation == "AWAKEABLE":
            _, never = ctx.awakeable()
            never.result()
        else:
            raise restate.TerminalError(f"unknown BlockingOperation {operation!r}", status_code=400)

    @restate.handler(name="isUnlocked", output=UNIT)
    def is_unlocked(ctx: restate.ObjectContext) -> None:
        return None
