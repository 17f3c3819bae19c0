"""The offline replay kit: scripted simulations and offline replays, on the real VM and driver."""

from __future__ import annotations

import functools
import importlib
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import restate_sync as restate
from restate_sync.protocol import messages as m
from restate_sync.testing import (
    Journal,
    NonDeterminismError,
    ReplayError,
    Simulation,
    SimulationError,
    replay,
    simulate,
)
from restate_sync.testing.replay import SUPPORTED_PROTOCOL_VERSIONS

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


class Steps(restate.Service):
    @restate.handler
    def three_runs(ctx: restate.Context) -> list[str]:
        return [ctx.run_sync(f"step-{i}", lambda i=i: f"s{i}") for i in range(3)]

    @restate.handler
    def run_races_timer(ctx: restate.Context) -> str:
        timer = ctx.sleep(60)
        quick = ctx.run("quick", lambda: "ran")
        winner = "run" if restate.race(quick, timer).result() == "ran" else "timer"
        ctx.sleep(1, name=f"after-{winner}").result()  # suspends: the next attempt replays the race
        return winner

    @restate.handler
    def first_of(ctx: restate.Context) -> Any:
        _, approval = ctx.awakeable()
        return restate.any(approval, ctx.signal("go")).result()

    @restate.handler
    def both_of(ctx: restate.Context) -> list[Any]:
        _, approval = ctx.awakeable()
        return restate.all(approval, ctx.signal("go")).result()


class Signup(restate.Workflow):
    @restate.main
    def run(ctx: restate.WorkflowContext, email: str) -> dict[str, Any]:
        before = ctx.peek_promise("approval")
        approval = ctx.promise("approval")
        return {"email": email, "before": before, "approval": approval}

    @restate.handler
    def approve(ctx: restate.WorkflowSharedContext, reason: str) -> None:
        ctx.resolve_promise("approval", reason)


Simulate = Callable[..., Simulation]


@pytest.fixture(autouse=True)
def _clear_charges() -> None:
    CHARGES.clear()


@pytest.fixture(params=SUPPORTED_PROTOCOL_VERSIONS, ids=[f"v{v}" for v in SUPPORTED_PROTOCOL_VERSIONS])
def version(request: pytest.FixtureRequest) -> int:
    """Every protocol version the kit simulates: V5 and V6 request/response, V7 with run acks."""
    return int(request.param)


@pytest.fixture
def sim(version: int) -> Simulate:
    """:func:`simulate` on this test's protocol version."""
    return functools.partial(simulate, version=version)


# ---------------------------------------------------------------- scripted journals


