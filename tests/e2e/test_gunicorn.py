"""gunicorn, a real process: ``endpoint.app`` under ``gunicorn -k gevent``, and the restate_sync
h2c worker (``-k restate_sync.gunicorn.Worker``) under gunicorn's process management."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from restate_sync.client import AdminClient, IngressClient
from restate_sync.restate_server import RestateServer

from ..waiting import wait_until
from .embedding import Gate, Served, served_and_registered, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

IN_FLIGHT = 8


def booted(log: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log)]


def exited(log: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"Worker exiting \(pid: (\d+)\)", log)]


def test_endpoint_app_under_gunicorn_gevent(tmp_path: Path, always_suspend: bool) -> None:
    with served_and_registered(
        "gunicorn-wsgi", tmp_path, always_suspend=always_suspend, app="tests.e2e.embedded:app", workers=2
    ) as (
        served,
        client,
    ):
        assert client.call("Embedded", "greet", "gunicorn") == "HELLO, GUNICORN!"
        assert client.call("Counter", "add", 2, key="g") == 2
        assert client.call("Counter", "add", 3, key="g") == 5
        assert set(booted(served.log())) >= {client.call("Embedded", "pid")}


def test_the_worker_serves_bidirectional_streaming(tmp_path: Path, always_suspend: bool) -> None:
    with (
        RestateServer(partitions=2, env=server_env(always_suspend)) as server,
        Served("gunicorn-h2", tmp_path, workers=2) as served,
    ):
        served.register(server)
        (deployment,) = AdminClient(server.admin_url).deployments()
        assert deployment["protocol_type"] == "BidiStream", deployment
        assert deployment["http_version"] == "HTTP/2.0", deployment
        client = IngressClient(server.ingress_url)
        assert client.call("Embedded", "greet", "h2c") == "HELLO, H2C!"
        assert client.call("Counter", "add", 4, key="w") == 4
        assert "max_requests" not in served.log()


def test_the_worker_is_ignoring_max_requests(tmp_path: Path, always_suspend: bool) -> None:
    served = Served("gunicorn-h2", tmp_path)
    served.process.cmd[-1:-1] = ["--max-requests", "3"]
    with RestateServer(partitions=1, env=server_env(always_suspend)) as server, served:
        served.register(server)
        client = IngressClient(server.ingress_url)
        pids = {client.call("Embedded", "pid") for _ in range(10)}
        assert len(pids) == 1, "the worker was recycled after max_requests"
        assert "max_requests=3 is ignored" in served.log()


def test_sighup_reload_and_sigterm_with_invocations_in_flight(tmp_path: Path, always_suspend: bool) -> None:
    """Reload and shutdown wait for the invocations in flight; none is cut off, none is lost."""
    with RestateServer(partitions=2, env=server_env(always_suspend)) as server, Gate() as gate:
        served = Served("gunicorn-h2", tmp_path, workers=2, graceful_timeout=90).start()
        try:
            served.register(server)
            client = IngressClient(server.ingress_url, timeout=120)
            wait_until(lambda: len(booted(served.log())) == 2, 30, what="two workers")
            first = set(booted(served.log()))

            # --- SIGHUP: new workers start, the old ones finish what they run, then exit
            sent = [
                client.send("Embedded", "gated", list(gate.address))["invocationId"] for _ in range(IN_FLIGHT)
            ]
            wait_until(lambda: gate.arrived == IN_FLIGHT, 30, what="every invocation inside its run step")
            served.process.send_signal(signal.SIGHUP)
            wait_until(lambda: len(booted(served.log())) == 4, 30, what="two new workers")
            second = set(booted(served.log())) - first
            before_open = served.log()  # an old worker with nothing in flight may already be gone
            gate.open()
            ran_on = {client.attach(i) for i in sent}
            assert ran_on <= first  # completed where they ran
            for pid in ran_on:
                assert f"Worker exiting (pid: {pid})" not in before_open, (
                    f"worker {pid} left while its invocations were in flight"
                )
            wait_until(lambda: first <= set(exited(served.log())), 60, what="the old workers to exit")
            assert gate.arrived == IN_FLIGHT, "a run step was cut off and executed again"
            assert {client.call("Embedded", "pid") for _ in range(6)} <= second

            # --- SIGTERM: the invocations in flight complete, then gunicorn exits
            with Gate() as last_gate:
                sent = [
                    client.send("Embedded", "gated", list(last_gate.address))["invocationId"]
                    for _ in range(IN_FLIGHT)
                ]
                wait_until(lambda: last_gate.arrived == IN_FLIGHT, 30, what="every invocation in its run")
                served.process.send_signal(signal.SIGTERM)
                wait_until(
                    lambda: "Handling signal: term" in served.log(), 10, what="gunicorn to get SIGTERM"
                )
                later = [client.send("Embedded", "pid")["invocationId"] for _ in range(4)]
                assert served.process.is_running(), "gunicorn did not wait for the invocations in flight"
                last_gate.open()
                assert {client.attach(i) for i in sent} <= second
                assert served.process.proc is not None
                assert served.process.proc.wait(60) == 0
                assert last_gate.arrived == IN_FLIGHT, "a run step was cut off and executed again"
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- gunicorn's log:\n{served.log()[-6000:]}") from exc
        finally:
            served.stop()

        # what was sent while gunicorn stopped ran on a draining worker, or runs once gunicorn is
        # back (same port, same deployment): none is lost
        with Served("gunicorn-h2", tmp_path, port=served.port) as again:
            results = {client.attach(i) for i in later}
            assert results and results <= second | set(booted(again.log()))
