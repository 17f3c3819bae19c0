"""Journals recorded from real invocations replay offline against today's code; a deliberately
non-deterministic edit of the handler fails that replay with the state machine's 570 message,
naming the command the edited handler produced and the one the journal has.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import restate_sync as restate
import restate_sync.testing
from restate_sync.protocol import messages as m
from restate_sync.testing import JournalRecorder, NonDeterminismError, replay

pytestmark = pytest.mark.e2e


class Checkout(restate.VirtualObject):
    @restate.handler
    def pay(ctx: restate.ObjectContext, amount: int) -> dict[str, Any]:
        total = (ctx.get("total") or 0) + amount
        receipt = ctx.run_sync("charge", lambda: f"r-{amount}")
        fee = ctx.service_call(Fees, "fee", amount).result()
        ctx.sleep(0.01).result()
        ctx.set("total", total)
        return {"total": total, "receipt": receipt, "fee": fee}


class CheckoutReordered(restate.VirtualObject, name="Checkout"):
    """The same handler after an edit that asks for the fee before charging."""

    @restate.handler
    def pay(ctx: restate.ObjectContext, amount: int) -> dict[str, Any]:
        total = (ctx.get("total") or 0) + amount
        fee = ctx.service_call(Fees, "fee", amount).result()
        receipt = ctx.run_sync("charge", lambda: f"r-{amount}")
        ctx.sleep(0.01).result()
        ctx.set("total", total)
        return {"total": total, "receipt": receipt, "fee": fee}


class Fees(restate.Service):
    @restate.handler
    def fee(ctx: restate.Context, amount: int) -> int:
        return amount // 10


@pytest.fixture(scope="module", params=[False, True], ids=["streaming", "always-suspend"])
def recorded(request: pytest.FixtureRequest) -> Iterator[tuple[JournalRecorder, Any, bool]]:
    recorder = JournalRecorder(Checkout, Fees)
    with restate_sync.testing.start(recorder.endpoint, always_suspend=request.param) as env:
        yield recorder, env, request.param


def pay(recorder: JournalRecorder, env: Any, key: str, amount: int) -> str:
    sent = env.ingress.send("Checkout", "pay", amount, key=key)
    assert env.ingress.attach(sent["invocationId"], timeout=30)["fee"] == amount // 10
    return str(sent["invocationId"])


def test_a_recorded_journal_replays_offline(recorded: Any, tmp_path: Path) -> None:
    recorder, env, always_suspend = recorded
    pay(recorder, env, "alice", 50)
    invocation_id = pay(recorder, env, "alice", 70)  # reads the state the first one left
    journal = recorder.journal(invocation_id)
    assert journal.steps == ["get total", "run charge", "call Fees/fee", "sleep", "set total", "output"]
    assert journal.completed and journal.version >= 5
    notifications = [t for t, _ in journal.entries if m.is_notification(t)]
    assert m.RUN_COMPLETION in notifications and m.CALL_COMPLETION in notifications
    if always_suspend:
        assert recorder.attempts(invocation_id) >= 4  # run, call, sleep each suspended
    path = tmp_path / "pay.journal"
    journal.save(path)
    result = replay(path, Checkout)
    assert result.outcome == "completed" and result.new_commands == []
    fee_journal = recorder.journal(
        next(j.invocation_id for j in recorder.journals() if j.service == "Fees" and j.start.debug_id)
    )
    assert replay(fee_journal, Fees).outcome == "completed"


def test_a_non_deterministic_edit_fails_the_offline_replay(recorded: Any) -> None:
    recorder, env, _ = recorded
    journal = recorder.journal(pay(recorder, env, "bob", 30))
    with pytest.raises(NonDeterminismError) as info:
        replay(journal, CheckoutReordered)
    message = str(info.value)
    assert message.startswith("[570]")
    # the edited handler's command and the journal's, both named
    assert "CallCommandMessage" in message and "RunCommandMessage" in message
    assert 'service_name: "Fees"' in message and 'name: "charge"' in message
