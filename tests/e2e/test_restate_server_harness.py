"""The restate-server harness and the ingress/admin clients, against a real restate-server."""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from restate_sync.client import AdminClient, AdminError, IngressClient, IngressError
from restate_sync.restate_server import (
    RESTATE_SERVER_VERSION,
    RestateServer,
    RestateServerError,
    ServerBinaryNotFound,
    find_server_binary,
)
from restate_sync.restate_server.processes import free_port

from ..waiting import wait_until

pytestmark = pytest.mark.e2e


def http_status(url: str, path: str) -> int | None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def server_binary() -> str:
    """The real binary (installed into the cache with npm if needed), resolved once."""
    return find_server_binary(install=True)


@pytest.fixture
def server(server_binary: str) -> Iterator[RestateServer]:
    with RestateServer(binary=server_binary) as srv:
        yield srv


# ---- finding the binary ---------------------------------------------------------------------


def _fake_binary(path: Path, version: str) -> Path:
    path.write_text(f"#!/bin/sh\necho 'restate-server {version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_find_server_binary_honours_restate_server_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_binary(tmp_path / "my-restate-server", "9.9.9")
    monkeypatch.setenv("RESTATE_SERVER_BIN", str(fake))
    assert find_server_binary(install=False) == str(fake.resolve())


def test_find_server_binary_rejects_a_missing_restate_server_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope" / "restate-server"
    monkeypatch.setenv("RESTATE_SERVER_BIN", str(missing))
    with pytest.raises(ServerBinaryNotFound, match=r"RESTATE_SERVER_BIN=.*does not exist"):
        find_server_binary()


def test_find_server_binary_rejects_a_non_executable_restate_server_bin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "restate-server"
    plain.write_text("not a program")
    monkeypatch.setenv("RESTATE_SERVER_BIN", str(plain))
    with pytest.raises(ServerBinaryNotFound, match="not an executable"):
        find_server_binary()


def test_path_binary_is_used_only_with_the_pinned_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESTATE_SERVER_BIN", raising=False)
    monkeypatch.setenv("RESTATE_SYNC_CACHE", str(tmp_path / "empty-cache"))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")

    fake = _fake_binary(bindir / "restate-server", "0.0.1")
    with pytest.raises(ServerBinaryNotFound, match=r"restate_sync\.restate_server install"):
        find_server_binary(install=False)  # wrong version on PATH: skipped, and the cache is empty

    _fake_binary(fake, RESTATE_SERVER_VERSION)
    assert find_server_binary(install=False) == str(fake)


# ---- the server -----------------------------------------------------------------------------


def test_server_starts_healthy_on_loopback(server: RestateServer) -> None:
    assert server.ingress_url.startswith("http://127.0.0.1:")
    assert server.admin_url.startswith("http://127.0.0.1:")
    assert len({server.ingress_port, server.admin_port, server.node_port}) == 3
    assert http_status(server.admin_url, "/health") == 200
    assert http_status(server.ingress_url, "/restate/health") == 200
    assert server.pid is not None
    assert Path(server.log_path).is_file()
    assert "Starting Restate Server" in Path(server.log_path).read_text()
    # TMPDIR is inside the data dir, so restate's per-start scratch directories stay there too.
    assert server.server_env()["TMPDIR"].startswith(server.data_dir)


def test_admin_api_on_a_fresh_server(server: RestateServer) -> None:
    admin = AdminClient(server.admin_url)
    assert admin.health()
    assert admin.services() == []
    assert admin.deployments() == []
    assert admin.query("SELECT 1 AS one") == [{"one": 1}]
    assert admin.query("SELECT id, status FROM sys_invocation") == []
    with pytest.raises(AdminError) as info:
        admin.service("NoSuchService")
    assert info.value.status == 404
    with pytest.raises(AdminError) as info:
        admin.cancel_invocation("inv_not-an-id")
    assert info.value.status == 400
    assert "invocation_id" in info.value.message


def test_ingress_errors_are_parsed(server: RestateServer) -> None:
    ingress = IngressClient(server.ingress_url)
    assert ingress.health()
    with pytest.raises(IngressError) as info:
        ingress.call("NoSuchService", "greet", "World")
    assert info.value.status == 404
    assert "NoSuchService" in info.value.message
    assert json.loads(info.value.body)["code"] == 404


def test_kill_and_restart_keeps_ports_and_data(server: RestateServer) -> None:
    ports = (server.ingress_port, server.admin_port, server.node_port)
    data_dir = server.data_dir
    old_pid = server.pid
    assert old_pid is not None

    server.kill()
    assert server.pid is None
    assert process_gone(old_pid)
    assert http_status(server.admin_url, "/health") is None

    server.restart()
    assert server.pid not in (None, old_pid)
    assert (server.ingress_port, server.admin_port, server.node_port) == ports
    assert server.data_dir == data_dir
    assert http_status(server.admin_url, "/health") == 200
    assert http_status(server.ingress_url, "/restate/health") == 200
    assert AdminClient(server.admin_url).query("SELECT count(*) AS n FROM sys_invocation") == [{"n": 0}]

    # A graceful restart (SIGTERM) works the same way.
    server.restart()
    assert http_status(server.ingress_url, "/restate/health") == 200


def test_restart_waits_for_a_port_that_is_briefly_taken(server: RestateServer) -> None:
    server.kill()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", server.admin_port))
    squatter.listen()
    release = threading.Timer(0.5, squatter.close)  # someone else frees the port a bit later
    release.start()
    try:
        server.restart()
    finally:
        release.cancel()
        squatter.close()
    assert http_status(server.admin_url, "/health") == 200


def test_close_removes_the_temp_dir_and_the_process(server_binary: str) -> None:
    srv = RestateServer(binary=server_binary, partitions=1)
    srv.start()
    pid, data_dir = srv.pid, srv.data_dir
    assert pid is not None and os.path.isdir(data_dir)
    srv.close()
    assert srv.pid is None
    assert process_gone(pid)
    assert not os.path.exists(data_dir)
    srv.close()  # idempotent
    with pytest.raises(RestateServerError):
        srv.start()


def test_context_manager_cleans_up_after_an_exception(server_binary: str) -> None:
    seen: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="boom"), RestateServer(binary=server_binary, partitions=1) as srv:
        seen.update(pid=srv.pid, data_dir=srv.data_dir)
        raise RuntimeError("boom")
    assert process_gone(seen["pid"])
    assert not os.path.exists(seen["data_dir"])


