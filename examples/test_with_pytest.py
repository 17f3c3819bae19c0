"""Testing services with pytest: against a real restate-server, and offline.

.venv/bin/pytest examples/test_with_pytest.py                            # streaming
.venv/bin/pytest examples/test_with_pytest.py --restate-always-suspend   # every await suspends

restate-sync's pytest plugin is loaded automatically: ``restate_services`` binds the services
under test; the ``restate_*`` fixtures give clients of a session-wide restate-server that serves
them. The offline kit (``simulate``, ``replay``) needs no server at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from counter import Counter  # the service under test: examples/counter.py
from durable_execution import Orders

import restate_sync as restate
from restate_sync.client import IngressClient
from restate_sync.testing import JournalRecorder, NonDeterminismError, replay, simulate

# Serve both to the test server, recording each invocation's journal on the way.
recorder = JournalRecorder(Counter, Orders)
restate_services = recorder.endpoint


def test_counter_adds(restate_ingress: IngressClient) -> None:
    assert restate_ingress.call("Counter", "add", 2, key="pytest") >= 2


@pytest.mark.restate(always_suspend="both")  # this test runs twice: streaming, then suspending
def test_orders_survive_suspensions(restate_ingress: IngressClient) -> None:
    result = restate_ingress.call("Orders", "place", {"item": "pen", "qty": 1})
    assert result["reservation"] == "reservation-pen-1"


def test_counter_offline() -> None:
    result = simulate(Counter, "add", 5, key="offline", state={"count": 2})
    assert result.output == 7
    assert result.steps == ["get count", "set count", "output"]
    assert result.state == {"count": 7}


def test_orders_offline_with_scripted_steps() -> None:
    # the reservation and the digest are scripted: no inventory call, no hashing
    result = simulate(
        Orders, "place", {"item": "book", "qty": 2}, runs={"reserve": "r-1", "digest": "d" * 64}
    )
    assert result.output["reservation"] == "r-1"
    assert result.steps == ["run reserve", "run digest", "sleep", "output"]


def test_recorded_journal_replays_offline(restate_ingress: IngressClient, tmp_path: Path) -> None:
    sent = restate_ingress.send("Counter", "add", 1, key="recorded")
    restate_ingress.attach(sent["invocationId"])
    journal = recorder.journal(sent["invocationId"])
    journal.save(tmp_path / "add.journal")  # commit journals like this one as test fixtures
    assert replay(tmp_path / "add.journal", Counter).outcome == "completed"
    with pytest.raises(NonDeterminismError, match="value"):
        replay(journal, RenamedStateCounter)


class RenamedStateCounter(restate.VirtualObject, name="Counter"):
    """A careless edit of examples/counter.py: the state key "count" became "value"."""

    @restate.handler
    def add(ctx: restate.ObjectContext, amount: int) -> int:
        current = ctx.get("value", type=int) or 0
        ctx.set("value", current + amount)
        return current + amount
