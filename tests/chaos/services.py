"""The service the chaos test runs, served by its own SDK process (which the test kills).

    CHAOS_RECORD_FILE=<file> restate-sync serve tests/chaos/services.py:endpoint --bind HOST:PORT

``Ledger.work`` runs ``steps`` durable steps; before each step it reads the object's counter,
and after it writes the counter + 1. Every execution of a step's side effect appends one JSON
line to ``CHAOS_RECORD_FILE`` (``os.write`` on an ``O_APPEND`` descriptor: the line is in the
kernel before the step returns, so a SIGKILL of this process cannot lose it):

    {"id": ..., "step": i, "prev": <the value step i-1 returned, as this execution saw it>,
     "seen": <the counter before step i, as this execution saw it>, "value": <a fresh value>,
     "pid": ...}

``prev`` of step ``i`` is the journaled result of step ``i - 1`` (on a replay the SDK hands the
handler the journaled value, never a new one), so the lines prove from outside the process
which step results were journaled, whether one was ever replaced, and how often each side
effect ran.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import restate_sync as restate

RECORD_FILE_ENV = "CHAOS_RECORD_FILE"

_fd: int | None = None


def _record(line: dict[str, Any]) -> None:
    global _fd
    if _fd is None:
        _fd = os.open(os.environ[RECORD_FILE_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, (json.dumps(line, separators=(",", ":")) + "\n").encode())


def step_effect(invocation: str, step: int, prev: str, seen: int, delay: float) -> str:
    """The side effect of one step: takes a while, records what it saw, returns a fresh value."""
    time.sleep(delay)  # cooperative: the CLI monkey-patches
    value = f"{invocation}:{step}:{uuid.uuid4().hex[:12]}"
    _record({"id": invocation, "step": step, "prev": prev, "seen": seen, "value": value, "pid": os.getpid()})
    return value


def start_value(invocation: str) -> str:
    return f"start:{invocation}"


class Ledger(restate.VirtualObject):
    @restate.handler
    def work(ctx: restate.ObjectContext, spec: dict[str, Any]) -> dict[str, Any]:
        invocation, steps, delay = str(spec["id"]), int(spec["steps"]), float(spec["delay"])
        prev = start_value(invocation)
        seen = []
        for step in range(steps):
            count = ctx.get("count") or 0
            seen.append(count)
            prev = ctx.run_sync(f"step-{step}", step_effect, invocation, step, prev, count, delay)
            ctx.set("count", count + 1)
        return {"last": prev, "seen": seen}

    @restate.shared
    def count(ctx: restate.ObjectSharedContext) -> int:
        return ctx.get("count") or 0


endpoint = restate.endpoint(Ledger)
