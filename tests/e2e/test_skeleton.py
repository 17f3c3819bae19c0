"""The walking skeleton, end to end through a real restate-server."""

from __future__ import annotations

import pytest

from restate_sync.client import IngressError

from . import services

pytestmark = pytest.mark.e2e


def test_greeter(env):
    assert env.ingress.call("Greeter", "greet", "World") == "Hello, World!"


def test_counter_adds_and_reads_state(env, key):
    assert env.ingress.call("Counter", "add", 5, key=key) == 5
    assert env.ingress.call("Counter", "add", 5, key=key) == 10
    assert env.ingress.call("Counter", "get", key=key) == 10


def test_run_that_fails_once_has_its_effect_exactly_once(env, key):
    assert env.ingress.call("Flaky", "once_then_ok", key) == "ok"
    assert services.ATTEMPTS[key] == 2
    assert services.EFFECTS[key] == ["charged"]


def test_terminal_error_reaches_the_caller(env):
    with pytest.raises(IngressError) as info:
        env.ingress.call("Flaky", "terminal")
    assert info.value.status == 400
    assert info.value.message == "nope"


def test_catching_exception_does_not_break_durability(env, key):
    assert env.ingress.call("Flaky", "swallow", key) == "slept"


def test_large_journal_entries_do_not_stall(env):
    big = "x" * (300 * 1024)  # well past the 64 KiB default HTTP/2 window
    assert env.ingress.call("Echo", "echo", big) == big
    blob = bytes(range(256)) * 1024
    assert env.ingress.call("Echo", "echo_bytes", blob, raw=True) == blob


def test_many_concurrent_invocations(env):
    from concurrent.futures import ThreadPoolExecutor

    names = [f"n{i}" for i in range(64)]
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda n: env.ingress.call("Greeter", "greet", n), names))
    assert results == [f"Hello, {n}!" for n in names]
