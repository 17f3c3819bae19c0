"""Signals [v2]: resolve / reject a named signal of another invocation (upstream: restatedev/e2e, sdk-tests)."""

from __future__ import annotations

from .harness import INTERPRETER, ConformanceEnv, expect_http_error, new_key

AWAIT_SIGNAL = {
    "commands": [{"type": "awaitOne", "command": {"type": "createSignal", "signalName": "mysignal"}}]
}


class TestSignals:
    def test_resolve(self, conf: ConformanceEnv) -> None:
        inv = conf.ingress.send(
            INTERPRETER, "interpretCommands", AWAIT_SIGNAL, key=new_key(), idempotent=True
        ).invocation_id
        conf.ingress.call(
            "TestUtilsService",
            "resolveSignal",
            {"invocationId": inv, "signalName": "mysignal", "value": "hello"},
            idempotent=True,
        )
        assert conf.ingress.attach(inv) == "hello"

    def test_reject(self, conf: ConformanceEnv) -> None:
        inv = conf.ingress.send(
            INTERPRETER, "interpretCommands", AWAIT_SIGNAL, key=new_key(), idempotent=True
        ).invocation_id
        conf.ingress.call(
            "TestUtilsService",
            "rejectSignal",
            {"invocationId": inv, "signalName": "mysignal", "reason": "boom"},
            idempotent=True,
        )
        error = expect_http_error(lambda: conf.ingress.attach(inv))
        assert "boom" in error.message