def test_scripted_run_state_and_call(sim: Simulate, version: int) -> None:
    result = sim(
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
    # V5/V6 (request/response): the run and the call each end an attempt, and the handler replays;
    # V7: the runtime acknowledges the run's proposal within the attempt, only the call suspends
    assert result.attempts == (2 if version >= 7 else 3)
    (call,) = [c for c in result.commands if isinstance(c, m.pb.CallCommandMessage)]
    assert call.service_name == "Shipping" and call.handler_name == "ship"


def test_an_unscripted_run_executes_once_across_replays(sim: Simulate) -> None:
    result = sim(Orders, "place", "pen", key="k", state={"stock": 1}, calls={"Shipping/ship": {"eta": 1}})
    assert result.output == {"charge": "ch_pen", "eta": 1}
    assert CHARGES == ["pen"]
    assert result.state == {"stock": 0}


def test_terminal_error_is_the_output(sim: Simulate) -> None:
    result = sim(Orders, "place", "book", key="k", state={"stock": 0})
    assert result.outcome == "completed"
    assert result.error is not None and result.error.status_code == 409
    with pytest.raises(restate.TerminalError, match="out of stock"):
        _ = result.output
    assert result.steps == ["get stock", "output failure 409"]


def test_unanswered_call_suspends(sim: Simulate) -> None:
    result = sim(Orders, "place", "book", key="k", state={"stock": 3}, runs={"charge": "c"})
    assert result.outcome == "suspended"
    assert result.waiting == ["call Shipping/ship"]
    with pytest.raises(SimulationError, match="waiting for call Shipping/ship"):
        _ = result.output


def test_a_failed_call_raises_in_the_handler(sim: Simulate) -> None:
    result = sim(
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


def test_a_flaky_run_is_retried_by_the_simulated_server(sim: Simulate) -> None:
    result = sim(
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


def test_a_handler_that_keeps_failing_ends_failed(sim: Simulate) -> None:
    result = sim(Orders, "place", "book", key="k", state={"stock": 3}, runs={"charge": RuntimeError("down")})
    assert result.outcome == "failed" and len(result.failures) == 6
    with pytest.raises(SimulationError, match="down"):
        _ = result.output


def test_state_keys_and_clear_all_with_lazy_state(sim: Simulate) -> None:
    result = sim(Orders, "reset", key="k", state={"a": 1, "b": 2}, lazy_state=True)
    assert result.output == ["a", "b"]
    assert result.steps == ["state keys", "clear all", "output"]
    assert result.state == {}


def test_awakeables_resolve_in_creation_order(sim: Simulate) -> None:
    assert sim(Waits, "approval", awakeables=["yes"]).output == "approved: yes"
    pending = sim(Waits, "approval")
    assert pending.outcome == "suspended" and pending.waiting == ["awakeable 1"]


def test_named_signals(sim: Simulate) -> None:
    assert sim(Waits, "signalled", signals={"go": 21}).output == 42
    assert sim(Waits, "signalled").waiting == ["signal go"]


def test_timers_fire_unless_told_not_to(sim: Simulate) -> None:
    assert sim(Waits, "with_timeout").output == "timed out"
    assert sim(Waits, "with_timeout", calls={"Slow/answer": 7}).output == "7"
    frozen = sim(Waits, "with_timeout", timers=False)
    assert frozen.outcome == "suspended" and set(frozen.waiting) == {"call Slow/answer", "sleep"}


def test_cancellation_while_waiting(sim: Simulate) -> None:
    result = sim(Waits, "approval", cancel=True)
    assert result.error is not None and result.error.status_code == 409


def test_workflow_promises(sim: Simulate) -> None:
    result = sim(Signup, "run", "a@example.com", key="u1", promises={"approval": "ok"})
    assert result.output == {"email": "a@example.com", "before": "ok", "approval": "ok"}
    waiting = sim(Signup, "run", "a@example.com", key="u1")
    assert waiting.waiting == ["promise approval"]
    resolved = sim(Signup, "approve", "fine", key="u1")
    assert resolved.steps == ["resolve promise approval", "output"]
    again = sim(Signup, "approve", "fine", key="u1", promises={"approval": "earlier"})
    assert again.error is not None and again.error.status_code == 409


def test_non_determinism_between_attempts_is_caught(sim: Simulate) -> None:
    with pytest.raises(NonDeterminismError) as info:
        sim(Waits, "careless")
    message = str(info.value)
    assert message.startswith("[570]")
    names = {part.split('"')[0] for part in message.split('name: "step-')[1:]}
    assert len(names) == 2  # both commands are named: the replayed one and the journaled one


def test_logs_before_suspensions_appear_once(caplog: pytest.LogCaptureFixture, sim: Simulate) -> None:
    caplog.set_level(logging.INFO, logger=__name__)
    result = sim(Waits, "chatty")
    assert result.output == "ok" and result.attempts == 4  # three sleeps, three replays
    lines = [r.getMessage() for r in caplog.records if r.name == __name__]
    assert lines == ["before sleep 0", "before sleep 1", "before sleep 2", "finished"]


# ---------------------------------------------------------------- offline replay


def test_a_simulated_journal_replays_and_survives_a_round_trip(tmp_path: Path, sim: Simulate) -> None:
    result = sim(
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


def test_a_non_deterministic_edit_fails_the_replay_naming_both_commands(sim: Simulate) -> None:
    result = sim(
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


def test_a_journal_that_ends_early_replays_up_to_its_end_without_side_effects(sim: Simulate) -> None:
    full = sim(Orders, "place", "book", key="k", state={"stock": 3}, calls={"Shipping/ship": {"eta": 1}})
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


def test_replay_refuses_another_service_and_bad_bytes(sim: Simulate) -> None:
    journal = sim(Waits, "approval", awakeables=["x"]).journal
    with pytest.raises(ReplayError, match="not of Orders"):
        replay(journal, Orders)
    with pytest.raises(ValueError, match="wrong header"):
        Journal.from_bytes(b"garbage")


# ---------------------------------------------------------------- what differs between versions


def test_runs_are_acked_within_the_attempt_on_v7_and_end_it_before(sim: Simulate, version: int) -> None:
    result = sim(Steps, "three_runs")
    assert result.output == ["s0", "s1", "s2"]
    assert result.steps == ["run step-0", "run step-1", "run step-2", "output"]
    # V7: each proposal is acknowledged at once and the attempt goes on; V5/V6: each run ends one
    assert result.attempts == (1 if version >= 7 else 4)
    runs = [t for t, _ in result.journal.entries if t == m.RUN_COMPLETION]
    assert len(runs) == 3 and result.journal.version == version
    assert result.replay().outcome == "completed"


def test_an_acked_run_is_journaled_where_the_attempt_saw_it(sim: Simulate, version: int) -> None:
    # the 60 s timer fires at once in the kit; what decides the race is where each answer sits
    result = sim(Steps, "run_races_timer")
    names = [m.message_name(t) for t, _ in result.journal.entries]
    sleep_done = names.index(m.message_name(m.SLEEP_COMPLETION))
    run_done = names.index(m.message_name(m.RUN_COMPLETION))
    if version >= 7:  # the ack came back during the attempt, before the suspension's answers
        assert result.output == "run" and run_done < sleep_done
    else:  # request/response: both answers come after the attempt, in command order
        assert result.output == "timer" and sleep_done < run_done
    assert result.replay().outcome == "completed"


@pytest.mark.parametrize(("script", "expected"), [({"signals": {"go": 1}}, 1), ({"awakeables": ["a"]}, "a")])
def test_any_resumes_on_whichever_leaf_has_a_result(
    sim: Simulate, script: dict[str, Any], expected: Any
) -> None:
    # on V7 the suspension is a future tree; the kit resumes once one leaf of it can be answered
    result = sim(Steps, "first_of", **script)
    assert result.output == expected and result.attempts == 2


def test_all_waits_for_the_rest_of_the_tree(sim: Simulate) -> None:
    assert sim(Steps, "first_of").waiting == ["awakeable 1", "signal go"]
    partial = sim(Steps, "both_of", signals={"go": 1})
    # the signal was delivered; what is left of the tree is the awakeable alone
    assert partial.outcome == "suspended" and partial.waiting == ["awakeable 1"]
    assert sim(Steps, "both_of", awakeables=["a"], signals={"go": 1}).output == ["a", 1]


def test_a_journal_names_its_version_and_versions_outside_the_range_are_refused(
    sim: Simulate, version: int
) -> None:
    journal = sim(Waits, "approval", awakeables=["x"]).journal
    again = Journal.from_bytes(journal.to_bytes())
    assert again.version == version and b'"version": %d' % version in journal.to_bytes()
    assert replay(again, Waits).outcome == "completed"
    for bad in (4, 8):
        with pytest.raises(ValueError, match="version must be one of 5, 6, 7"):
            simulate(Waits, "approval", version=bad)


def test_a_v7_suspension_is_the_awaited_tree_and_v6_one_flat_lists(version: int) -> None:
    kit = importlib.import_module("restate_sync.testing.replay")  # the module, not the function
    journal = simulate(Steps, "first_of", version=version).journal
    head = Journal(journal.service, journal.handler, version, journal.start, journal.entries[:1])
    definition, handler_def = kit._resolve(Steps, "first_of")
    result = kit._run_attempt(
        definition, handler_def, version, head.frames(), None, None, head.invocation_id, version >= 7
    )
    suspension = result.suspension
    assert suspension is not None and not result.ended
    if version >= 7:
        assert suspension.HasField("awaiting_on") and not suspension.waiting_signals
        # cancellation (signal 1) races the handler's any(awakeable 17, signal "go")
        tree = suspension.awaiting_on
        assert tree.combinator_type == m.pb.COMBINATOR_TYPE_FIRST_COMPLETED
        assert list(tree.waiting_signals) == [1]
        (any_of,) = tree.nested_futures
        assert any_of.combinator_type == m.pb.COMBINATOR_TYPE_FIRST_SUCCEEDED_OR_ALL_FAILED
        assert list(any_of.waiting_signals) == [17] and list(any_of.waiting_named_signals) == ["go"]
    else:
        assert not suspension.HasField("awaiting_on")
        # the built-in cancel signal (1) beside the awakeable (17)
        assert list(suspension.waiting_signals) == [1, 17] and list(suspension.waiting_named_signals) == [
            "go"
        ]
    # the kit reads the leaves of either shape alike: signals negated, names as they are
    assert kit._suspension_leaves(suspension) == [-1, -17, "go"]
