"""Decorators keep handler signatures; contexts are annotated per handler kind."""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

import restate_sync as restate


class Typed(restate.VirtualObject, inactivity_timeout=timedelta(minutes=5)):
    @restate.handler(input=int, output=str, description="docs")
    def exclusive(ctx: restate.ObjectContext, value: int) -> str:
        return str(value)

    @restate.shared(name="readOnly")
    def read_only(ctx: restate.ObjectSharedContext) -> bytes:
        return b""


class Flow(restate.Workflow):
    @restate.main(workflow_completion_retention=3600)
    def run(ctx: restate.WorkflowContext, n: int) -> list[int]:
        return [n]


def signatures(
    obj: restate.ObjectContext, shared: restate.ObjectSharedContext, wf: restate.WorkflowContext
) -> None:
    assert_type(Typed.exclusive(obj, 1), str)
    assert_type(Typed.read_only(shared), bytes)
    assert_type(Flow.run(wf, 3), list[int])


class Wrong(restate.VirtualObject):
    # unknown decorator options are rejected
    @restate.handler(colour="red")  # type: ignore[call-overload, untyped-decorator]  # pyright: ignore[reportCallIssue]
    def h(ctx: restate.ObjectContext) -> None:
        return None

    # workflow_completion_retention belongs to @main
    @restate.shared(workflow_completion_retention=5)  # type: ignore[call-overload, untyped-decorator]  # pyright: ignore[reportCallIssue]
    def s(ctx: restate.ObjectSharedContext) -> None:
        return None
