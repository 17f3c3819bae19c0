"""Calls, one-way sends, fan-out/fan-in, wait_any, combinators and awakeables.

restate-sync serve examples/service_communication.py:endpoint --bind 127.0.0.1:9080
curl localhost:8080/Coordinator/fan_out -H 'content-type: application/json' -d '["a", "b", "c"]'
curl localhost:8080/Coordinator/first -H 'content-type: application/json' -d '"x"'
curl localhost:8080/Coordinator/approval/send -H 'content-type: application/json' -d '"order-1"'
# resolve with the id the handler logged:
curl localhost:8080/restate/awakeables/$ID/resolve -H 'content-type: application/json' -d 'true'
"""

from __future__ import annotations

import logging

import restate_sync as restate

log = logging.getLogger("examples.service_communication")


class Worker(restate.Service):
    @restate.handler
    def process(ctx: restate.Context, task: str) -> str:
        return ctx.run_sync("work", lambda: task.upper())

    @restate.handler
    def slow(ctx: restate.Context, task: str) -> str:
        ctx.sleep(2).result()
        return f"slow {task}"

    @restate.handler
    def fast(ctx: restate.Context, task: str) -> str:
        return f"fast {task}"


class Audit(restate.VirtualObject):
    @restate.handler
    def record(ctx: restate.ObjectContext, entry: str) -> None:
        ctx.set("entries", [*(ctx.get("entries", type=list[str]) or []), entry])


class Coordinator(restate.Service):
    @restate.handler
    def fan_out(ctx: restate.Context, tasks: list[str]) -> list[str]:
        # a handler reference types the call: each future is a DurableCallFuture[str]
        futures = [ctx.service_call(Worker.process, t) for t in tasks]  # all calls in flight
        ctx.object_send(Audit.record, "fan_out", f"{len(tasks)} tasks")  # fire and forget
        return [future.result() for future in futures]

    @restate.handler
    def first(ctx: restate.Context, task: str) -> str:
        slow = ctx.service_call(Worker.slow, task)
        fast = ctx.service_call("Worker", "fast", task)  # by name: the result is Any
        winner = restate.race(slow, fast).result()
        return str(winner)

    @restate.handler
    def approval(ctx: restate.Context, order: str) -> str:
        awakeable_id, approved = ctx.awakeable(type=bool)
        log.info("approve %s: curl .../restate/awakeables/%s/resolve -d true", order, awakeable_id)
        try:
            decision = approved.or_timeout(3600).result()
        except restate.TimeoutError:
            return f"{order}: no decision within an hour"
        return f"{order}: {'approved' if decision else 'declined'}"

    @restate.handler
    def later(ctx: restate.Context, task: str) -> str:
        handle = ctx.service_send(Worker.process, task, delay=60)
        return handle.invocation_id


endpoint = restate.endpoint(Worker, Audit, Coordinator)
