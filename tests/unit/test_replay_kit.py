"""The offline replay kit: scripted simulations and offline replays, on the real VM and driver."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

import restate_sync as restate
from restate_sync.protocol import messages as m
from restate_sync.testing import (
    Journal,
    NonDeterminismError,
    ReplayError,
    SimulationError,
    replay,
    simulate,
)

CHARGES: list[str] = []


def charge_card(item: str) -> str:
    CHARGES.append(item)
    return f"ch_{item}"


class Orders(restate.VirtualObject):
    @restate.handler
    def place(ctx: restate.ObjectContext, item: str) -> dict[str, Any]:
        stock = ctx.get("stock") or 0
        if stock <= 0:
            raise restate.TerminalError("out of stock", status_code=409)
        charge = ctx.run_sync("charge", charge_card, item)
        ctx.set("stock", stock - 1)
        shipped = ctx.service_call("Shipping", "ship", {"item": item, "charge": charge}).result()
        ctx.service_send("Mailer", "confirm", item)
        return {"charge": charge, "eta": shipped["eta"]}

    @restate.handler
    def reset(ctx: restate.ObjectContext) -> list[str]:
        keys = ctx.state_keys()
        ctx.clear_all()
        return keys


class OrdersV2(restate.VirtualObject, name="Orders"):
    """The same handler after a careless edit: the run has another name."""

    @restate.handler
    def place(ctx: restate.ObjectContext, item: str) -> dict[str, Any]:
        stock = ctx.get("stock") or 0
        charge = ctx.run_sync("charge-card", charge_card, item)
        ctx.set("stock", stock - 1)
        shipped = ctx.service_call("Shipping", "ship", {"item": item, "charge": charge}).result()
        ctx.service_send("Mailer", "confirm", item)
        return {"charge": charge, "eta": shipped["eta"]}


class Waits(restate.Service):
    @restate.handler
    def approval(ctx: restate.Context) -> str:
        _, future = ctx.awakeable()
        return f"approved: {future.result()}"

    @restate.handler
    def signalled(ctx: restate.Context) -> int:
        return int(ctx.signal("go").result()) * 2

    @restate.handler
    def with_timeout(ctx: restate.Context) -> str:
        try:
            return str(ctx.service_call("Slow", "answer").or_timeout(5).result())
        except restate.TimeoutError:
            return "timed out"

    @restate.handler
    def careless(ctx: restate.Context) -> str:
        ctx.run_sync(f"step-{uuid.uuid4().hex[:8]}", lambda: 1)  # a name that differs per attempt
        ctx.sleep(1).result()
        return "done"

    @restate.handler
    def chatty(ctx: restate.Context) -> str:
        for step in range(3):
            ctx.logger.info("before sleep %d", step)
            ctx.sleep(1).result()
        ctx.logger.info("finished")
        return "ok"


class Signup(restate.Workflow):
    @restate.main
    def run(ctx: restate.WorkflowContext, email: str) -> dict[str, Any]:
        before = ctx.peek_promise("approval")
        approval = ctx.promise("approval")
        return {"email": email, "before": before, "approval": approval}

    @restate.handler
    def approve(ctx: restate.WorkflowSharedContext, reason: str) -> None:
        ctx.resolve_promise("approval", reason)


@pytest.fixture(autouse=True)
def _clear_charges() -> None:
    CHARGES.clear()


# ---------------------------------------------------------------- scripted journals


def test_scripted_run_state_and_call() -> None:
    result = simulate(
        Orders,
        "place",
        "book",
        key="shop-1",
        state={"stock": 3},
        runs={"charge": "ch_scripted"},
        calls={"Shipping/ship": lambda order: {"eta": 2, "for": order["item"]}},
    )
    assert result.outcome == "completed"
    assert result.output == {"charge": "ch_scripted", "eta": 2}
    assert result.steps == [
        "get stock",
        "run charge",
        "set stock",
        "call Shipping/ship",
        "send Mailer/confirm",
        "output",
    ]
    assert result.state == {"stock": 2}
    assert result.calls() == [
        ("Shipping/ship", {"item": "book", "charge": "ch_scripted"}),
        ("Mailer/confirm", "book"),
    ]
    assert CHARGES == []  # the scripted run did not execute the side effect
    assert result.attempts >= 3  # the run and the call each suspended and the handler replayed
    (call,) = [c for c in result.commands if isinstance(c, m.pb.CallCommandMessage)]
    assert call.service_name == "Shipping" and call.handler_name == "ship"


def test_an_unscripted_run_executes_once_across_replays() -> None:
    result = simulate(
        Orders, "place", "pen", key="k", state={"stock": 1}, calls={"Shipping/ship": {"eta": 1}}
    )
    assert result.output == {"charge": "ch_pen", "eta": 1}
    assert CHARGES == ["pen"]
    assert result.state == {"stock": 0}


def test_terminal_error_is_the_output() -> None:
    result = simulate(Orders, "place", "book", key="k", state={"stock": 0})
    assert result.outcome == "completed"
    assert result.error is not None and result.error.status_code == 409
    with pytest.raises(restate.TerminalError, match="out of stock"):
        _ = result.output
    assert result.steps == ["get stock", "output failure 409"]


def test_unanswered_call_suspends() -> None:
    result = simulate(Orders, "place", "book", key="k", state={"stock": 3}, runs={"charge": "c"})
    assert result.outcome == "suspended"
    assert result.waiting == ["call Shipping/ship"]
    with pytest.raises(SimulationError, match="waiting for call Shipping/ship"):
        _ = result.output


def test_a_failed_call_raises_in_the_handler() -> None:
    result = simulate(
        Orders,
        "place",
        "book",
        key="k",
        state={"stock": 3},
        runs={"charge": "c"},
        calls={"Shipping/ship": restate.TerminalError("no courier", status_code=503)},
    )
    assert result.error is not None and (result.error.status_code, result.error.message) == (
        503,
        "no courier",
    )


def test_a_flaky_run_is_retried_by_the_simulated_server() -> None:
    result = simulate(
        Orders,
        "place",
        "book",
        key="k",
        state={"stock": 3},
        runs={"charge": [RuntimeError("card reader busy"), "ch_2"]},
        calls={"Shipping/ship": {"eta": 3}},
    )
    assert result.output == {"charge": "ch_2", "eta": 3}
    assert len(result.failures) == 1 and "card reader busy" in result.failures[0]


def test_a_handler_that_keeps_failing_ends_failed() -> None:
    result = simulate(
        Orders, "place", "book", key="k", state={"stock": 3}, runs={"charge": RuntimeError("down")}
    )
    assert result.outcome == "failed" and len(result.failures) == 6
    with pytest.raises(SimulationError, match="down"):
        _ = result.output


def test_state_keys_and_clear_all_with_lazy_state() -> None:
    result = simulate(Orders, "reset", key="k", state={"a": 1, "b": 2}, lazy_state=True)
    assert result.output == ["a", "b"]
    assert result.steps == ["state keys", "clear all", "output"]
    assert result.state == {}


def test_awakeables_resolve_in_creation_order() -> None:
    assert simulate(Waits, "approval", awakeables=["yes"]).output == "approved: yes"
    pending = simulate(Waits, "approval")
    assert pending.outcome == "suspended" and pending.waiting == ["awakeable 1"]


def test_named_signals() -> None:
    assert simulate(Waits, "signalled", signals={"go": 21}).output == 42
    assert simulate(Waits, "signalled").waiting == ["signal go"]


def test_timers_fire_unless_told_not_to() -> None:
    assert simulate(Waits, "with_timeout").output == "timed out"
    assert simulate(Waits, "with_timeout", calls={"Slow/answer": 7}).output == "7"
    frozen = simulate(Waits, "with_timeout", timers=False)
    assert frozen.outcome == "suspended" and set(frozen.waiting) == {"call Slow/answer", "sleep"}


def test_cancellation_while_waiting() -> None:
    result = simulate(Waits, "approval", cancel=True)
    assert result.error is not None and result.error.status_code == 409


def test_workflow_promises() -> None:
    result = simulate(Signup, "run", "a@example.com", key="u1", promises={"approval": "ok"})
    assert result.output == {"email": "a@example.com", "before": "ok", "approval": "ok"}
    waiting = simulate(Signup, "run", "a@example.com", key="u1")
    assert waiting.waiting == ["promise approval"]
    resolved = simulate(Signup, "approve", "fine", key="u1")
    assert resolved.steps == ["resolve promise approval", "output"]
    again = simulate(Signup, "approve", "fine", key="u1", promises={"approval": "earlier"})
    assert again.error is not None and again.error.status_code == 409


def test_non_determinism_between_attempts_is_caught() -> None:
    with pytest.raises(NonDeterminismError) as info:
        simulate(Waits, "careless")
    message = str(info.value)
    assert message.startswith("[570]")
    names = {part.split('"')[0] for part in message.split('name: "step-')[1:]}
    assert len(names) == 2  # both commands are named: the replayed one and the journaled one


def test_logs_before_suspensions_appear_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=__name__)
    result = simulate(Waits, "chatty")
    assert result.output == "ok" and result.attempts == 4  # three sleeps, three replays
    lines = [r.getMessage() for r in caplog.records if r.name == __name__]
    assert lines == ["before sleep 0", "before sleep 1", "before sleep 2", "finished"]


# ---------------------------------------------------------------- offline replay


def test_a_simulated_journal_replays_and_survives_a_round_trip(tmp_path: Path) -> None:
    result = simulate(
        Orders,
        "place",
        "book",
        key="k",
        state={"stock": 3},
        runs={"charge": "c"},
        calls={"Shipping/ship": {"eta": 1}},
    )
    path = tmp_path / "place.journal"
    result.journal.save(path)
    loaded = Journal.load(path)
    assert loaded.steps == result.steps and loaded.invocation_id == result.journal.invocation_id
    assert loaded.to_bytes() == result.journal.to_bytes()
    replayed = replay(path, Orders)
    assert replayed.outcome == "completed" and replayed.new_commands == []
    assert result.replay().outcome == "completed"


def test_a_non_deterministic_edit_fails_the_replay_naming_both_commands() -> None:
    result = simulate(
        Orders,
        "place",
        "book",
        key="k",
        state={"stock": 3},
        runs={"charge": "c"},
        calls={"Shipping/ship": {"eta": 1}},
    )
    with pytest.raises(NonDeterminismError) as info:
        replay(result.journal, OrdersV2)
    message = str(info.value)
    assert message.startswith("[570]")
    assert 'name: "charge-card"' in message and 'name: "charge"' in message


def test_a_journal_that_ends_early_replays_up_to_its_end_without_side_effects() -> None:
    full = simulate(Orders, "place", "book", key="k", state={"stock": 3}, calls={"Shipping/ship": {"eta": 1}})
    assert CHARGES == ["book"]
    # keep Input and the eager get: the run is the first thing the journal lacks
    head = Journal(
        full.journal.service,
        full.journal.handler,
        full.journal.version,
        full.journal.start,
        full.journal.entries[:2],
    )
    assert head.steps == ["get stock"]
    result = replay(head, Orders)
    assert result.outcome == "beyond journal" and result.stopped_at_run == "charge"
    assert result.new_steps[:1] == ["run charge"]
    assert CHARGES == ["book"]  # not executed again


def test_replay_refuses_another_service_and_bad_bytes() -> None:
    journal = simulate(Waits, "approval", awakeables=["x"]).journal
    with pytest.raises(ReplayError, match="not of Orders"):
        replay(journal, Orders)
    with pytest.raises(ValueError, match="wrong header"):
        Journal.from_bytes(b"garbage")
