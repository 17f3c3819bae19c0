"""KillRuntime / StopRuntime: state survives a runtime SIGKILL / SIGTERM + restart (§4.7, §4.16)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from .harness import ConformanceEnv, Ingress, eventually


def _start_and_restart_runtime_retains_the_state(conf: ConformanceEnv, restart: Callable[[], None]) -> None:
    # A client of its own, closed before the restart (every request here uses a fresh connection).
    first = Ingress(conf.ingress_url)
    assert first.call("Counter", "add", 1, key="my-key", idempotent=True) == {"oldValue": 0, "newValue": 1}
    del first

    restart()

    idempotency_key = str(uuid.uuid4())  # fixed across retries: an applied-but-lost attempt isn't re-applied

    def second_add() -> None:
        client = Ingress(conf.ingress_url, timeout=5)  # new client; connect and answer within 5 s
        assert client.call("Counter", "add", 2, key="my-key", idempotency_key=idempotency_key) == {
            "oldValue": 1,
            "newValue": 3,
        }

    eventually(second_add, timeout=60, what="second add")


class TestKillRuntime:
    @pytest.mark.timeout(60)
    def test_startAndKillRuntimeRetainsTheState(self, conf: ConformanceEnv) -> None:
        _start_and_restart_runtime_retains_the_state(conf, conf.kill_runtime_and_restart)


class TestStopRuntime:
    @pytest.mark.timeout(60)
    def test_startAndStopRuntimeRetainsTheState(self, conf: ConformanceEnv) -> None:
        _start_and_restart_runtime_retains_the_state(conf, conf.terminate_runtime_and_restart)
