"""restate_sync side of the benchmark: the four scenarios as plain ``def`` handlers.

Served by ``benchmarks/run.py`` with ``restate-sync serve benchmarks/services/sync_services.py:endpoint``.
Service names end in ``Sync`` so that one restate-server can route all three SDKs at once; the
``--baseline`` run of ``benchmarks/run.py`` serves the same services from another checkout with
``BENCH_SERVICE_SUFFIX=Base`` (so ``NoopBase``, ``GreeterBase``, ...).
"""

from __future__ import annotations

import os

import restate_sync as restate

S = os.environ.get("BENCH_SERVICE_SUFFIX", "Sync")


class NoopSync(restate.Service, name=f"Noop{S}"):
    @restate.handler
    def echo(ctx: restate.Context, value: str) -> str:
        return value


class GreeterSync(restate.Service, name=f"Greeter{S}"):
    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        return ctx.run_sync("greet", lambda: f"Hello, {name}!")


class CounterSync(restate.VirtualObject, name=f"Counter{S}"):
    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        current = ctx.get("count") or 0
        ctx.set("count", current + amount)
        return current + amount


class SenderSync(restate.Service, name=f"Sender{S}"):
    @restate.handler
    def send(ctx: restate.Context, value: str) -> str:
        ctx.service_send(NoopSync, "echo", value)
        return "sent"


endpoint = restate.endpoint(NoopSync, GreeterSync, CounterSync, SenderSync)
