"""Ports, readiness probes and node settings of a restate cluster (no server is started here)."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest

from restate_sync.restate_server import RestateCluster, processes
from restate_sync.restate_server.cluster import CLUSTER_ROLES, cluster_node_env
from restate_sync.restate_server.processes import (
    STABLE_PORT_MIN,
    ProcessError,
    ephemeral_port_range,
    port_is_free,
    stable_free_ports,
)
from restate_sync.restate_server.readiness import (
    PARTITION_KEY_SPACE,
    partition_probe_keys,
    probe_awakeable_id,
)

# ---- ports outside the ephemeral range ----------------------------------------------------------


def test_the_ephemeral_range_is_read_from_the_kernel_or_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "ip_local_port_range"
    fake.write_text("40000\t50000\n")
    monkeypatch.setattr(processes, "_EPHEMERAL_RANGE_FILE", fake)
    assert ephemeral_port_range() == (40000, 50000)
    fake.write_text("nonsense")
    assert ephemeral_port_range() == (32768, 60999)
    monkeypatch.setattr(processes, "_EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert ephemeral_port_range() == (32768, 60999)


def test_stable_ports_are_free_distinct_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_port_range()
    ports = stable_free_ports(9)
    assert len(set(ports)) == 9
    for port in ports:
        assert STABLE_PORT_MIN <= port <= 65535
        assert not low <= port <= high, f"{port} is in the ephemeral range {low}-{high}"
        assert port_is_free(port)
    assert not set(ports) & set(stable_free_ports(9)), "handed-out ports are reserved for a while"
    assert stable_free_ports(0) == []


def test_stable_ports_fail_clearly_when_there_is_no_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "ip_local_port_range"
    fake.write_text(f"{STABLE_PORT_MIN} 65535\n")
    monkeypatch.setattr(processes, "_EPHEMERAL_RANGE_FILE", fake)
    with pytest.raises(ProcessError, match="no ports outside the ephemeral range"):
        stable_free_ports(1)


def test_stable_ports_skip_ports_that_are_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    answers: dict[int, bool] = {}

    def every_other_is_taken(port: int, host: str = "127.0.0.1") -> bool:
        answers[port] = len(answers) % 2 == 1
        return answers[port]

    monkeypatch.setattr(processes, "port_is_free", every_other_is_taken)
    ports = stable_free_ports(3, rng=random.Random(7))
    assert len(set(ports)) == 3
    assert all(answers[p] for p in ports), "only ports seen free are handed out"
    assert not all(answers.values()), "taken ones were skipped"


# ---- readiness probes ---------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 24, 1000])
def test_probe_keys_fall_into_each_equally_sized_partition(partitions: int) -> None:
    keys = partition_probe_keys(partitions)
    assert len(keys) == partitions
    width = PARTITION_KEY_SPACE / partitions
    assert [int(k // width) for k in keys] == list(range(partitions))
    assert all(0 <= k < PARTITION_KEY_SPACE for k in keys)


def test_probe_keys_need_a_partition() -> None:
    with pytest.raises(ValueError):
        partition_probe_keys(0)


def test_probe_awakeable_id_encodes_the_partition_key_uuid_and_entry() -> None:
    key = partition_probe_keys(4)[2]
    uuid_bytes = bytes(range(16))
    awakeable = probe_awakeable_id(key, uuid_bytes, entry_index=7)
    assert awakeable.startswith("prom_1")
    encoded = awakeable.removeprefix("prom_1")
    assert len(encoded) == 38 and "=" not in encoded
    raw = base64.urlsafe_b64decode(encoded + "==")
    assert len(raw) == 28
    assert int.from_bytes(raw[:8], "big") == key
    assert raw[8:24] == uuid_bytes
    assert int.from_bytes(raw[24:], "big") == 7
    assert probe_awakeable_id(key) != probe_awakeable_id(key), "a fresh invocation uuid each time"
    with pytest.raises(ValueError):
        probe_awakeable_id(PARTITION_KEY_SPACE)
    with pytest.raises(ValueError):
        probe_awakeable_id(0, b"short")


# ---- node settings ------------------------------------------------------------------------------


def test_only_the_first_node_provisions_and_every_node_has_every_role() -> None:
    first = cluster_node_env(cluster_name="c", provisions=True, replication=2)
    other = cluster_node_env(cluster_name="c", provisions=False, replication=2)
    assert first["RESTATE_AUTO_PROVISION"] == "true" and other["RESTATE_AUTO_PROVISION"] == "false"
    for env in (first, other):
        assert env["RESTATE_CLUSTER_NAME"] == "c"
        assert env["RESTATE_ROLES"] == CLUSTER_ROLES
        assert env["RESTATE_METADATA_SERVER__TYPE"] == "replicated"
        assert env["RESTATE_BIFROST__DEFAULT_PROVIDER"] == "replicated"
        assert env["RESTATE_DEFAULT_REPLICATION"] == "2"


def test_a_cluster_configures_three_distinct_nodes_that_know_each_other(tmp_path: Path) -> None:
    cluster = RestateCluster(
        3, data_dir=str(tmp_path), binary="restate-server-not-started", env={"RUST_LOG": "warn"}
    )
    cluster._root = tmp_path
    nodes = cluster._make_nodes("restate-server-not-started")
    try:
        ports = [p for node in nodes for p in (node.ingress_port, node.admin_port, node.node_port)]
        assert len(set(ports)) == 9
        envs = [node.server_env() for node in nodes]
        addresses = [f"http://127.0.0.1:{node.node_port}/" for node in nodes]
        assert [e["RESTATE_NODE_NAME"] for e in envs] == ["node-1", "node-2", "node-3"]
        assert [e["RESTATE_AUTO_PROVISION"] for e in envs] == ["true", "false", "false"]
        assert len({e["RESTATE_BASE_DIR"] for e in envs}) == 3
        for env in envs:
            assert json.loads(env["RESTATE_METADATA_CLIENT__ADDRESSES"]) == addresses
            assert env["RESTATE_CLUSTER_NAME"] == cluster.cluster_name
            assert env["RESTATE_DEFAULT_NUM_PARTITIONS"] == "4"
            assert env["RUST_LOG"] == "warn"
    finally:
        cluster.close()


def test_cluster_options_are_checked() -> None:
    with pytest.raises(ValueError, match="nodes"):
        RestateCluster(0)
    with pytest.raises(ValueError, match="replication"):
        RestateCluster(2, replication=3)
    assert RestateCluster(1).replication == 1
    assert RestateCluster(3).replication == 2
    assert RestateCluster(3, env={"RESTATE_DEFAULT_NUM_PARTITIONS": "7"}).partitions == 7
