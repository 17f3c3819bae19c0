"""NonDeterminismErrors: a journal mismatch on replay fails the invocation (§4.8).

Runs in alwaysSuspending only, with the class's retry policy (1 attempt, then kill)."""

from __future__ import annotations

import pytest

from .harness import ConformanceEnv, eventually, expect_http_error, long

HANDLERS = [
    "eitherSleepOrCall",
    "callDifferentMethod",
    "backgroundInvokeWithDifferentTargets",
    "setDifferentKey",
]


class TestNonDeterminismErrors:
    @pytest.mark.parametrize("handler_name", HANDLERS)
    def test_method(self, conf: ConformanceEnv, handler_name: str) -> None:
        # Increment first; this also makes sure the Counter object exists.
        conf.ingress.call("Counter", "add", 1, key=handler_name, idempotent=True)

        expect_http_error(
            lambda: conf.ingress.call("NonDeterministic", handler_name, key=handler_name, idempotent=True)
        )

        def counter_not_incremented() -> None:
            assert long(conf.ingress.call("Counter", "get", key=handler_name)) == 1

        eventually(counter_not_incremented, what="counter was not incremented")
