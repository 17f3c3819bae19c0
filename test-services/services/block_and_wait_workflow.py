"""``BlockAndWaitWorkflow`` (contracts §3.2)."""

from __future__ import annotations

import restate_sync as restate

from ._common import UNIT

PROMISE = "durable-promise"


class BlockAndWaitWorkflow(restate.Workflow):
    @restate.main
    def run(ctx: restate.WorkflowContext, value: str) -> str:
        ctx.set("my-state", value)
        output = ctx.promise(PROMISE)
        if ctx.peek_promise(PROMISE) is None:
            raise restate.TerminalError("Durable promise should be completed")
        return output

    @restate.handler(output=UNIT)
    def unblock(ctx: restate.WorkflowSharedContext, output: str) -> None:
        ctx.resolve_promise(PROMISE, output)

    @restate.handler(name="getState")
    def get_state(ctx: restate.WorkflowSharedContext) -> str | None:
        return ctx.get("my-state")
