"""Replay-aware logging through a real restate-server: a handler that suspends and replays logs
its lines once through ``ctx.logger`` and ``restate.getLogger``, while a plain logger repeats
them on every attempt; every record logged inside a handler (and its run blocks) names the
invocation, service, handler and attempt, with plain ``logging`` configuration.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import restate_sync as restate
import restate_sync.logs

pytestmark = [pytest.mark.e2e, pytest.mark.restate(always_suspend="both")]

replay_aware = restate.getLogger("tests.e2e.logs.module")
plain = logging.getLogger("tests.e2e.logs.plain")


class Chatty(restate.Service):
    @restate.handler
    def talk(ctx: restate.Context, tag: str) -> str:
        for step in range(3):
            ctx.logger.info("ctx step %d %s", step, tag)
            replay_aware.info("module step %d %s", step, tag)
            plain.info("plain step %d %s", step, tag)
            ctx.sleep(0.01).result()

        def block() -> str:
            replay_aware.info("inside run %s", tag)
            return "x"

        ctx.run_sync("block", block)
        ctx.logger.info("done %s", tag)
        return "ok"


restate_services = [Chatty]  # served by restate-sync's pytest plugin


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.guard = threading.Lock()
        self.addFilter(restate_sync.logs.InvocationContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        with self.guard:
            self.records.append(record)

    def tagged(self, tag: str) -> list[logging.LogRecord]:
        with self.guard:
            return [r for r in self.records if r.getMessage().endswith(tag)]


@pytest.fixture(scope="module")
def collect() -> Iterator[Collect]:
    handler = Collect()
    loggers = [logging.getLogger(name) for name in ("tests.e2e.logs", __name__)]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield handler
    for lg, level in saved:
        lg.removeHandler(handler)
        lg.setLevel(level)


def test_lines_before_a_suspension_are_logged_once(restate_env: Any, collect: Collect) -> None:
    tag = uuid.uuid4().hex
    sent = restate_env.ingress.send("Chatty", "talk", tag)
    assert restate_env.ingress.attach(sent["invocationId"], timeout=30) == "ok"
    records = collect.tagged(tag)
    messages = [r.getMessage() for r in records]

    def count(text: str) -> int:
        return messages.count(f"{text} {tag}")

    for step in range(3):
        assert count(f"ctx step {step}") == 1, messages
        assert count(f"module step {step}") == 1, messages
    assert count("inside run") == 1 and count("done") == 1
    attempts = {r.restate_attempt for r in records}
    if restate_env.always_suspend:
        # three sleeps and a run, each suspending: the plain logger repeats what came before
        assert count("plain step 0") >= 4 and count("plain step 0") > count("plain step 2") >= 2
        assert len(attempts) >= 4
    else:
        assert count("plain step 0") == count("plain step 2") == 1
        assert len(attempts) == 1
    ctx_logger_names = {r.name for r in records if r.getMessage().startswith("ctx ")}
    assert ctx_logger_names == {__name__}  # ctx.logger is the handler module's logger


def test_every_record_names_its_invocation(restate_env: Any, collect: Collect) -> None:
    tag = uuid.uuid4().hex
    sent = restate_env.ingress.send("Chatty", "talk", tag)
    restate_env.ingress.attach(sent["invocationId"], timeout=30)
    records = collect.tagged(tag)
    assert records
    for record in records:
        assert record.restate_invocation_id == sent["invocationId"]
        assert (record.restate_service, record.restate_handler) == ("Chatty", "talk")
        if record.name != plain.name:  # the replay-aware loggers dropped their replayed records
            assert record.restate_replaying is False
        assert isinstance(record.restate_attempt, int) and record.restate_attempt > 0
    replayed = [r for r in records if r.restate_replaying]
    assert all(r.name == plain.name for r in replayed)
    assert bool(replayed) is restate_env.always_suspend
    formatter = logging.Formatter(
        "%(restate_service)s/%(restate_handler)s %(restate_invocation_id)s %(message)s"
    )
    assert formatter.format(records[0]).startswith(f"Chatty/talk {sent['invocationId']} ")


def test_outside_a_handler_the_fields_are_placeholders(collect: Collect) -> None:
    tag = uuid.uuid4().hex
    replay_aware.info("outside %s", tag)
    (record,) = collect.tagged(tag)
    assert (record.restate_invocation_id, record.restate_attempt, record.restate_replaying) == ("-", 0, False)
    assert restate_sync.logs.is_replaying() is False
