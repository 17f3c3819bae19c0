"""What restate-sync starts, it stops: `dev` on SIGTERM/SIGHUP, `serve --workers` when its
supervisor is killed. Real subprocesses, real restate-server."""

from __future__ import annotations

import os
import re
import signal
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from restate_sync.client import IngressClient
from restate_sync.restate_server.processes import LoggedProcess, free_port

from ..waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _default_pass_only(always_suspend: bool) -> None:
    if always_suspend:
        pytest.skip("independent of the server's suspension mode: runs in the default pass only")


ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.fixture
def dev_process(tmp_path: Path) -> Iterator[LoggedProcess]:
    """`restate-sync dev` in its own session; its log is the test's view of what it prints."""
    holder: list[LoggedProcess] = []

    def start(*args: str) -> LoggedProcess:
        process = LoggedProcess(
            [
                PY,
                "-m",
                "restate_sync.cli",
                "--log-level",
                "warning",
                "dev",
                "examples/counter.py:endpoint",
                *args,
            ],
            tmp_path / "dev.log",
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            name="restate-sync dev",
        )
        process.start()
        holder.append(process)
        return process

    yield start  # type: ignore[misc]
    for process in holder:
        process.kill()


def wait_for_output(process: LoggedProcess, pattern: str, timeout: float = 120) -> re.Match[str]:
    def found() -> re.Match[str] | None:
        if not process.is_running():
            raise process.exited_error(f"before printing {pattern!r}")
        return re.search(pattern, process.log_path.read_text())

    return wait_until(found, timeout, 0.1, what=f"{pattern!r} in {process.log_path}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_dev_stops_the_restate_server_it_started(dev_process, sig: signal.Signals) -> None:
    dev = dev_process()
    match = wait_for_output(dev, r"restate-server pid (\d+)\s+ingress: (\S+)")
    server_pid, ingress = int(match.group(1)), match.group(2)
    wait_for_output(dev, r"serving Counter")
    assert IngressClient(ingress).call("Counter", "add", 2, key="hygiene") == 2
    assert alive(server_pid)

    dev.send_signal(sig)
    assert dev.proc is not None and dev.proc.wait(30) == 0
    assert "stopping (got" in dev.log_path.read_text()
    wait_until(lambda: not alive(server_pid), timeout=15, what="restate-server to be gone")


def test_dev_cluster_restarts_a_killed_node_and_stops_every_node(dev_process) -> None:
    dev = dev_process("--nodes", "3")
    wait_for_output(dev, r"serving Counter")
    text = dev.log_path.read_text()
    nodes = {name: int(pid) for name, pid in re.findall(r"(node-\d) pid (\d+)", text)}
    ingress = re.findall(r"ingress: (\S+)", text)
    assert sorted(nodes) == ["node-1", "node-2", "node-3"] and len(ingress) == 3

    os.kill(nodes["node-2"], signal.SIGKILL)
    # The others carry on meanwhile, through their own ingresses.
    assert IngressClient(ingress[0], timeout=60).call("Counter", "add", 1, key="hygiene") == 1
    back = wait_for_output(dev, r"node-2 is back \(pid (\d+)\)", timeout=120)
    new_pid = int(back.group(1))
    assert new_pid != nodes["node-2"] and alive(new_pid)
    assert IngressClient(ingress[1], timeout=60).call("Counter", "add", 1, key="hygiene") == 2

    dev.send_signal(signal.SIGHUP)
    assert dev.proc is not None and dev.proc.wait(60) == 0
    for pid in [nodes["node-1"], nodes["node-3"], new_pid]:
        wait_until(lambda pid=pid: not alive(pid), timeout=15, what=f"node pid {pid} to be gone")


def test_serve_workers_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    port = free_port()
    supervisor = LoggedProcess(
        [
            PY,
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
        tmp_path / "serve.log",
        cwd=ROOT,
        name="restate-sync serve --workers 2",
    )
    supervisor.start()
    try:
        supervisor.wait_listening(port, timeout=30)
        assert supervisor.pid is not None
        workers = wait_until(
            lambda: len(children(supervisor.pid or 0)) == 2 and children(supervisor.pid or 0),
            what="2 workers",
        )
        # SIGKILL the supervisor alone (not its process group): nobody forwards a signal now.
        os.kill(supervisor.pid, signal.SIGKILL)
        wait_until(lambda: not any(alive(w) for w in workers), timeout=20, what=f"workers {workers} to stop")
    finally:
        supervisor.kill()


POLLING_CHILD = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import os, signal, sys, time
    import gevent
    from restate_sync.transport.parent_watch import die_with_parent

    parent = os.getpid()
    child = os.fork()
    if child == 0:
        got = []
        gevent.signal_handler(signal.SIGTERM, lambda: got.append("SIGTERM"))
        how = die_with_parent(parent, use_prctl=sys.argv[1] == "prctl")
        print(f"child {os.getpid()} watching by {how}", flush=True)
        for _ in range(600):
            if got:
                print("child got SIGTERM", flush=True)
                os._exit(0)
            gevent.sleep(0.05)
        os._exit(1)
    time.sleep(1.0)  # the child is set up
    os._exit(0)  # the parent dies without telling anyone
    """
)


@pytest.mark.parametrize("how", ["prctl", "poll"])
def test_a_forked_child_gets_sigterm_when_its_parent_dies(tmp_path: Path, how: str) -> None:
    log = tmp_path / "child.log"
    process = LoggedProcess([PY, "-c", POLLING_CHILD, how], log, cwd=ROOT, name="parent")
    process.start()
    try:
        assert process.proc is not None and process.proc.wait(30) == 0
        match = wait_until(lambda: re.search(r"child (\d+) watching by (\w+)", log.read_text()), what="child")
        assert match.group(2) == how
        wait_until(lambda: "child got SIGTERM" in log.read_text(), timeout=10, what="the child's SIGTERM")
        wait_until(lambda: not alive(int(match.group(1))), timeout=10, what="the child to exit")
    finally:
        process.kill()
