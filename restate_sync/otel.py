"""OpenTelemetry tracing for an endpoint, as invocation middleware (extra ``restate-sync[otel]``).

::

    from restate_sync.otel import TracingMiddleware

    endpoint = restate.endpoint(Orders, Payments).use(TracingMiddleware())

The SDK imports OpenTelemetry only here, so an endpoint without this middleware does not need it.
Spans, through the tracer provider given (default: the global one):

``{service}/{handler}`` (kind SERVER)
    one per attempt, around the handler; attributes ``restate.invocation.id``,
    ``restate.invocation.target``, ``restate.service``, ``restate.handler``, ``restate.key`` (objects
    and workflows) and ``restate.attempt.outcome``: ``completed``, ``suspended``, ``failed``
    (terminal error, span status ERROR), ``retrying`` (any other exception, status ERROR) or
    ``aborted`` (the attempt ended under the handler: a protocol failure such as non-determinism,
    status ERROR, or a disconnect). It is the
    current span while the handler runs, so spans user code starts nest inside it.
``run {name}`` (INTERNAL)
    one per executed ``run`` block (replayed runs do not execute, so they have none), current
    inside the block; status ERROR when the block raised.
``call {service}/{handler}`` (CLIENT) / ``send {service}/{handler}`` (PRODUCER)
    one per call or send when it is first recorded; its context goes to the callee in the call's
    headers (``traceparent``/``tracestate`` and baggage, with the global propagator), so the
    callee's spans join the caller's trace. On replay the journaled headers are sent again.

Each attempt's span is parented on, in this order: the trace context restate-server sends with
the attempt's HTTP request (``traceparent``; restate-server 1.7 sends it only when its own tracing
is on, e.g. ``RESTATE_TRACING_ENDPOINT``), then the one in the invocation's headers (what an
ingress client or a calling handler passed), and otherwise a remote parent derived from the
invocation id, so that all attempts of one invocation share one trace. restate-server starts a
new trace for the invocation a *send* creates; the attempt span of such an invocation then links
to the caller's send span.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from ._version import __version__
from .errors import InvocationFailedError, SuspendedError, TerminalError
from .middleware import Invocation, Middleware, OutboundCall, RunStep

__all__ = ["TracingMiddleware"]


def _valid(context: otel_context.Context) -> bool:
    return bool(trace.get_current_span(context).get_span_context().is_valid)


def _invocation_parent(invocation_id: str) -> otel_context.Context:
    """A sampled remote parent whose trace and span ids are derived from the invocation id."""
    digest = hashlib.sha256(invocation_id.encode("utf-8")).digest()
    span_context = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


class TracingMiddleware(Middleware):
    """Spans for attempts, run blocks and calls (see the module docs).

    ``tracer_provider``: where spans go (default: OpenTelemetry's global provider).
    ``server_context``: parent attempts on the trace context restate-server sends (default); with
    ``False`` only the invocation's own headers (and the invocation id) decide the trace.
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None, *, server_context: bool = True):
        self._tracer = trace.get_tracer("restate_sync", __version__, tracer_provider=tracer_provider)
        self._server_context = server_context

    def _parent(self, invocation: Invocation) -> tuple[otel_context.Context, list[trace.Link]]:
        """The attempt span's parent context, and a link to the caller's context when the server's
        context wins and points elsewhere (restate-server starts a new trace for a send)."""
        caller: otel_context.Context | None = None
        if invocation.headers:
            caller = propagate.extract(invocation.headers)
            if not _valid(caller):
                caller = None
        if self._server_context and "traceparent" in invocation.request_headers:
            context = propagate.extract(invocation.request_headers)
            if _valid(context):
                links: list[trace.Link] = []
                if caller is not None:
                    linked = trace.get_current_span(caller).get_span_context()
                    if linked.trace_id != trace.get_current_span(context).get_span_context().trace_id:
                        links.append(trace.Link(linked))
                return context, links
        if caller is not None:
            return caller, []
        return _invocation_parent(invocation.invocation_id), []

    def inbound(self, invocation: Invocation, proceed: Callable[[], Any]) -> Any:
        attributes: dict[str, str] = {
            "restate.invocation.id": invocation.invocation_id,
            "restate.invocation.target": f"{invocation.service}/{invocation.handler}",
            "restate.service": invocation.service,
            "restate.handler": invocation.handler,
        }
        if invocation.key:
            attributes["restate.key"] = invocation.key
        parent, links = self._parent(invocation)
        span = self._tracer.start_span(
            f"{invocation.service}/{invocation.handler}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            links=links,
        )
        invocation.state[self] = span
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        outcome = "aborted"
        try:
            result = proceed()
            outcome = "completed"
            return result
        except SuspendedError:
            outcome = "suspended"
            raise
        except InvocationFailedError as exc:  # the state machine failed the attempt (e.g. 570)
            _failed(span, exc)
            raise
        except TerminalError as exc:
            outcome = "failed"
            _failed(span, exc)
            raise
        except Exception as exc:
            outcome = "retrying"
            _failed(span, exc)
            raise
        finally:
            span.set_attribute("restate.attempt.outcome", outcome)
            otel_context.detach(token)
            span.end()

    def _child_context(self, invocation: Invocation) -> otel_context.Context | None:
        span = invocation.state.get(self)
        return trace.set_span_in_context(span) if span is not None else None

    def around_run(self, step: RunStep, proceed: Callable[[], Any]) -> Any:
        span = self._tracer.start_span(
            f"run {step.name}",
            context=self._child_context(step.invocation),
            kind=SpanKind.INTERNAL,
            attributes={
                "restate.invocation.id": step.invocation.invocation_id,
                "restate.run.name": step.name,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return proceed()
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def outbound(self, call: OutboundCall) -> None:
        target = f"{call.service}/{call.handler}"
        attributes: Mapping[str, str] = {
            "restate.invocation.id": call.invocation.invocation_id,
            "restate.call.target": target,
            "restate.call.kind": call.kind,
        }
        span = self._tracer.start_span(
            f"{call.kind} {target}",
            context=self._child_context(call.invocation),
            kind=SpanKind.CLIENT if call.kind == "call" else SpanKind.PRODUCER,
            attributes=attributes,
        )
        try:
            propagate.inject(call.headers, context=trace.set_span_in_context(span))
        finally:
            span.end()


def _failed(span: trace.Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
