"""SleepWithFailures: the SDK endpoint is killed / terminated mid-sleep and restarted (§4.14).

Port of the *intent* (§4.14/§7): the Kotlin test waits for the invocation before the kill. Here
the invocation runs in the background while the endpoint goes away, so the runtime has to retry
it against the restarted endpoint, which replays a journal with a pending sleep."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import ConformanceEnv
from .test_sleep import VARIANTS, sleep_call

SLEEP_MILLIS = 4000


def async_sleep_test(conf: ConformanceEnv, variant: str, action: Callable[[], None]) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        invocation = pool.submit(sleep_call, conf, variant, [SLEEP_MILLIS], 55)
        time.sleep(random.uniform(SLEEP_MILLIS / 4000, SLEEP_MILLIS / 2000))  # the scenario's 1-2 s delay
        assert not invocation.done(), f"the invocation finished before the fault: {invocation.result()!r}"
        action()
        invocation.result(timeout=55)
    elapsed = time.monotonic() - started
    assert elapsed >= SLEEP_MILLIS / 1000, f"a {SLEEP_MILLIS} ms sleep completed after {elapsed:.2f}s"


class TestSleepWithFailures:
    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("variant", VARIANTS)
    def test_sleepAndKillServiceEndpoint(self, conf: ConformanceEnv, variant: str) -> None:
        async_sleep_test(conf, variant, conf.kill_service_and_restart)

    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("variant", VARIANTS)
    def test_sleepAndTerminateServiceEndpoint(self, conf: ConformanceEnv, variant: str) -> None:
        took: list[float] = []
        async_sleep_test(conf, variant, lambda: took.append(conf.terminate_service_and_restart()))
        # the upstream suite (restatedev/e2e, sdk-tests): graceful shutdown of the endpoint must not hang beyond 10 s.
        assert math.isfinite(took[0]), "the test-services process ignored SIGTERM for 10 s and was killed"
