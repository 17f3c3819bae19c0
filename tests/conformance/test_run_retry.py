"""RunRetry: ctx.run retry policies (§4.11). The counters are process-global, hence ``>=``."""

from __future__ import annotations

from .harness import ConformanceEnv, long, new_key


class TestRunRetry:
    def test_withSuccess(self, conf: ConformanceEnv) -> None:
        """Run is retried until it succeeds."""
        result = conf.ingress.call(
            "Failing", "sideEffectSucceedsAfterGivenAttempts", 3, key=new_key(), idempotent=True
        )
        assert long(result) >= 3

    def test_executedOnlyOnce(self, conf: ConformanceEnv) -> None:
        """Run is executed only once."""
        result = conf.ingress.call(
            "Failing", "sideEffectFailsAfterGivenAttempts", 1, key=new_key(), idempotent=True
        )
        assert long(result) >= 1

    def test_withExhaustedAttempts(self, conf: ConformanceEnv) -> None:
        """Run is retried until it exhausts the retry attempts."""
        result = conf.ingress.call(
            "Failing", "sideEffectFailsAfterGivenAttempts", 3, key=new_key(), idempotent=True
        )
        assert long(result) >= 3
