"""Values: Any without type=, T with it; shared contexts have no state mutation."""

from __future__ import annotations

from typing import Any, assert_type

import restate_sync as restate

from .services import Counter, User


def load_user() -> User:
    return User("ada", 36)


def state(ctx: restate.ObjectContext, shared: restate.ObjectSharedContext) -> None:
    assert_type(ctx.get("user"), Any)
    assert_type(ctx.get("user", type=User), User | None)
    assert_type(ctx.get("count", type=int), int | None)
    assert_type(ctx.get("names", type=list[str]), list[str] | None)
    assert_type(ctx.get("raw", restate.BytesSerde()), bytes | None)
    assert_type(ctx.get_async("user", type=User), restate.DurableFuture[User | None])
    assert_type(ctx.get_async("user").result(), Any)
    assert_type(shared.get("user", type=User), User | None)
    assert_type(ctx.state_keys(), list[str])
    assert_type(ctx.key, str)
    ctx.set("user", User("ada", 36))
    ctx.set("user", User("ada", 36), type=User)
    ctx.clear("user")
    ctx.clear_all()


def shared_is_read_only(ctx: restate.ObjectSharedContext, wf: restate.WorkflowSharedContext) -> None:
    ctx.set("x", 1)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    ctx.clear("x")  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    ctx.clear_all()  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    wf.set("x", 1)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    ctx.sett("x", 1)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]


def kinds(ctx: restate.Context, obj: restate.ObjectContext) -> None:
    ctx.get("x")  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    _ = ctx.key  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    obj.promise("approval")  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]


def runs(ctx: restate.Context) -> None:
    assert_type(ctx.run_sync("load", load_user), User)
    assert_type(ctx.run("load", load_user), restate.DurableFuture[User])
    assert_type(ctx.run_sync("lambda", lambda: 42), int)
    assert_type(ctx.run_sync("typed", lambda: User("ada", 36), type=User), User)
    assert_type(ctx.run_sync("args", lambda a, b: f"{a}{b}", 1, 2), str)
    assert_type(ctx.sleep(1.5), restate.DurableFuture[None])
    assert_type(ctx.sleep(1.5).or_timeout(10), restate.DurableFuture[None])
    assert_type(ctx.time(), float)
    policy = restate.RunRetryPolicy(initial_interval=0.1, max_attempts=3, exponentiation_factor=2.0)
    assert_type(ctx.run_sync("retry", load_user, retry_policy=policy), User)
    count: str = ctx.run_sync("load", load_user)  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    del count


def awakeables_and_promises(ctx: restate.Context, wf: restate.WorkflowContext) -> None:
    awakeable_id, future = ctx.awakeable()
    assert_type(awakeable_id, str)
    assert_type(future, restate.DurableFuture[Any])
    assert_type(ctx.awakeable(type=User), tuple[str, restate.DurableFuture[User]])
    assert_type(ctx.awakeable(type=User)[1].result(), User)
    assert_type(ctx.signal("go", type=int), restate.DurableFuture[int])
    assert_type(ctx.attach_invocation("inv_1", type=User).result(), User)
    assert_type(ctx.attach_invocation("inv_1").result(), Any)
    assert_type(wf.promise("approval"), Any)
    assert_type(wf.promise("approval", type=str), str)
    assert_type(wf.promise_async("approval", type=User), restate.DurableFuture[User])
    assert_type(wf.peek_promise("approval", type=str), str | None)
    wf.resolve_promise("approval", User("ada", 36))
    assert_type(wf.get("status", type=str), str | None)
    wf.set("status", "active")


def futures(ctx: restate.Context) -> None:
    a = ctx.run("a", lambda: 1)
    b = ctx.run("b", lambda: 2)
    assert_type(restate.race(a, b), restate.DurableFuture[int])
    assert_type(restate.any(a, b).result(), int)
    assert_type(restate.all(a, b), restate.DurableFuture[list[Any]])
    assert_type(ctx.wait_any(a, b), tuple[list[restate.DurableFuture[Any]], list[restate.DurableFuture[Any]]])
    assert_type(a.done(), bool)
    assert_type(a.exception(), restate.TerminalError | None)


def accessors() -> None:
    assert_type(restate.current_context(), restate.Context)
    assert_type(restate.current_object_context(), restate.ObjectContext)
    assert_type(restate.current_shared_context(), restate.ObjectSharedContext)
    assert_type(restate.current_workflow_context(), restate.WorkflowContext)
    assert_type(restate.current_shared_workflow_context(), restate.WorkflowSharedContext)
    restate.current_shared_context().set("x", 1)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]


def errors() -> None:
    error = restate.RetryableError("busy", retry_after=5)
    assert_type(error.retry_after_ms, int | None)
    assert isinstance(restate.MisuseError("x"), restate.TerminalError)
    restate.TerminalError("bad", status_code="400")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]


def handler_references_are_the_functions(ctx: restate.ObjectContext) -> None:
    # decorators keep the signature: a handler can be called like the function it is
    assert_type(Counter.add(ctx, 1), int)
    Counter.add(ctx, "one")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
