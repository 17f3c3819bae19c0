"""The environment a restate-server node gets (restate_sync.restate_server.config)."""

from __future__ import annotations

import json

from restate_sync.restate_server.config import NodePorts, node_env

PORTS = NodePorts(ingress=18080, admin=19070, node=15122)


def test_node_env_configures_the_node_and_drops_inherited_restate_settings() -> None:
    env = node_env(
        base_dir="node-data",
        ports=PORTS,
        partitions=3,
        inherited={"PATH": "bin-dir", "RESTATE_CLUSTER_NAME": "someone-elses"},
    )
    assert env["PATH"] == "bin-dir"
    assert "RESTATE_CLUSTER_NAME" not in env, "runs stay hermetic"
    assert env["RESTATE_INGRESS__BIND_ADDRESS"] == "127.0.0.1:18080"
    assert env["RESTATE_ADMIN__BIND_ADDRESS"] == "127.0.0.1:19070"
    assert env["RESTATE_BIND_ADDRESS"] == "127.0.0.1:15122"
    assert env["RESTATE_ADVERTISED_ADDRESS"] == "http://127.0.0.1:15122/"
    assert json.loads(env["RESTATE_METADATA_CLIENT__ADDRESSES"]) == ["http://127.0.0.1:15122/"]
    assert env["RESTATE_DEFAULT_NUM_PARTITIONS"] == "3"
    assert env["RESTATE_BASE_DIR"] == "node-data"
    assert env["TMPDIR"] == "node-data/tmp"


def test_extra_settings_win_and_metadata_peers_can_be_given() -> None:
    peers = ["http://127.0.0.1:1/", "http://127.0.0.1:2/"]
    env = node_env(
        base_dir="node-data",
        ports=PORTS,
        partitions=1,
        node_name="n2",
        metadata_addresses=peers,
        extra={"RESTATE_DEFAULT_NUM_PARTITIONS": "7", "RUST_LOG": "debug"},
        inherited={},
    )
    assert env["RESTATE_NODE_NAME"] == "n2"
    assert json.loads(env["RESTATE_METADATA_CLIENT__ADDRESSES"]) == peers
    assert env["RESTATE_DEFAULT_NUM_PARTITIONS"] == "7"
    assert env["RUST_LOG"] == "debug"
