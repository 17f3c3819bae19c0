"""Invocation middleware through a real restate-server: a tenancy header flows from the ingress
through two services (calls and sends), hooks nest in the documented order, run hooks see only
executed runs, and outbound hooks do not make replays non-deterministic.

Served through restate-sync's pytest plugin (``restate_services`` below); each test runs twice,
once streaming and once with every blocking await suspending, so the hooks also face replays.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import pytest

import restate_sync as restate

from ..waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.restate(always_suspend="both")]

TENANT: ContextVar[str] = ContextVar("tenant", default="")
_lock = threading.Lock()
EVENTS: list[tuple[str, str, str]] = []  # (invocation id, who, what)
RUNS: list[tuple[str, str]] = []  # (invocation id, run name) for every executed run


def record(invocation_id: str, who: str, what: str) -> None:
    with _lock:
        EVENTS.append((invocation_id, who, what))


class Tenancy(restate.Middleware):
    """Takes the tenant from the invocation's headers and passes it on to every call and send."""

    def inbound(self, invocation: restate.middleware.Invocation, proceed: Callable[[], Any]) -> Any:
        token = TENANT.set(invocation.headers.get("x-tenant", ""))
        try:
            return proceed()
        finally:
            TENANT.reset(token)

    def outbound(self, call: restate.middleware.OutboundCall) -> None:
        tenant = TENANT.get()
        if tenant:
            call.headers.setdefault("x-tenant", tenant)


class Recorder(restate.Middleware):
    """Records its hooks' order; adds a header whose value differs on every attempt."""

    def __init__(self, name: str) -> None:
        self.name = name

    def inbound(self, invocation: restate.middleware.Invocation, proceed: Callable[[], Any]) -> Any:
        record(invocation.invocation_id, self.name, "before")
        assert invocation.request_headers["x-restate-invocation-id"] == invocation.invocation_id
        assert invocation.context is restate.current_context()
        try:
            return proceed()
        finally:
            record(invocation.invocation_id, self.name, "after")

    def around_run(self, step: restate.middleware.RunStep, proceed: Callable[[], Any]) -> Any:
        record(step.invocation.invocation_id, self.name, f"run {step.name}")
        return proceed()

    def outbound(self, call: restate.middleware.OutboundCall) -> None:
        record(call.invocation.invocation_id, self.name, f"{call.kind} {call.service}/{call.handler}")
        # a nonce per attempt: replaying the call with a fresh nonce would be non-deterministic
        call.headers[f"x-nonce-{self.name}"] = uuid.uuid4().hex
        call.headers["x-last-outbound"] = self.name


class Front(restate.Service):
    @restate.handler
    def order(ctx: restate.Context, item: str) -> dict[str, Any]:
        def reserve() -> str:
            with _lock:
                RUNS.append((ctx.invocation_id, "reserve"))
            return f"reserved {item}"

        reservation = ctx.run_sync("reserve", reserve)
        back = ctx.service_call(Back, "check", item).result()
        ctx.object_send(Ledger, "note", TENANT.get() or "none", item)
        ctx.sleep(0.01).result()
        return {"front": TENANT.get(), "reservation": reservation, "back": back}


class Back(restate.Service):
    @restate.handler
    def check(ctx: restate.Context, item: str) -> dict[str, Any]:
        headers = ctx.request.headers
        return {
            "tenant": TENANT.get(),
            "header": headers.get("x-tenant"),
            "last_outbound": headers.get("x-last-outbound"),
            "item": item,
        }


class Ledger(restate.VirtualObject):
    @restate.handler
    def note(ctx: restate.ObjectContext, item: str) -> None:
        ctx.set("entry", {"item": item, "tenant": TENANT.get()})

    @restate.shared
    def entry(ctx: restate.ObjectSharedContext) -> Any:
        return ctx.get("entry")


restate_services = restate.endpoint(Front, Back, Ledger).use(Tenancy(), Recorder("outer"), Recorder("inner"))


def test_tenancy_flows_from_ingress_through_two_services(restate_env: Any) -> None:
    tenant = f"acme-{uuid.uuid4().hex[:6]}"
    result = restate_env.ingress.call("Front", "order", "book", headers={"x-tenant": tenant})
    assert result["front"] == tenant
    assert result["reservation"] == "reserved book"
    # the callee saw the header as its invocation header, and its own inbound hook picked it up
    assert result["back"]["tenant"] == tenant
    assert result["back"]["header"] == tenant
    # the first registered middleware ("outer") had the last word on the outgoing headers
    assert result["back"]["last_outbound"] == "outer"
    # the send carried it too: the ledger entry is keyed and stamped by the tenant
    entry = wait_until(lambda: restate_env.ingress.call("Ledger", "entry", key=tenant), what="ledger entry")
    assert entry == {"item": "book", "tenant": tenant}


def test_without_the_header_nothing_is_invented(restate_env: Any) -> None:
    result = restate_env.ingress.call("Front", "order", "pen")
    assert result["front"] == ""
    assert result["back"]["header"] is None
    assert (
        wait_until(lambda: restate_env.ingress.call("Ledger", "entry", key="none"), what="entry")["tenant"]
        == ""
    )


def test_hooks_nest_in_the_documented_order(restate_env: Any) -> None:
    sent = restate_env.ingress.send("Front", "order", "lamp")
    restate_env.ingress.attach(sent["invocationId"])
    invocation_id = sent["invocationId"]
    with _lock:
        mine = [(who, what) for inv, who, what in EVENTS if inv == invocation_id]
        runs = [name for inv, name in RUNS if inv == invocation_id]
    # every attempt: outer wraps inner, inbound and outbound alike
    attempts = mine.count(("outer", "before"))
    assert attempts >= 1 and mine.count(("inner", "before")) == attempts
    assert mine[0] == ("outer", "before") and mine[1] == ("inner", "before")
    assert mine[-2:] == [("inner", "after"), ("outer", "after")]
    # the run executed once, whatever the number of attempts, and so did its hooks
    assert runs == ["reserve"]
    run_hooks = [(who, what) for who, what in mine if what.startswith("run ")]
    assert run_hooks == [("outer", "run reserve"), ("inner", "run reserve")]
    # each call and send went through the outbound hooks once (replays reuse the journaled headers),
    # the innermost first
    outbound = [(who, what) for who, what in mine if what.startswith(("call ", "send "))]
    assert outbound == [
        ("inner", "call Back/check"),
        ("outer", "call Back/check"),
        ("inner", "send Ledger/note"),
        ("outer", "send Ledger/note"),
    ]


def test_replays_reuse_journaled_headers(restate_env: Any) -> None:
    # Under always-suspend, Front/order replays its call and send on later attempts; the
    # per-attempt nonce headers would make those replays fail with 570 if the hooks ran again.
    sent = restate_env.ingress.send("Front", "order", "cup", headers={"x-tenant": "t"})
    assert restate_env.ingress.attach(sent["invocationId"], timeout=20)["back"]["tenant"] == "t"
    with _lock:
        attempts = sum(
            1
            for inv, who, what in EVENTS
            if inv == sent["invocationId"] and (who, what) == ("outer", "before")
        )
    if restate_env.always_suspend:
        assert attempts >= 3  # run, call, sleep: each await suspended and the handler replayed
