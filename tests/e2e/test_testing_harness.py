"""restate_sync.testing.RestateTestHarness: the start/stop harness object, against a real server."""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter as Tally
from collections.abc import Iterator

import pytest

import restate_sync as restate
import restate_sync.testing
from restate_sync.client import AdminClient, IngressClient, IngressError
from restate_sync.restate_server import RestateServer, RestateServerError
from restate_sync.restate_server.processes import accepts_connections
from restate_sync.testing import DISABLE_RETRIES_ENV, RestateTestHarness

from ..waiting import wait_until
from . import services

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _default_pass_only(always_suspend: bool) -> None:
    if always_suspend:
        pytest.skip("independent of the server's suspension mode: runs in the default pass only")


_lock = threading.Lock()
ATTEMPTS: Tally[str] = Tally()


class Unreliable(restate.Service):
    """Fails with a plain (retryable) exception on every attempt, counting the attempts."""

    @restate.handler
    def always_fails(ctx: restate.Context, key: str) -> str:
        with _lock:
            ATTEMPTS[key] += 1
        raise RuntimeError(f"plain failure {key}")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def harness() -> Iterator[RestateTestHarness]:
    """One harness for the module, started and stopped the way an RSpec before/after(:all) does."""
    h = RestateTestHarness(services.Greeter, services.Counter, Unreliable, disable_retries=True)
    h.start()
    try:
        yield h
    finally:
        h.stop()


def test_a_started_harness_offers_urls_and_ready_clients(harness: RestateTestHarness) -> None:
    assert harness.is_started()
    assert harness.ingress_url.startswith("http://127.0.0.1:")
    assert harness.admin_url.startswith("http://127.0.0.1:")
    assert isinstance(harness.server, RestateServer)
    assert isinstance(harness.ingress, IngressClient) and isinstance(harness.admin, AdminClient)
    assert harness.ingress.call("Greeter", "greet", "World") == "Hello, World!"
    key = uuid.uuid4().hex
    assert harness.ingress.call("Counter", "add", 2, key=key) == 2
    assert harness.ingress.call("Counter", "get", key=key) == 2
    assert sorted(s["name"] for s in harness.admin.services()) == ["Counter", "Greeter", "Unreliable"]
    assert harness.deployment["id"].startswith("dp_")
    assert [d["id"] for d in harness.admin.deployments()] == [harness.deployment["id"]]


def test_disable_retries_fails_a_plain_exception_after_exactly_one_attempt(
    harness: RestateTestHarness,
) -> None:
    key = uuid.uuid4().hex
    with pytest.raises(IngressError) as info:
        harness.ingress.call("Unreliable", "always_fails", key, timeout=30)
    assert f"plain failure {key}" in info.value.message
    assert ATTEMPTS[key] == 1
    # Nothing is retrying in the background either: the invocation is over.
    rows = harness.admin.query("SELECT status FROM sys_invocation WHERE target_service_name = 'Unreliable'")
    assert rows and all(row["status"] == "completed" for row in rows)
    assert ATTEMPTS[key] == 1


def test_without_disable_retries_the_server_keeps_retrying() -> None:
    key = uuid.uuid4().hex
    with RestateTestHarness(Unreliable) as h:
        assert not set(DISABLE_RETRIES_ENV) & set(h.server_environment())
        sent = h.ingress.send("Unreliable", "always_fails", key)
        wait_until(lambda: ATTEMPTS[key] >= 3, timeout=30, what="three attempts")
        h.admin.kill_invocation(sent["invocationId"])


def test_options_become_server_settings_and_server_env_wins() -> None:
    h = RestateTestHarness(
        services.Greeter,
        always_suspend=True,
        disable_retries=True,
        server_env={"RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "2", "RUST_LOG": "warn"},
    )
    assert h.server_environment() == {
        "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s",
        "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "2",
        "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "kill",
        "RUST_LOG": "warn",
    }
    assert not h.is_started()
    with pytest.raises(RuntimeError, match="not started"):
        _ = h.ingress_url
    with pytest.raises(ValueError, match="at least one service"):
        RestateTestHarness()


def test_stop_tears_everything_down_and_is_idempotent() -> None:
    h = RestateTestHarness(services.Greeter, partitions=1).start()
    with pytest.raises(RuntimeError, match="already started"):
        h.start()
    server = h.server
    assert isinstance(server, RestateServer)
    pid, data_dir = server.pid, server.data_dir
    endpoint_address = h.endpoint.address
    assert endpoint_address is not None and accepts_connections(endpoint_address[1])
    assert pid is not None
    h.stop()
    h.stop()
    assert not h.is_started()
    assert process_gone(pid)
    assert not os.path.exists(data_dir)
    assert not accepts_connections(endpoint_address[1]), "the endpoint's listener is closed too"


def test_a_failed_start_leaves_nothing_running() -> None:
    h = RestateTestHarness(services.Greeter, server_env={"RESTATE_DEFAULT_NUM_PARTITIONS": "lots"})
    with pytest.raises(RestateServerError, match="exited with code"):
        h.start()
    assert not h.is_started()
    with pytest.raises(RuntimeError, match="not started"):
        _ = h.server


def test_the_short_form_yields_a_started_harness() -> None:
    with restate_sync.testing.start(services.Greeter, disable_retries=True) as env:
        assert isinstance(env, RestateTestHarness) and env.disable_retries
        assert env.ingress.call("Greeter", "greet", "you") == "Hello, you!"
        pid = env.server.pid
    assert pid is not None and process_gone(pid)
