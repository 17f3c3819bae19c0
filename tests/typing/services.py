"""Services the typing checks call: typed handlers of every kind."""

from __future__ import annotations

from dataclasses import dataclass

import restate_sync as restate


@dataclass
class User:
    name: str
    age: int


class Greeter(restate.Service):
    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        return f"Hello, {name}!"

    @restate.handler(name="welcome", inactivity_timeout=5)
    def welcome(ctx: restate.Context, user: User) -> User:
        return user

    @restate.handler
    def ping(ctx: restate.Context) -> int:
        return 1


class Counter(restate.VirtualObject):
    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        current = ctx.get("count", type=int) or 0
        ctx.set("count", current + amount)
        return current + amount

    @restate.shared
    def get(ctx: restate.ObjectSharedContext) -> int:
        return ctx.get("count", type=int) or 0


class UserSignup(restate.Workflow):
    @restate.main
    def run(ctx: restate.WorkflowContext, email: str) -> dict[str, str]:
        approval = ctx.promise("approval", type=str)
        return {"email": email, "approval": approval}

    @restate.handler
    def approve(ctx: restate.WorkflowSharedContext, reason: str) -> None:
        ctx.resolve_promise("approval", reason)

    @restate.handler
    def status(ctx: restate.WorkflowSharedContext) -> str:
        return ctx.get("status", type=str) or "unknown"
