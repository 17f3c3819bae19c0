"""Services exercising every context operation, for the end-to-end API tests."""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from typing import Any

import gevent

import restate_sync as restate

from .services import Counter, Flaky, Greeter

# In-process observations of side effects (the endpoint runs in this process).
RUNS: dict[str, int] = defaultdict(int)
REACHED: dict[str, int] = defaultdict(int)
_lock = threading.Lock()


def count(key: str) -> int:
    with _lock:
        RUNS[key] += 1
        return RUNS[key]


class Holder(restate.VirtualObject):
    """Where handlers publish awakeable ids so tests can find them."""

    @restate.handler
    def hold(ctx: restate.ObjectContext, awakeable_id: str) -> None:
        ctx.set("id", awakeable_id)

    @restate.shared
    def get(ctx: restate.ObjectSharedContext) -> str | None:
        return ctx.get("id")


class StateOps(restate.VirtualObject):
    @restate.handler
    def exercise(ctx: restate.ObjectContext) -> dict[str, Any]:
        ctx.set("a", 1)
        ctx.set("b", {"nested": [1, 2]})
        a = ctx.get("a")
        b_future = ctx.get_async("b")
        keys_future = ctx.state_keys_async()
        keys = sorted(ctx.state_keys())
        ctx.clear("a")
        after_clear = ctx.get("a")
        keys_after_clear = sorted(keys_future.result())
        ctx.clear_all()
        return {
            "a": a,
            "b": b_future.result(),
            "keys": keys,
            "async_keys": keys_after_clear,
            "after_clear": after_clear,
            "after_clear_all": ctx.state_keys(),
            "raw": ctx.get("missing", serde=restate.BytesSerde()),
        }

    @restate.handler
    def put(ctx: restate.ObjectContext, entry: dict[str, Any]) -> None:
        ctx.set(entry["key"], entry["value"])

    @restate.shared
    def read(ctx: restate.ObjectSharedContext, name: str) -> Any:
        return ctx.get(name)

    @restate.shared
    def keys(ctx: restate.ObjectSharedContext) -> list[str]:
        return sorted(ctx.state_keys())

    @restate.shared
    def try_write(ctx: restate.ObjectSharedContext) -> str:
        try:
            ctx.set("x", 1)  # type: ignore[attr-defined]
        except AttributeError as exc:
            return str(exc)
        return "wrote"


class LazyStateOps(StateOps, enable_lazy_state=True):
    """The same handlers with lazy state: the runtime sends no eager state, gets go lazy."""


class Timers(restate.Service):
    @restate.handler
    def sleep(ctx: restate.Context, seconds: float) -> str:
        ctx.sleep(seconds).result()
        return "slept"

    @restate.handler
    def sleep_then_run(ctx: restate.Context, key: str) -> str:
        ctx.run_sync("before", count, f"{key}:before")
        with _lock:
            REACHED[key] += 1
        ctx.sleep(1.0).result()
        ctx.run_sync("after", count, f"{key}:after")
        return f"done {key}"


class Caller(restate.Service):
    @restate.handler
    def greet_twice(ctx: restate.Context, name: str) -> list[str]:
        typed = ctx.service_call(Greeter, Greeter.greet, name).result()
        by_name = ctx.service_call("Greeter", "greet", name.upper()).result()
        return [typed, by_name]

    @restate.handler
    def add(ctx: restate.Context, key: str) -> int:
        return ctx.object_call(Counter, "add", key, 1).result()

    @restate.handler
    def add_idempotent(ctx: restate.Context, key: str) -> list[int]:
        first = ctx.object_call(Counter, "add", key, 7, idempotency_key=f"idem-{key}").result()
        second = ctx.object_call(Counter, "add", key, 7, idempotency_key=f"idem-{key}").result()
        return [first, second]

    @restate.handler
    def send(ctx: restate.Context, request: dict[str, Any]) -> str:
        handle = ctx.object_send(Counter, "add", request["key"], 1, delay=request.get("delay"))
        return handle.invocation_id

    @restate.handler
    def terminal(ctx: restate.Context) -> dict[str, Any]:
        try:
            ctx.service_call(Flaky, "terminal").result()
        except restate.TerminalError as exc:
            return {"code": exc.status_code, "message": exc.message}
        return {}

    @restate.handler
    def headers(ctx: restate.Context) -> dict[str, str]:
        return ctx.object_call(Introspect, "headers", "k", headers={"x-forwarded": "yes"}).result()

    @restate.handler
    def raw(ctx: restate.Context, data: str) -> str:
        out = ctx.service_call(
            "Echo",
            "echo_bytes",
            data.encode(),
            input_serde=restate.BytesSerde(),
            output_serde=restate.BytesSerde(),
        ).result()
        return out.decode()

    @restate.handler
    def cancel_child(ctx: restate.Context, key: str) -> str:
        child = ctx.service_call(Awaiter, "wait", key)
        ctx.sleep(0.2).result()
        child.cancel()
        try:
            child.result()
        except restate.TerminalError as exc:
            return f"{exc.status_code}:{exc.message}"
        return "not cancelled"

    @restate.handler
    def cancel_by_id(ctx: restate.Context, invocation_id: str) -> None:
        ctx.cancel_invocation(invocation_id)

    @restate.handler
    def attach(ctx: restate.Context, invocation_id: str) -> Any:
        return ctx.attach_invocation(invocation_id).result()


