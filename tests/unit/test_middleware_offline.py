"""Middleware and the tracing middleware, run offline by the replay kit (the real VM and driver)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import restate_sync as restate
from restate_sync.middleware import Invocation, OutboundCall, RunStep
from restate_sync.protocol.messages import pb
from restate_sync.testing import NonDeterminismError, replay, simulate

EVENTS: list[str] = []


class Tenancy(restate.Middleware):
    def inbound(self, invocation: Invocation, proceed: Callable[[], Any]) -> Any:
        EVENTS.append(
            f"in {invocation.headers.get('x-tenant')} {invocation.request_headers['x-restate-invocation-id'] == invocation.invocation_id}"
        )
        return proceed()

    def around_run(self, step: RunStep, proceed: Callable[[], Any]) -> Any:
        EVENTS.append(f"run {step.name}")
        return proceed()

    def outbound(self, call: OutboundCall) -> None:
        EVENTS.append(f"out {call.kind} {call.service}/{call.handler}")
        call.headers["x-tenant"] = call.invocation.headers.get("x-tenant", "")
        call.headers["x-nonce"] = uuid.uuid4().hex  # differs per attempt: replays must reuse the journal's


class Shop(restate.Service):
    @restate.handler
    def buy(ctx: restate.Context, item: str) -> str:
        price = ctx.run_sync("price", lambda: len(item))
        ctx.service_send("Audit", "note", item)
        return str(ctx.service_call("Stock", "take", item).result()) + f" for {price}"


@pytest.fixture(autouse=True)
def _events() -> None:
    EVENTS.clear()


def test_hooks_run_offline_and_replays_reuse_journaled_headers() -> None:
    result = simulate(
        Shop, "buy", "pen", headers={"x-tenant": "acme"}, calls={"Stock/take": "took"}, middleware=[Tenancy()]
    )
    assert result.output == "took for 3"
    assert result.attempts >= 3
    # one inbound per attempt; the run and each outbound call exactly once across the replays
    assert EVENTS.count("in acme True") == result.attempts
    assert EVENTS.count("run price") == 1
    assert EVENTS.count("out send Audit/note") == EVENTS.count("out call Stock/take") == 1
    for command in result.commands:
        if isinstance(command, (pb.CallCommandMessage, pb.OneWayCallCommandMessage)):
            assert {h.key: h.value for h in command.headers}["x-tenant"] == "acme"
    # the journal replays with the same middleware; without it the headers no longer match
    assert result.replay().outcome == "completed"
    with pytest.raises(NonDeterminismError, match="x-tenant"):
        replay(result.journal, Shop)
    endpoint = restate.endpoint(Shop).use(Tenancy())
    assert replay(result.journal, endpoint).outcome == "completed"


def test_tracing_offline() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="needs the OpenTelemetry SDK")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    from restate_sync.otel import TracingMiddleware

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingMiddleware(provider)

    result = simulate(Shop, "buy", "cup", calls={"Stock/take": "took"}, middleware=[tracing])
    spans = exporter.get_finished_spans()
    attempts = [s for s in spans if s.name == "Shop/buy"]
    assert len(attempts) == result.attempts and len({s.context.trace_id for s in spans}) == 1
    assert [s.attributes["restate.attempt.outcome"] for s in attempts][-1] == "completed"
    assert {s.name for s in spans} >= {"run price", "send Audit/note", "call Stock/take"}
    (call,) = [c for c in result.commands if isinstance(c, pb.CallCommandMessage)]
    traceparent = {h.key: h.value for h in call.headers}["traceparent"]
    (call_span,) = [s for s in spans if s.name == "call Stock/take"]
    assert traceparent.split("-")[2] == f"{call_span.context.span_id:016x}"

    # a caller's trace context is continued
    exporter.clear()
    trace_id = uuid.uuid4().int
    simulate(
        Shop,
        "buy",
        "hat",
        headers={"traceparent": f"00-{trace_id:032x}-{7:016x}-01"},
        calls={"Stock/take": "took"},
        middleware=[tracing],
    )
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {trace_id}

    # a handler that breaks determinism: the attempt span records the failure
    exporter.clear()

    class Careless(restate.Service):
        @restate.handler
        def go(ctx: restate.Context) -> None:
            ctx.run_sync(uuid.uuid4().hex, lambda: 1)
            ctx.sleep(1).result()

    with pytest.raises(NonDeterminismError):
        simulate(Careless, "go", middleware=[tracing])
    aborted = [s for s in exporter.get_finished_spans() if s.name == "Careless/go"][-1]
    assert aborted.attributes["restate.attempt.outcome"] == "aborted"
    assert aborted.status.status_code is StatusCode.ERROR
