"""Scenario-local services of ``ServiceToServiceScopeConcurrency`` (contracts §4, v2.2 only).

The Kotlin runner hosts these in its own process, as a second deployment. They are **not** part
of the SDK's contract services, so ``serve.py`` binds them only when ``SERVICES`` names them
explicitly; a harness can also import this module and serve them itself, reading the in-process
concurrency numbers with :func:`max_concurrent` / :func:`running` and clearing them with
:func:`reset_concurrency`.
"""

from __future__ import annotations

import threading

import restate_sync as restate

from ._common import UNIT

_lock = threading.Lock()
_running = 0
_max_running = 0


def running() -> int:
    """``BlockingProxy.block`` attempts currently running in this process."""
    with _lock:
        return _running


def max_concurrent() -> int:
    """The highest number of concurrently running ``BlockingProxy.block`` attempts seen."""
    with _lock:
        return _max_running


def reset_concurrency() -> None:
    global _running, _max_running
    with _lock:
        _running = 0
        _max_running = 0


class BlockingProxy(restate.Service):
    @restate.handler
    def block(ctx: restate.Context, key: str) -> str:
        global _running, _max_running
        with _lock:
            _running += 1
            _max_running = max(_max_running, _running)
        try:
            return ctx.object_call("Blocker", "run", key).result()
        finally:
            # also runs when the attempt suspends or is aborted: the SDK unwinds the handler
            # greenlet with a BaseException
            with _lock:
                _running -= 1


class Blocker(restate.VirtualObject):
    @restate.handler
    def run(ctx: restate.ObjectContext) -> str:
        awakeable_id, awakeable = ctx.awakeable()
        ctx.set("awk", awakeable_id)
        value = awakeable.result()
        ctx.set("result", value)
        return value

    @restate.shared(name="getAwakeable")
    def get_awakeable(ctx: restate.ObjectSharedContext) -> str:
        return ctx.get("awk") or ""

    @restate.shared(name="getResult")
    def get_result(ctx: restate.ObjectSharedContext) -> str:
        return ctx.get("result") or ""

    @restate.shared(name="resolveAwakeable", output=UNIT)
    def resolve_awakeable(ctx: restate.ObjectSharedContext, value: str) -> None:
        awakeable_id = ctx.get("awk")
        if not awakeable_id:
            raise restate.TerminalError("Awakeable not registered yet")
        ctx.resolve_awakeable(awakeable_id, value)


SERVICES: dict[str, type] = {"BlockingProxy": BlockingProxy, "Blocker": Blocker}
