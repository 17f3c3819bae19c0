"""Services the end-to-end tests serve to a real restate-server."""

from __future__ import annotations

import threading
from collections import defaultdict

import restate_sync as restate

# Side effects observed by run blocks, keyed by the test's unique key. The endpoint runs in a
# thread of the test process, so the tests read these directly.
_lock = threading.Lock()
ATTEMPTS: dict[str, int] = defaultdict(int)
EFFECTS: dict[str, list[str]] = defaultdict(list)


class Greeter(restate.Service):
    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        return ctx.run_sync("build-greeting", lambda: f"Hello, {name}!")


class Counter(restate.VirtualObject):
    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        current = ctx.get("count") or 0
        ctx.set("count", current + amount)
        return current + amount

    @restate.shared
    def get(ctx: restate.ObjectSharedContext) -> int:
        return ctx.get("count") or 0


class Flaky(restate.Service):
    @restate.handler
    def once_then_ok(ctx: restate.Context, key: str) -> str:
        def effect() -> str:
            with _lock:
                ATTEMPTS[key] += 1
                if ATTEMPTS[key] == 1:
                    raise ConnectionError("transient failure")
                EFFECTS[key].append("charged")
            return "ok"

        result = ctx.run_sync("charge", effect)
        # a later step forces more journal after the run; the run must not execute again
        ctx.sleep(0.01).result()
        return result

    @restate.handler
    def terminal(ctx: restate.Context) -> None:
        raise restate.TerminalError("nope", status_code=400)

    @restate.handler
    def swallow(ctx: restate.Context, key: str) -> str:
        """Catching Exception around a blocking call must not break the invocation."""
        try:
            ctx.sleep(0.01).result()
        except Exception as exc:
            return f"caught {exc!r}"
        return "slept"


class Echo(restate.Service):
    @restate.handler
    def echo(ctx: restate.Context, value: object) -> object:
        return value

    @restate.handler(input=restate.BytesSerde(), output=restate.BytesSerde())
    def echo_bytes(ctx: restate.Context, value: bytes) -> bytes:
        return ctx.run_sync("copy", lambda: value, serde=restate.BytesSerde())


ALL = (Greeter, Counter, Flaky, Echo)
