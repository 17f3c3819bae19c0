"""restate-server is SIGKILLed while handlers sleep and wait on awakeables, then restarted."""

from __future__ import annotations

import uuid

import pytest

import restate_sync.testing

from ..waiting import wait_until
from . import api_services, services

pytestmark = pytest.mark.e2e


def test_kill_and_restart_completes_everything_without_repeating_runs(always_suspend):
    with restate_sync.testing.start(*services.ALL, *api_services.ALL, always_suspend=always_suspend) as env:
        run_id = uuid.uuid4().hex[:8]
        sleepers = [f"{run_id}-sleep-{i}" for i in range(5)]
        waiters = [f"{run_id}-wait-{i}" for i in range(5)]
        sleeping = {k: env.ingress.send("Timers", "sleep_then_run", k)["invocationId"] for k in sleepers}
        waiting = {k: env.ingress.send("Awaiter", "wait", k)["invocationId"] for k in waiters}

        # every sleeper has durably completed its first run and every waiter published its id
        wait_until(
            lambda: all(api_services.REACHED[k] for k in sleepers), what="sleepers to reach their sleep"
        )
        ids = {
            k: wait_until(lambda k=k: env.ingress.call("Holder", "get", key=k), what=f"awakeable of {k}")
            for k in waiters
        }

        old_pid = env.server.pid
        env.server.kill()
        env.server.restart()
        assert env.server.pid != old_pid

        for k, awakeable in ids.items():
            env.ingress.resolve_awakeable(awakeable, f"resolved {k}")
        for k, invocation_id in waiting.items():
            assert env.ingress.attach(invocation_id, timeout=60) == f"resolved {k}"
        for k, invocation_id in sleeping.items():
            assert env.ingress.attach(invocation_id, timeout=60) == f"done {k}"
        for k in sleepers:
            assert api_services.RUNS[f"{k}:before"] == 1, f"run 'before' of {k} executed twice"
            assert api_services.RUNS[f"{k}:after"] == 1, f"run 'after' of {k} executed twice"
