"""Observability: logs that do not repeat on replay, invocation fields on every record, a tenancy
header carried through every call by middleware, and OpenTelemetry spans.

python examples/observability.py          # serves on 127.0.0.1:9080, logs and spans to stderr
curl localhost:9070/deployments -H 'content-type: application/json' -d '{"uri": "http://127.0.0.1:9080"}'
curl localhost:8080/Checkout/buy -H 'content-type: application/json' -H 'x-tenant: acme' -d '"book"'

(``restate-sync serve examples/observability.py:endpoint`` serves the same endpoint with the
CLI's plain logging; spans need ``pip install 'restate-sync[otel]' opentelemetry-sdk``.)
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import restate_sync as restate
import restate_sync.logs
from restate_sync.middleware import Invocation, OutboundCall
from restate_sync.otel import TracingMiddleware

TENANT: ContextVar[str] = ContextVar("tenant", default="")
logger = restate.getLogger(__name__)  # drops what a replaying handler logs


class Tenancy(restate.Middleware):
    """The tenant of every invocation comes from its `x-tenant` header and goes on to its calls."""

    def inbound(self, invocation: Invocation, proceed: Callable[[], Any]) -> Any:
        token = TENANT.set(invocation.headers.get("x-tenant", "unknown"))
        try:
            return proceed()
        finally:
            TENANT.reset(token)

    def outbound(self, call: OutboundCall) -> None:
        call.headers.setdefault("x-tenant", TENANT.get())


class Checkout(restate.Service):
    @restate.handler
    def buy(ctx: restate.Context, item: str) -> dict[str, str]:
        ctx.logger.info("tenant %s buys %s", TENANT.get(), item)  # once, however often it replays
        price = ctx.run_sync("price", lambda: f"{len(item)}.00")
        receipt = ctx.service_call(Payments.charge, price).result()
        logger.info("charged %s", receipt)
        return {"tenant": TENANT.get(), "item": item, "receipt": receipt}


class Payments(restate.Service):
    @restate.handler
    def charge(ctx: restate.Context, amount: str) -> str:
        ctx.logger.info("charging %s for tenant %s", amount, TENANT.get())
        return ctx.run_sync("charge", lambda: f"{TENANT.get()}-{amount}")


def build_endpoint(tracer_provider: Any = None) -> restate.Endpoint:
    """Tracing outermost (its spans cover the tenancy hook too), then tenancy."""
    return restate.endpoint(Checkout, Payments).use(TracingMiddleware(tracer_provider), Tenancy())


endpoint = build_endpoint()  # spans go to OpenTelemetry's global tracer provider


def configure_logging() -> None:
    """Plain `logging` configuration, with the invocation on every line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(restate_sync.logs.InvocationContextFilter())
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s [%(restate_service)s/%(restate_handler)s "
            "%(restate_invocation_id)s #%(restate_attempt)s] %(name)s: %(message)s"
        )
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])


def configure_tracing() -> None:
    """Print finished spans to stderr (needs opentelemetry-sdk)."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        logger.warning("opentelemetry-sdk is not installed: spans are not exported")
        return
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
    trace.set_tracer_provider(provider)


if __name__ == "__main__":
    from restate_sync.cli import main

    configure_logging()
    configure_tracing()
    sys.exit(main(["serve", f"{__file__}:endpoint", "--bind", "127.0.0.1:9080"]))
