"""The `restate-sync` command line, run as a real subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from restate_sync.client import IngressClient
from restate_sync.restate_server import RestateServer

from ..waiting import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    def listening() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"restate-sync exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    wait_until(listening, timeout, what=f"restate-sync to listen on {port}")


def test_serve_a_file_target_registered_with_restate_server():
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "restate_sync.cli",
            "serve",
            "examples/greeter.py:endpoint",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        with RestateServer() as server:
            server.register_deployment(f"http://127.0.0.1:{port}")
            assert IngressClient(server.ingress_url).call("Greeter", "greet", "World") == "Hello, World!"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_dev_starts_everything_invokes_and_cleans_up():
    env = dict(os.environ)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "restate_sync.cli",
            "dev",
            "examples/greeter.py:endpoint",
            "examples/counter.py:endpoint",
            "--invoke",
            "Greeter/greet",
            "--data",
            '"World"',
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Greeter/greet -> "Hello, World!"' in result.stdout
    assert "curl http://127.0.0.1:" in result.stdout


def test_bad_target_is_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-m", "restate_sync.cli", "serve", "examples/nope.py:endpoint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "no such file" in result.stderr


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_serve_with_prefork_workers_and_graceful_stop():
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "restate_sync.cli",
            "serve",
            "examples/greeter.py:endpoint",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--grace",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        workers = wait_until(lambda: len(_children(proc.pid)) == 2 and _children(proc.pid), what="2 workers")
        with RestateServer() as server:
            server.register_deployment(f"http://127.0.0.1:{port}")
            client = IngressClient(server.ingress_url)
            assert [client.call("Greeter", "greet", str(i)) for i in range(10)] == [
                f"Hello, {i}!" for i in range(10)
            ]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        for pid in workers:
            assert (
                not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
