"""Durable steps: run / run_sync, background runs, retry policies, terminal errors.

restate-sync serve examples/durable_execution.py:endpoint --bind 127.0.0.1:9080
curl localhost:8080/Orders/place -H 'content-type: application/json' -d '{"item": "book", "qty": 2}'
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import restate_sync as restate

_calls: Counter[str] = Counter()


def reserve_stock(item: str, qty: int) -> str:
    # any I/O here (requests, database drivers, ...) yields to other invocations under gevent
    _calls[item] += 1
    if _calls[item] == 1:
        raise ConnectionError("inventory service unavailable")  # a transient error: retried
    return f"reservation-{item}-{qty}"


def expensive_digest(data: str) -> str:
    # CPU-bound native code: run it in the background thread pool
    return hashlib.sha256(data.encode() * 10_000).hexdigest()


class Orders(restate.Service):
    """Places orders step by step; each completed step survives crashes and is never redone."""

    @restate.handler
    def place(ctx: restate.Context, order: dict[str, Any]) -> dict[str, Any]:
        if order.get("qty", 0) <= 0:
            raise restate.TerminalError("quantity must be positive", status_code=400)

        policy = restate.RunRetryPolicy(
            initial_interval=0.1, max_attempts=5, exponentiation_factor=2.0, max_interval=2
        )
        reservation = ctx.run_sync("reserve", reserve_stock, order["item"], order["qty"], retry_policy=policy)

        digest = ctx.run("digest", expensive_digest, reservation, background=True)
        order_id = str(ctx.uuid())  # deterministic across retries and replays
        ctx.sleep(0.5).result()  # a durable timer: survives restarts

        return {"order_id": order_id, "reservation": reservation, "digest": digest.result()[:16]}


endpoint = restate.endpoint(Orders)