class Awaiter(restate.Service):
    @restate.handler
    def wait(ctx: restate.Context, key: str) -> Any:
        awakeable_id, future = ctx.awakeable()
        ctx.object_call(Holder, "hold", key, awakeable_id).result()
        return future.result()

    @restate.handler
    def resolve(ctx: restate.Context, request: dict[str, Any]) -> None:
        if request.get("reject"):
            ctx.reject_awakeable(request["id"], request["reject"], code=418)
        else:
            ctx.resolve_awakeable(request["id"], request["value"])

    @restate.handler
    def wait_signal(ctx: restate.Context, name: str) -> Any:
        try:
            return ctx.signal(name).result()
        except restate.TerminalError as exc:
            return f"rejected: {exc.message}"

    @restate.handler
    def signal(ctx: restate.Context, request: dict[str, Any]) -> None:
        if "reason" in request:
            ctx.reject_signal(request["invocationId"], request["name"], request["reason"])
        else:
            ctx.resolve_signal(request["invocationId"], request["name"], request["value"])


class Combos(restate.Service):
    @restate.handler
    def race_sleep_vs_awakeable(ctx: restate.Context) -> str:
        _, never = ctx.awakeable()
        sleep = ctx.sleep(0.05)
        winner = restate.race(never, sleep).result()
        return "sleep" if winner is None and sleep.done() else "awakeable"

    @restate.handler
    def all_and_any(ctx: restate.Context) -> dict[str, Any]:
        a = ctx.run("a", lambda: "A")
        b = ctx.run("b", lambda: "B")
        both = restate.all(a, b).result()

        def fail() -> str:
            raise restate.TerminalError("first failed")

        first_ok = restate.any(ctx.run("fail", fail), ctx.run("ok", lambda: "OK")).result()
        settled = restate.all_settled(ctx.run("s-ok", lambda: 1), ctx.run("s-fail", fail)).result()
        summary = [
            f"ok:{f.result()}" if f.exception() is None else f"err:{f.exception().message}" for f in settled
        ]
        try:
            restate.all(ctx.run("x", lambda: 1), ctx.run("y", fail)).result()
            all_error = None
        except restate.TerminalError as exc:
            all_error = exc.message
        return {"all": both, "any": first_ok, "all_settled": summary, "all_error": all_error}

    @restate.handler
    def nested(ctx: restate.Context) -> Any:
        _, never = ctx.awakeable()
        inner_race = restate.race(never, ctx.sleep(0.02))
        inner_any = restate.any(ctx.run("n1", lambda: "n1"), never)
        return restate.all(inner_race, inner_any, ctx.run("n2", lambda: "n2")).result()

    @restate.handler
    def timeout(ctx: restate.Context) -> dict[str, Any]:
        _, never = ctx.awakeable()
        try:
            never.or_timeout(0.05).result()
            timed_out = None
        except restate.TimeoutError as exc:
            timed_out = {"code": exc.status_code, "message": exc.message}
        fast = ctx.run("fast", lambda: "fast").or_timeout(30).result()
        return {"timed_out": timed_out, "fast": fast}

    @restate.handler
    def wait_any(ctx: restate.Context) -> list[int]:
        short, long = ctx.sleep(0.02), ctx.sleep(60)
        done, pending = ctx.wait_any(long, short)
        return [len(done), len(pending), int(done[0] is short)]

    @restate.handler
    def fan_out(ctx: restate.Context, names: list[str]) -> list[str]:
        futures = [ctx.service_call(Greeter, "greet", n) for n in names]
        return [f.result() for f in futures]


