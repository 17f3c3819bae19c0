"""Calls and sends: a handler reference types the argument and the result; names give Any."""

from __future__ import annotations

from typing import Any, assert_type

import restate_sync as restate

from .services import Counter, Greeter, User, UserSignup


def calls(ctx: restate.Context) -> None:
    # a handler reference: the result type is the handler's declared output
    assert_type(ctx.service_call(Greeter.greet, "World"), restate.DurableCallFuture[str])
    assert_type(ctx.service_call(Greeter.greet, "World").result(), str)
    assert_type(ctx.service_call(Greeter.welcome, User("ada", 36)).result(), User)
    assert_type(ctx.service_call(Greeter.ping), restate.DurableCallFuture[int])
    assert_type(ctx.object_call(Counter.add, "key", 5), restate.DurableCallFuture[int])
    assert_type(ctx.object_call(Counter.get, "key"), restate.DurableCallFuture[int])
    assert_type(
        ctx.workflow_call(UserSignup.run, "user42", "a@b.c"), restate.DurableCallFuture[dict[str, str]]
    )
    assert_type(ctx.workflow_call(UserSignup.status, "user42"), restate.DurableCallFuture[str])
    assert_type(ctx.service_call(Greeter, Greeter.greet, "World"), restate.DurableCallFuture[str])
    assert_type(ctx.object_call(Counter, Counter.add, "key", 5), restate.DurableCallFuture[int])
    assert_type(ctx.service_call(Greeter.greet, "World").invocation_id, str)

    # names (and a class with a handler name) keep working, untyped
    assert_type(ctx.service_call("Greeter", "greet", "World"), restate.DurableCallFuture[Any])
    assert_type(ctx.service_call(Greeter, "greet", "World"), restate.DurableCallFuture[Any])
    assert_type(ctx.object_call("Counter", "add", "key", 5), restate.DurableCallFuture[Any])
    assert_type(ctx.workflow_call("UserSignup", "run", "user42", "a@b.c"), restate.DurableCallFuture[Any])
    assert_type(
        ctx.service_call("Greeter", "greet", "x", idempotency_key="k"), restate.DurableCallFuture[Any]
    )
    assert_type(ctx.object_call(Counter.add, "key", 5, headers={"x": "y"}), restate.DurableCallFuture[int])

    # sends
    assert_type(ctx.service_send(Greeter.greet, "World", delay=10), restate.SendHandle)
    assert_type(ctx.object_send(Counter.add, "key", 5), restate.SendHandle)
    assert_type(ctx.workflow_send(UserSignup.run, "user42", "a@b.c"), restate.SendHandle)
    assert_type(ctx.service_send("Greeter", "greet", "World"), restate.SendHandle)
    assert_type(ctx.object_send("Counter", "add", "key", 5).invocation_id, str)


def mistakes(ctx: restate.Context) -> None:
    # the argument must have the handler's input type
    ctx.service_call(Greeter.greet, 42)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    ctx.object_call(Counter.add, "key", "five")  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    ctx.service_send(Greeter.greet, 42)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    # a handler of another service kind
    ctx.service_call(Counter.add, 5)  # type: ignore[arg-type]  # pyright: ignore[reportCallIssue, reportArgumentType]
    ctx.object_call(Greeter.greet, "World")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # an object call needs the key
    ctx.object_call(Counter.add, 5)  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    # the result has the declared type
    length: int = ctx.service_call(Greeter.greet, "World").result()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
    # unknown options
    ctx.service_call(Greeter.greet, "World", delay=5)  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]
    del length
