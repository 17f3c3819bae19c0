"""A three-node restate cluster on loopback (RestateCluster, RestateTestHarness(nodes=3)).

Heavy (three restate-server processes, ~200 MiB each): one cluster serves the whole module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from restate_sync.client import IngressClient
from restate_sync.restate_server import RestateCluster
from restate_sync.restate_server.processes import ephemeral_port_range
from restate_sync.testing import RestateTestHarness

from ..waiting import wait_until
from . import services

pytestmark = pytest.mark.e2e


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def harness(always_suspend: bool) -> Iterator[RestateTestHarness]:
    with RestateTestHarness(services.Greeter, services.Counter, nodes=3, always_suspend=always_suspend) as h:
        yield h


def clients(cluster: RestateCluster) -> list[IngressClient]:
    return [IngressClient(url, timeout=60) for url in cluster.ingress_urls]


def test_three_nodes_with_their_own_ports_and_data_dirs(harness: RestateTestHarness) -> None:
    cluster = harness.cluster
    assert len(cluster.nodes) == 3 and cluster.partitions == 4 and cluster.replication == 2
    pids = cluster.pids
    assert None not in pids and len(set(pids)) == 3
    ports = [p for n in cluster.nodes for p in (n.ingress_port, n.admin_port, n.node_port)]
    assert len(set(ports)) == 9
    low, high = ephemeral_port_range()
    assert not [p for p in ports if low <= p <= high], "restarts must find their ports free"
    dirs = {n.data_dir for n in cluster.nodes}
    assert len(dirs) == 3 and all(Path(d).parent == Path(cluster.data_dir) for d in dirs)
    assert harness.ingress_url == cluster.nodes[0].ingress_url


def test_every_node_serves_invocations_on_shared_state(harness: RestateTestHarness) -> None:
    key = uuid.uuid4().hex
    for i, client in enumerate(clients(harness.cluster)):
        assert client.call("Greeter", "greet", f"node {i}") == f"Hello, node {i}!"
        assert client.call("Counter", "add", 1, key=key) == i + 1
    assert [c.call("Counter", "get", key=key) for c in clients(harness.cluster)] == [3, 3, 3]


@pytest.mark.parametrize("victim", [2, 0], ids=["a-follower-node", "the-provisioning-node"])
def test_a_killed_node_does_not_stop_the_others_and_rejoins_on_its_own_data(
    harness: RestateTestHarness, victim: int
) -> None:
    cluster = harness.cluster
    node = cluster.nodes[victim]
    old_pid, ports, data_dir = node.pid, node.ports, node.data_dir
    assert old_pid is not None
    key = uuid.uuid4().hex
    live = [c for i, c in enumerate(clients(cluster)) if i != victim]
    live[0].call("Counter", "add", 10, key=key)

    cluster.kill_node(victim)
    assert node.pid is None and process_gone(old_pid)
    # The survivors take over the dead node's partitions (replication 2) and carry on.
    for client in live:
        client.call("Counter", "add", 1, key=key)
    assert live[1].call("Counter", "get", key=key) == 12

    cluster.start_node(victim)  # on its own data dir, node name and ports
    assert node.pid not in (None, old_pid)
    assert node.ports == ports and node.data_dir == data_dir
    back = IngressClient(node.ingress_url, timeout=60)
    assert back.call("Counter", "add", 1, key=key) == 13, "it sees what happened while it was down"
    assert [c.call("Counter", "get", key=key) for c in clients(cluster)] == [13, 13, 13]


def test_a_stopped_node_restarts_gracefully(harness: RestateTestHarness) -> None:
    cluster = harness.cluster
    old_pid = cluster.nodes[1].pid
    assert cluster.stop_node(1) == 0, "SIGTERM ends a node cleanly"
    key = uuid.uuid4().hex
    assert harness.ingress.call("Counter", "add", 5, key=key) == 5
    cluster.restart_node(1)
    assert cluster.nodes[1].pid not in (None, old_pid)
    assert IngressClient(cluster.nodes[1].ingress_url).call("Counter", "get", key=key) == 5


def test_a_cluster_is_torn_down_after_a_failure(always_suspend: bool) -> None:
    if always_suspend:
        pytest.skip("independent of the server's suspension mode: runs in the default pass only")
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="boom"), RestateCluster(nodes=2, partitions=2) as cluster:
        seen.update(pids=list(cluster.pids), data_dir=cluster.data_dir)
        assert len(cluster.running_nodes()) == 2
        raise RuntimeError("boom")
    pids = seen["pids"]
    assert isinstance(pids, list) and len(pids) == 2
    wait_until(lambda: all(process_gone(p) for p in pids), timeout=10, what="every node to be gone")
    assert not os.path.exists(str(seen["data_dir"]))


AT_EXIT_SCRIPT = """
import sys
from restate_sync.restate_server import RestateCluster
cluster = RestateCluster(nodes=2, partitions=1)
cluster.start()
print("PIDS", *cluster.pids, flush=True)
print("DIR", cluster.data_dir, flush=True)
raise SystemExit("the script ends without closing its cluster")
"""


def test_a_cluster_left_open_is_stopped_at_interpreter_exit(always_suspend: bool) -> None:
    if always_suspend:
        pytest.skip("independent of the server's suspension mode: runs in the default pass only")
    result = subprocess.run(
        [sys.executable, "-c", AT_EXIT_SCRIPT], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 1, result.stdout + result.stderr
    pids = [int(p) for p in result.stdout.split("PIDS", 1)[1].split("\n", 1)[0].split()]
    data_dir = result.stdout.split("DIR", 1)[1].split("\n", 1)[0].strip()
    assert len(pids) == 2
    wait_until(lambda: all(process_gone(p) for p in pids), timeout=10, what="both nodes to be gone")
    assert not os.path.exists(data_dir)
    assert "was not closed; stopping it at exit" in result.stderr