class Runs(restate.Service):
    @restate.handler
    def retry_exhausted(ctx: restate.Context, key: str) -> dict[str, Any]:
        def always_fails() -> None:
            count(key)
            raise ConnectionError("still down")

        policy = restate.RunRetryPolicy(initial_interval=0.01, max_attempts=3, exponentiation_factor=1.0)
        try:
            ctx.run_sync("flaky", always_fails, retry_policy=policy)
        except restate.TerminalError as exc:
            return {"attempts": RUNS[key], "message": exc.message, "code": exc.status_code}
        return {}

    @restate.handler
    def background(ctx: restate.Context) -> bool:
        main_thread = threading.get_ident()
        other = ctx.run_sync("in-thread", threading.get_ident, background=True)
        return other != main_thread

    @restate.handler
    def ctx_inside_run(ctx: restate.Context) -> str:
        def misuse() -> str:
            try:
                ctx.sleep(1)
            except RuntimeError as exc:
                return str(exc)
            return "no error"

        return ctx.run_sync("misuse", misuse)

    @restate.handler
    def accessor_inside_run(ctx: restate.Context) -> str:
        def misuse() -> str:
            try:
                restate.current_context()
            except RuntimeError as exc:
                return str(exc)
            return "no error"

        return ctx.run_sync("misuse", misuse)

    @restate.handler
    def args(ctx: restate.Context) -> int:
        return ctx.run_sync("add", lambda a, b: a + b, 2, 3)

    @restate.handler
    def cooperative_io(ctx: restate.Context) -> str:
        # a run block that yields to the hub (gevent I/O) while others proceed
        return ctx.run_sync("io", lambda: gevent.sleep(0.01) or "yielded")


FINISHED: dict[str, bool] = {}


class Watcher(restate.Service):
    """A helper greenlet waits on the attempt-finished event while the handler works."""

    @restate.handler
    def watch(ctx: restate.Context, key: str) -> bool:
        event = ctx.request.attempt_finished_event

        def watcher() -> None:
            FINISHED[key] = event.wait(timeout=30)

        gevent.spawn(watcher)
        ctx.run_sync("work", lambda: None)
        return event.is_set()


class Introspect(restate.VirtualObject):
    @restate.handler
    def info(ctx: restate.ObjectContext, body: str) -> dict[str, Any]:
        r1 = ctx.random().random()
        u1 = str(ctx.uuid())
        recorded = ctx.run_sync("record", lambda: [r1, u1])
        ctx.sleep(0.01).result()  # in always-suspend mode the rest runs after a replay
        now = ctx.time()
        return {
            "id": ctx.request.id,
            "key": ctx.key,
            "deterministic": recorded == [r1, u1],
            "header": ctx.request.headers.get("x-test-header"),
            "body": ctx.request.body.decode(),
            "finished_before_end": ctx.request.attempt_finished_event.is_set(),
            "time_is_recent": abs(now - ctx.run_sync("now", __import__("time").time)) < 3600,
        }

    @restate.shared
    def headers(ctx: restate.ObjectSharedContext) -> dict[str, str]:
        return {k: v for k, v in ctx.request.headers.items() if k.startswith("x-")}

    @restate.handler
    def accessors(ctx: restate.ObjectContext) -> dict[str, str]:
        def helper() -> str:
            return restate.current_object_context().key

        out = {"key": helper(), "same": str(restate.current_context() is ctx)}
        try:
            restate.current_workflow_context()
        except RuntimeError as exc:
            out["wrong"] = str(exc)
        return out


class UserSignup(restate.Workflow):
    """The seed's workflow: run blocks on a promise that approve resolves."""

    @restate.main
    def run(ctx: restate.WorkflowContext, email: str) -> dict[str, Any]:
        user_id = ctx.run_sync("create-account", lambda: f"user-{email.split('@')[0]}")
        ctx.set("status", "waiting_for_approval")
        approval = ctx.promise("approval")
        ctx.set("status", "active")
        return {"user_id": user_id, "approval": approval}

    @restate.handler
    def approve(ctx: restate.WorkflowSharedContext, reason: str) -> None:
        ctx.resolve_promise("approval", reason)

    @restate.handler
    def status(ctx: restate.WorkflowSharedContext) -> str:
        return ctx.get("status") or "unknown"

    @restate.handler
    def peek(ctx: restate.WorkflowSharedContext) -> Any:
        return ctx.peek_promise("approval")

    @restate.handler
    def reject(ctx: restate.WorkflowSharedContext, reason: str) -> None:
        ctx.reject_promise("approval", reason, code=403)


class NonDeterministic(restate.VirtualObject):
    """Takes a different path on every attempt: the replay must fail with 570."""

    @restate.handler
    def diverge(ctx: restate.ObjectContext) -> None:
        attempt = count(f"nd:{ctx.key}")
        if attempt == 1:
            ctx.sleep(0.01).result()
        else:
            ctx.run_sync("other", lambda: None)
        if attempt == 1:
            raise ConnectionError("retry me so the next attempt replays")


class Env(restate.Service):
    @restate.handler
    def pid(ctx: restate.Context) -> int:
        return ctx.run_sync("pid", os.getpid)


ALL = (
    Holder,
    StateOps,
    LazyStateOps,
    Timers,
    Caller,
    Awaiter,
    Combos,
    Runs,
    Introspect,
    Watcher,
    UserSignup,
    NonDeterministic,
    Env,
)
