"""`restate-sync serve --limit NAME=VALUE`: the server really runs with the changed limits."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from restate_sync.cli import parse_limits
from restate_sync.restate_server.processes import free_port

from ..waiting import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def serve(*extra: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "restate_sync.cli", "serve", "examples/greeter.py:endpoint"),
            *("--bind", f"127.0.0.1:{port}", *extra),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def server_settings(port: int) -> dict[int, int]:
    """The SETTINGS the server announces on a fresh h2c connection."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection before its SETTINGS"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    return {key: value.new_value for key, value in event.changed_settings.items()}


def test_serve_runs_with_the_limits_given_on_the_command_line():
    port = free_port()
    proc = serve("--limit", "max_concurrent_streams=7", "--limit", "http1.max_body_size=4096", port=port)
    try:

        def listening() -> bool:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            except OSError:
                return False
            return True

        wait_until(listening, 15, what="restate-sync serve to listen")
        settings = server_settings(port)
        assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 7
        # the HTTP/1.1 side of the same port has the smaller body limit: 413 on the head alone
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(
                b"POST /invoke/Greeter/greet HTTP/1.1\r\nhost: x\r\n"
                b"content-type: application/vnd.restate.invocation.v6\r\ncontent-length: 5000\r\n\r\n"
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 413")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("max_concurrent_streams=0", "must be a positive int"),
        ("no_such_limit=1", "unknown limit 'no_such_limit'"),
        ("idle_timeout=soon", "needs a number"),
    ],
)
def test_a_bad_limit_is_refused_with_its_reason(limit: str, message: str):
    proc = serve("--limit", limit, port=free_port())
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert message in out


def test_parse_limits_leaves_untouched_groups_out():
    assert parse_limits([]) == {}
    assert set(parse_limits(["http1.head_timeout=3.5"])) == {"http1_limits"}
    assert parse_limits(["http1.head_timeout=3.5"])["http1_limits"].head_timeout == 3.5
