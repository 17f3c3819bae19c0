"""The examples load, register with a real restate-server, and answer; the pytest example passes."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import restate_sync.logs
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


def load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_observability():
    pytest.importorskip("opentelemetry.sdk", reason="needs the OpenTelemetry SDK (pip install -e '.[dev]')")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    example = load_example("observability")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    capture.addFilter(restate_sync.logs.InvocationContextFilter())
    logging.getLogger("observability").addHandler(capture)
    logging.getLogger("observability").setLevel(logging.INFO)
    try:
        with restate_sync.testing.start(example.build_endpoint(provider), always_suspend=True) as env:
            sent = env.ingress.send("Checkout", "buy", "book", headers={"x-tenant": "acme"})
            assert env.ingress.attach(sent["invocationId"], timeout=30) == {
                "tenant": "acme",
                "item": "book",
                "receipt": "acme-4.00",
            }
    finally:
        logging.getLogger("observability").removeHandler(capture)
    names = {span.name for span in exporter.get_finished_spans()}
    assert {"Checkout/buy", "run price", "call Payments/charge", "Payments/charge", "run charge"} <= names
    assert len({span.context.trace_id for span in exporter.get_finished_spans()}) == 1
    messages = [(r.getMessage(), r.restate_service) for r in records]
    # every line once, although each await suspended and the handlers replayed
    assert messages.count(("tenant acme buys book", "Checkout")) == 1
    assert messages.count(("charging 4.00 for tenant acme", "Payments")) == 1
    assert messages.count(("charged acme-4.00", "Checkout")) == 1


@pytest.mark.parametrize("option", [[], ["--restate-always-suspend"]], ids=["default", "always-suspend"])
def test_with_pytest(option: list[str]) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            str(EXAMPLES / "test_with_pytest.py"),
            *option,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