def test_given_data_dir_and_log_file_are_kept(server_binary: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log_file = tmp_path / "logs" / "server.log"
    with RestateServer(
        binary=server_binary, data_dir=str(data_dir), log_file=str(log_file), partitions=1
    ) as srv:
        assert srv.data_dir == str(data_dir.resolve())
        assert srv.log_path == str(log_file.resolve())
        pid = srv.pid
    assert pid is not None and process_gone(pid)
    assert data_dir.is_dir()  # not ours to delete
    assert "Starting Restate Server" in log_file.read_text()


def test_a_server_that_cannot_start_reports_its_log(server_binary: str) -> None:
    srv = RestateServer(
        binary=server_binary, env={"RESTATE_DEFAULT_NUM_PARTITIONS": "lots"}, startup_timeout=20
    )
    with pytest.raises(RestateServerError, match="exited with code") as info:
        srv.start()
    srv.close()
    assert "lots" in str(info.value) or "configuration" in str(info.value)


# ---- deployments and invocations, with a stand-in deployment that only answers discovery ------


class _DiscoveryOnly(BaseHTTPRequestHandler):
    """Answers ``GET /discover`` with a manifest; invocations are never meant to reach it."""

    protocol_version = "HTTP/1.1"
    MANIFEST = {
        "protocolMode": "REQUEST_RESPONSE",
        "minProtocolVersion": 5,
        "maxProtocolVersion": 6,
        "services": [
            {"name": "Greeter", "ty": "SERVICE", "handlers": [{"name": "greet"}]},
            {"name": "Counter", "ty": "VIRTUAL_OBJECT", "handlers": [{"name": "add"}]},
        ],
    }

    def do_GET(self) -> None:
        offered = [a.strip() for a in self.headers.get("accept", "").split(",") if "endpointmanifest" in a]
        body = json.dumps(self.MANIFEST).encode()
        self.send_response(200)
        self.send_header("content-type", offered[0] if offered else "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def discovery_only_deployment() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _DiscoveryOnly)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_register_send_with_delay_cancel_and_kill(
    server: RestateServer, discovery_only_deployment: str
) -> None:
    registered = server.register_deployment(discovery_only_deployment, use_http_11=True)
    assert registered["id"].startswith("dp_")
    assert {s["name"] for s in registered["services"]} == {"Greeter", "Counter"}

    admin = AdminClient(server.admin_url)
    assert sorted(s["name"] for s in admin.services()) == ["Counter", "Greeter"]
    assert admin.service("Counter")["ty"] == "VirtualObject"

    ingress = IngressClient(server.ingress_url)
    first = ingress.send("Greeter", "greet", "World", delay=3600)
    second = ingress.send("Counter", "add", 1, key="a/b c", delay=3600)
    assert first["status"] == "Accepted" and first["invocationId"].startswith("inv_")

    def statuses() -> dict[str, str]:
        return {
            row["id"]: row["status"] for row in admin.query("SELECT id, status, target FROM sys_invocation")
        }

    assert wait_until(
        lambda: (
            statuses().get(first["invocationId"]) == "scheduled"
            and statuses().get(second["invocationId"]) == "scheduled"
        ),
        what="both invocations scheduled",
    )
    targets = {row["id"]: row["target"] for row in admin.query("SELECT id, target FROM sys_invocation")}
    assert targets[second["invocationId"]] == "Counter/a/b c/add"  # the key was escaped in the URL

    with pytest.raises(IngressError) as info:
        ingress.output(first["invocationId"])
    assert info.value.status == 470  # exists but has not completed yet

    admin.cancel_invocation(first["invocationId"])
    admin.kill_invocation(second["invocationId"])
    wait_until(lambda: not statuses(), what="cancelled and killed invocations to disappear")

    with pytest.raises(AdminError) as info2:
        admin.cancel_invocation(first["invocationId"])
    assert info2.value.status == 404


def test_register_deployment_errors_carry_the_body(server: RestateServer) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AdminError) as info:
        server.register_deployment(nobody)
    assert info.value.status >= 400
    assert info.value.body
    assert info.value.message
