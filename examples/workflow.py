"""Workflows: a main handler that runs once per key, durable promises, shared handlers.

restate-sync serve examples/workflow.py:endpoint --bind 127.0.0.1:9080
curl localhost:8080/UserSignup/user42/run/send -H 'content-type: application/json' -d '"user@example.com"'
curl localhost:8080/UserSignup/user42/status -H 'content-type: application/json' -d 'null'
curl localhost:8080/UserSignup/user42/approve -H 'content-type: application/json' -d '"approved by admin"'
curl localhost:8080/restate/workflow/UserSignup/user42/attach
"""

from __future__ import annotations

from typing import Any

import restate_sync as restate


def create_user(email: str) -> str:
    return "user-" + email.split("@")[0]


class UserSignup(restate.Workflow):
    @restate.main
    def run(ctx: restate.WorkflowContext, email: str) -> dict[str, Any]:
        user_id = ctx.run_sync("create-account", create_user, email)
        ctx.set("status", "waiting_for_approval")
        try:
            approval = ctx.promise("approval", type=str)  # blocks (durably) until approve/reject
        except restate.TerminalError as exc:
            ctx.set("status", f"rejected: {exc.message}")
            raise
        ctx.set("status", "active")
        return {"user_id": user_id, "approval": approval}

    @restate.handler
    def approve(ctx: restate.WorkflowSharedContext, reason: str) -> None:
        ctx.resolve_promise("approval", reason)

    @restate.handler
    def reject(ctx: restate.WorkflowSharedContext, reason: str) -> None:
        ctx.reject_promise("approval", reason, code=403)

    @restate.handler
    def status(ctx: restate.WorkflowSharedContext) -> str:
        return ctx.get("status", type=str) or "unknown"


endpoint = restate.endpoint(UserSignup)
