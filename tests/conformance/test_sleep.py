"""Sleep (§4.13): v1.0 drives TestUtilsService.sleepConcurrently, v2.2 the command interpreter."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import INTERPRETER, ConformanceEnv, new_key

VARIANTS = ["v1", "v2"]


def sleep_call(conf: ConformanceEnv, variant: str, millis: list[int], timeout: float | None = None) -> object:
    if variant == "v1":
        return conf.ingress.call(
            "TestUtilsService", "sleepConcurrently", millis, idempotent=True, timeout=timeout
        )
    sleeps = [{"type": "sleep", "timeoutMillis": m} for m in millis]
    command = (
        {"type": "awaitOne", "command": sleeps[0]}
        if len(sleeps) == 1
        else {"type": "awaitAllCompleted", "commands": sleeps}
    )
    return conf.ingress.call(
        INTERPRETER,
        "interpretCommands",
        {"commands": [command]},
        key=new_key(),
        idempotent=True,
        timeout=timeout,
    )


class TestSleep:
    @pytest.mark.parametrize("variant", VARIANTS)
    def test_sleep(self, conf: ConformanceEnv, variant: str) -> None:
        started = time.monotonic()
        sleep_call(conf, variant, [10])
        assert time.monotonic() - started >= 0.010

    @pytest.mark.timeout(60)
    @pytest.mark.parametrize("variant", VARIANTS)
    def test_manySleeps(self, conf: ConformanceEnv, variant: str) -> None:
        invocations, sleeps_per_invocation = 50, 20
        with ThreadPoolExecutor(invocations) as pool:
            futures = [
                pool.submit(
                    sleep_call,
                    conf,
                    variant,
                    [random.randint(10, 50) for _ in range(sleeps_per_invocation)],
                    55,
                )
                for _ in range(invocations)
            ]
            for f in futures:
                f.result(timeout=58)
