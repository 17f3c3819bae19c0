"""RunFlush: a run waits for the runtime's ack before continuing (§4.10; alwaysSuspending only)."""

from __future__ import annotations

from .harness import ConformanceEnv, long


class TestRunFlush:
    def test_flush(self, conf: ConformanceEnv) -> None:
        assert (
            long(conf.ingress.call("TestUtilsService", "countExecutedSideEffects", 3, idempotent=True)) == 0
        )
