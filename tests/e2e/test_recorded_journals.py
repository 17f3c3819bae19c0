"""Journals recorded from real invocations replay offline against today's code; a deliberately
non-deterministic edit of the handler fails that replay with the state machine's 570 message,
naming the command the edited handler produced and the one the journal has.

Recorded three ways: restate-server 1.7 as it comes (V6, streaming), the same forcing a
suspension after every await, and with protocol V7 enabled, where run results are acknowledged
(``ProposeRunCompletionAck``) instead of sent back, so the recorder turns each ack into the run
completion the journal holds.
"""

from __future__ import annotations

import json
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


V7_ENV = {"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true"}
MODES = {"streaming": (False, 6), "always-suspend": (True, 6), "v7": (False, 7)}


@pytest.fixture(scope="module", params=list(MODES))
def recorded(request: pytest.FixtureRequest) -> Iterator[tuple[JournalRecorder, Any, bool, int]]:
    always_suspend, version = MODES[request.param]
    recorder = JournalRecorder(Checkout, Fees)
    with restate_sync.testing.start(
        recorder.endpoint, always_suspend=always_suspend, server_env=V7_ENV if version >= 7 else None
    ) as env:
        yield recorder, env, always_suspend, version


def pay(recorder: JournalRecorder, env: Any, key: str, amount: int) -> str:
    sent = env.ingress.send("Checkout", "pay", amount, key=key)
    assert env.ingress.attach(sent["invocationId"], timeout=30)["fee"] == amount // 10
    return str(sent["invocationId"])


def test_a_recorded_journal_replays_offline(recorded: Any, tmp_path: Path) -> None:
    recorder, env, always_suspend, version = recorded
    pay(recorder, env, "alice", 50)
    invocation_id = pay(recorder, env, "alice", 70)  # reads the state the first one left
    journal = recorder.journal(invocation_id)
    assert journal.steps == ["get total", "run charge", "call Fees/fee", "sleep", "set total", "output"]
    assert journal.completed and journal.version == version  # what the server negotiated
    (output,) = [msg for t, msg in journal.entries if t == m.OUTPUT]
    assert json.loads(output.value.content) == {"total": 120, "receipt": "r-70", "fee": 7}
    notifications = [t for t, _ in journal.entries if m.is_notification(t)]
    assert m.RUN_COMPLETION in notifications and m.CALL_COMPLETION in notifications
    if always_suspend:
        assert recorder.attempts(invocation_id) >= 4  # run, call, sleep each suspended
    if version >= 7:
        # one streaming attempt: the server acknowledged the run proposal and never sent its
        # completion, so the run completion in the journal is the recorded ack turned into one
        assert recorder.attempts(invocation_id) == 1
    path = tmp_path / "pay.journal"
    journal.save(path)
    result = replay(path, Checkout)
    assert result.outcome == "completed" and result.new_commands == []
    fee_journal = recorder.journal(
        next(j.invocation_id for j in recorder.journals() if j.service == "Fees" and j.start.debug_id)
    )
    assert replay(fee_journal, Fees).outcome == "completed"


def test_a_non_deterministic_edit_fails_the_offline_replay(recorded: Any) -> None:
    recorder, env, _, version = recorded
    journal = recorder.journal(pay(recorder, env, "bob", 30))
    assert journal.version == version
    with pytest.raises(NonDeterminismError) as info:
        replay(journal, CheckoutReordered)
    message = str(info.value)
    assert message.startswith("[570]")
    # the edited handler's command and the journal's, both named
    assert "CallCommandMessage" in message and "RunCommandMessage" in message
    assert 'service_name: "Fees"' in message and 'name: "charge"' in message
