"""OpenTelemetry through a real restate-server: the spans of an invocation that runs a step, calls
another service and sends to it form one trace, parented as documented in ``restate_sync.otel``,
with restate-server's own tracing off (the trace context travels in call headers) and on (the
server sends ``traceparent`` with every attempt), streaming and with every await suspending.

Spans are collected with the OpenTelemetry SDK's in-memory exporter (the endpoint runs in this
process, on a thread of its own).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the OpenTelemetry SDK (pip install -e '.[dev]')")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import restate_sync as restate
import restate_sync.testing
from restate_sync.otel import TracingMiddleware
from restate_sync.restate_server.processes import free_port

from ..waiting import wait_until

pytestmark = pytest.mark.e2e

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


class Shop(restate.Service):
    @restate.handler
    def buy(ctx: restate.Context, item: str) -> str:
        price = ctx.run_sync("price", lambda: len(item))
        taken = ctx.service_call(Stock, "take", item).result()
        ctx.service_send(Stock, "audit", item)
        return f"{taken} for {price}"


class Stock(restate.Service):
    @restate.handler
    def take(ctx: restate.Context, item: str) -> str:
        return ctx.run_sync("decrement", lambda: f"took {item}")

    @restate.handler
    def audit(ctx: restate.Context, item: str) -> None:
        if item == "boom":
            raise restate.TerminalError("audit refused", status_code=422)


MODES = {
    "streaming": (False, False),
    "always-suspend": (True, False),
    "server-tracing": (False, True),
    "server-tracing-always-suspend": (True, True),
}


@pytest.fixture(scope="module", params=list(MODES))
def env(request: pytest.FixtureRequest) -> Iterator[Any]:
    always_suspend, server_tracing = MODES[request.param]
    server_env = {}
    if server_tracing:
        # nothing listens there: the server traces (and sends traceparent) but cannot export
        server_env["RESTATE_TRACING_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    ep = restate.endpoint(Shop, Stock).use(TracingMiddleware(PROVIDER))
    with restate_sync.testing.start(ep, always_suspend=always_suspend, server_env=server_env) as environment:
        environment.server_tracing = server_tracing  # type: ignore[attr-defined]
        environment.always_suspend = always_suspend  # type: ignore[attr-defined]
        yield environment


def spans_of(invocation_ids: set[str]) -> list[ReadableSpan]:
    return [
        s
        for s in EXPORTER.get_finished_spans()
        if s.attributes is not None and s.attributes.get("restate.invocation.id") in invocation_ids
    ]


def invocation_ids_of_trace(trace_id: int) -> set[str]:
    return {
        str(s.attributes["restate.invocation.id"])
        for s in EXPORTER.get_finished_spans()
        if s.context is not None and s.context.trace_id == trace_id and s.attributes
    }


def run_buy(env: Any, item: str, headers: dict[str, str] | None = None) -> tuple[str, list[ReadableSpan]]:
    sent = env.ingress.send("Shop", "buy", item, headers=headers)
    assert env.ingress.attach(sent["invocationId"], timeout=30) == f"took {item} for {len(item)}"
    shop_id = sent["invocationId"]

    def complete() -> list[ReadableSpan] | None:
        first = [s for s in spans_of({shop_id}) if s.kind is SpanKind.SERVER]
        if not first or first[0].context is None:
            return None
        ids = invocation_ids_of_trace(first[0].context.trace_id)
        spans = spans_of(ids)
        names = {s.name for s in spans}
        wanted = {
            "Shop/buy",
            "run price",
            "call Stock/take",
            "Stock/take",
            "run decrement",
            "send Stock/audit",
        }
        if not env.server_tracing:
            wanted.add("Stock/audit")
        elif not by_name(spans_of(audit_ids()), "Stock/audit"):
            return None
        return spans if wanted <= names else None

    def audit_ids() -> set[str]:
        rows = env.admin.query(
            f"SELECT id FROM sys_invocation WHERE target = 'Stock/audit' AND invoked_by_id = '{shop_id}'"
        )
        return {row["id"] for row in rows}

    return shop_id, wait_until(complete, what="the spans of Shop/buy and its callees")


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_spans_form_one_trace_across_a_call(env: Any) -> None:
    shop_id, spans = run_buy(env, f"book-{uuid.uuid4().hex[:6]}")
    trace_ids = {s.context.trace_id for s in spans if s.context is not None}
    assert len(trace_ids) == 1, [(s.name, s.context) for s in spans]
    span_ids = {s.context.span_id: s for s in spans if s.context is not None}

    shop_attempts = by_name(spans, "Shop/buy")
    (run,) = by_name(spans, "run price")
    (call,) = by_name(spans, "call Stock/take")
    (send,) = by_name(spans, "send Stock/audit")
    take_attempts = by_name(spans, "Stock/take")
    assert call.kind is SpanKind.CLIENT and send.kind is SpanKind.PRODUCER
    # the run and the call hang below the attempt that executed/recorded them
    assert run.parent is not None and run.parent.span_id in {a.context.span_id for a in shop_attempts}
    assert call.parent is not None and call.parent.span_id in {a.context.span_id for a in shop_attempts}
    for attempt in shop_attempts:
        assert attempt.attributes["restate.invocation.id"] == shop_id
        assert attempt.attributes["restate.invocation.target"] == "Shop/buy"
        assert attempt.parent is not None and attempt.parent.span_id not in span_ids  # remote parent
    # the callee's attempts: children of the call span, unless the server sent its own context
    for attempt in take_attempts:
        if env.server_tracing:
            assert attempt.parent is not None and attempt.parent.span_id not in span_ids
        else:
            assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    outcomes = [a.attributes["restate.attempt.outcome"] for a in shop_attempts]
    assert outcomes[-1] == "completed"
    if env.always_suspend:
        # run, call: each await suspended, so several attempts, all in the same trace
        assert len(shop_attempts) >= 3 and set(outcomes[:-1]) == {"suspended"}
    else:
        assert outcomes == ["completed"]
    audits = by_name(spans, "Stock/audit")
    if env.server_tracing:
        # restate-server puts the invocation a send creates into a trace of its own; its attempt
        # span links to the send span
        assert not audits
        audits = [s for s in EXPORTER.get_finished_spans() if s.name == "Stock/audit" and s.links]
        linked = [link.context.span_id for a in audits for link in a.links]
        assert send.context.span_id in linked
    else:
        assert audits and all(
            a.parent is not None and a.parent.span_id == send.context.span_id for a in audits
        )
    (decrement,) = by_name(spans, "run decrement")
    assert decrement.parent is not None and decrement.parent.span_id in {
        a.context.span_id for a in take_attempts
    }


def test_the_ingress_trace_context_is_continued(env: Any) -> None:
    trace_id = uuid.uuid4().int & ((1 << 128) - 1)
    parent_span = 0x1234567890ABCDEF
    traceparent = f"00-{trace_id:032x}-{parent_span:016x}-01"
    _, spans = run_buy(env, f"pen-{uuid.uuid4().hex[:6]}", headers={"traceparent": traceparent})
    assert {s.context.trace_id for s in spans if s.context is not None} == {trace_id}
    first = by_name(spans, "Shop/buy")[0]
    assert first.parent is not None
    if env.server_tracing:
        assert first.parent.span_id != parent_span  # the server's own span, inside the same trace
    else:
        assert first.parent.span_id == parent_span


def test_failures_are_recorded_on_the_spans(env: Any) -> None:
    sent = env.ingress.send("Stock", "audit", "boom")
    invocation_id = sent["invocationId"]

    def failed() -> ReadableSpan | None:
        return next((s for s in spans_of({invocation_id}) if s.name == "Stock/audit"), None)

    span = wait_until(failed, what="the failed attempt's span")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["restate.attempt.outcome"] == "failed"
    assert any(event.name == "exception" for event in span.events)
