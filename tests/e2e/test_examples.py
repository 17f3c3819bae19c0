"""The examples load, register with a real restate-server, and answer."""

from __future__ import annotations

from pathlib import Path

import pytest

import restate_sync.testing
from restate_sync.cli import load_endpoints
from restate_sync.client import IngressError

from ..waiting import wait_until

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def env():
    targets = [
        f"{EXAMPLES / name}:endpoint"
        for name in (
            "greeter.py",
            "counter.py",
            "durable_execution.py",
            "virtual_objects.py",
            "workflow.py",
            "service_communication.py",
        )
    ]
    with restate_sync.testing.start(load_endpoints(targets)) as environment:
        yield environment


def test_greeter_and_counter(env):
    assert env.ingress.call("Greeter", "greet", "World") == "Hello, World!"
    assert env.ingress.call("Counter", "add", 2, key="ex") == 2
    assert env.ingress.call("Counter", "get", key="ex") == 2


def test_durable_execution(env):
    result = env.ingress.call("Orders", "place", {"item": "book", "qty": 2})
    assert result["reservation"] == "reservation-book-2" and len(result["digest"]) == 16
    with pytest.raises(IngressError) as info:
        env.ingress.call("Orders", "place", {"item": "book", "qty": 0})
    assert info.value.status == 400


def test_virtual_objects(env):
    env.ingress.call("ShoppingCart", "add", {"item": "tea", "qty": 2}, key="alice")
    env.ingress.call("ShoppingCart", "add", {"item": "milk", "qty": 1}, key="alice")
    assert env.ingress.call("ShoppingCart", "contents", key="alice") == {"tea": 2, "milk": 1}
    assert env.ingress.call("ShoppingCart", "checkout", key="alice") == {"tea": 2, "milk": 1}
    assert env.ingress.call("ShoppingCart", "contents", key="alice") == {}


def test_workflow(env):
    sent = env.ingress.send("UserSignup", "run", "user@example.com", key="user42")
    wait_until(lambda: env.ingress.call("UserSignup", "status", key="user42") == "waiting_for_approval")
    env.ingress.call("UserSignup", "approve", "approved by admin", key="user42")
    assert env.ingress.attach(sent["invocationId"]) == {
        "user_id": "user-user",
        "approval": "approved by admin",
    }


def test_service_communication(env):
    assert env.ingress.call("Coordinator", "fan_out", ["a", "b"]) == ["A", "B"]
    assert env.ingress.call("Coordinator", "first", "x") == "fast x"
    assert env.ingress.call("Coordinator", "later", "y").startswith("inv_")
