"""Service configuration: documentation, timeouts, retention, retry policy, lazy state, visibility.

Service-level options are class keywords; handler-level options are decorator keywords and
override the service's for that handler. Durations are seconds (int/float) or ``timedelta``; ``0``
is a value ("none"), only an omitted option means "restate-server's default". Restate receives
them through discovery (manifest v3; the retry policy needs v4, restate-server >= 1.5).

    restate-sync serve examples/service_configuration.py:endpoint --bind 127.0.0.1:9080
    restate deployments register http://localhost:9080
    restate services describe OrderProcessor      # shows every option below
    curl localhost:8080/OrderProcessor/order-1/process -H 'content-type: application/json' \\
        -d '{"item": "book", "amount": 12.5}'

| Option                          | Service | Handler   |
|---------------------------------|---------|-----------|
| description (or the docstring)  | yes     | yes       |
| metadata                        | yes     | yes       |
| inactivity_timeout              | yes     | yes       |
| abort_timeout                   | yes     | yes       |
| journal_retention               | yes     | yes       |
| idempotency_retention           | yes     | yes (not on @main) |
| ingress_private                 | yes     | yes       |
| enable_lazy_state               | yes     | yes       |
| invocation_retry_policy         | yes     | yes       |
| workflow_completion_retention   | —       | @main only |
| name                            | yes     | yes       |
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import restate_sync as restate


class PaymentGateway(
    restate.Service,
    name="Payments",  # registered as "Payments", not "PaymentGateway"
    ingress_private=True,  # only other handlers may call it, not the HTTP ingress
    metadata={"team": "payments"},
):
    """Charges cards; internal."""

    @restate.handler(name="charge", abort_timeout=timedelta(seconds=30))
    def charge_card(ctx: restate.Context, amount: float) -> str:
        return ctx.run_sync("charge", lambda: f"charged {amount:.2f}")


class OrderProcessor(
    restate.VirtualObject,
    description="Processes customer orders",
    metadata={"team": "commerce", "tier": "critical"},
    inactivity_timeout=300,  # seconds before Restate considers a handler inactive (and suspends it)
    abort_timeout=60,  # seconds after that before Restate aborts it
    journal_retention=timedelta(days=1),
    idempotency_retention=3600,
    enable_lazy_state=True,  # fetch state on demand instead of receiving it all up front
    invocation_retry_policy=restate.InvocationRetryPolicy(
        initial_interval=0.1,  # first retry after 100 ms
        max_interval=30,
        max_attempts=10,  # all attempts, including the first
        exponentiation_factor=2.0,
        on_max_attempts="kill",  # or "pause"
    ),
):
    @restate.handler
    def process(ctx: restate.ObjectContext, order: dict[str, Any]) -> str:
        """Charge and record an order."""
        receipt = ctx.service_call(PaymentGateway.charge_card, float(order["amount"])).result()
        ctx.set("status", f"processed {order['item']}: {receipt}")
        return receipt

    @restate.handler(
        description="Cancel the order (handler options override the service's)",
        metadata={"audit": "true"},
        inactivity_timeout=30,
        journal_retention=0,  # keep no journal for cancellations
        idempotency_retention=timedelta(minutes=10),
        invocation_retry_policy={"max_attempts": 3, "on_max_attempts": "pause", "initial_interval": 1},
    )
    def cancel(ctx: restate.ObjectContext, reason: str) -> str:
        ctx.set("status", f"cancelled: {reason}")
        return "cancelled"

    @restate.shared(enable_lazy_state=False, ingress_private=False)
    def status(ctx: restate.ObjectSharedContext) -> str:
        return ctx.get("status") or "new"


class Onboarding(restate.Workflow, journal_retention=timedelta(days=7), ingress_private=False):
    """Signs a user up; the main handler runs once per key."""

    @restate.main(workflow_completion_retention=timedelta(days=30), abort_timeout=120)
    def run(ctx: restate.WorkflowContext, email: str) -> str:
        ctx.set("status", "waiting")
        approved_by = ctx.promise("approval")
        ctx.set("status", "active")
        return f"{email} approved by {approved_by}"

    @restate.handler(ingress_private=True, description="Only for other services")
    def approve(ctx: restate.WorkflowSharedContext, who: str) -> None:
        ctx.resolve_promise("approval", who)

    @restate.handler(idempotency_retention=timedelta(hours=1), inactivity_timeout=0)
    def status(ctx: restate.WorkflowSharedContext) -> str:
        return ctx.get("status") or "unknown"


endpoint = restate.endpoint(PaymentGateway, OrderProcessor, Onboarding)
