"""The environment a restate-server node is configured with (environment variables only).

Kept apart from the process manager so that every node of a server — one today, several in a
cluster — is configured by the same function from its own ports and directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .processes import LOOPBACK

__all__ = ["DEFAULT_NODE_NAME", "NodePorts", "node_env"]

DEFAULT_NODE_NAME = "restate-sync"


@dataclass(frozen=True)
class NodePorts:
    """The three ports one node listens on, all on loopback."""

    ingress: int
    admin: int
    node: int

    @property
    def node_address(self) -> str:
        """The node's fabric address as restate spells it (``http://127.0.0.1:<node>/``)."""
        return f"http://{LOOPBACK}:{self.node}/"


def node_env(
    *,
    base_dir: str | Path,
    ports: NodePorts,
    partitions: int,
    node_name: str = DEFAULT_NODE_NAME,
    metadata_addresses: Sequence[str] | None = None,
    extra: Mapping[str, str] | None = None,
    inherited: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for one node: ``inherited`` (default ``os.environ``) minus ``RESTATE_*``,
    then the node's configuration, then ``extra`` (which wins).

    ``metadata_addresses`` are the metadata servers the node talks to; by default only itself.
    Inherited ``RESTATE_*`` variables are dropped so that runs stay hermetic.
    """
    base = Path(base_dir)
    source = os.environ if inherited is None else inherited
    env = {k: v for k, v in source.items() if not k.startswith("RESTATE_")}
    node = f"{LOOPBACK}:{ports.node}"
    env.update(
        {
            "RESTATE_NODE_NAME": node_name,
            "RESTATE_BASE_DIR": str(base),
            "RESTATE_LISTEN_MODE": "tcp",
            "RESTATE_BIND_ADDRESS": node,
            # Both accept host:port or a URL; restate normalises to http://host:port/ anyway.
            "RESTATE_ADVERTISED_ADDRESS": ports.node_address,
            # Must be a list (TOML/JSON array syntax); a bare address fails to parse (RT0002).
            "RESTATE_METADATA_CLIENT__ADDRESSES": json.dumps(
                list(metadata_addresses) if metadata_addresses is not None else [ports.node_address]
            ),
            "RESTATE_ADMIN__BIND_ADDRESS": f"{LOOPBACK}:{ports.admin}",
            "RESTATE_INGRESS__BIND_ADDRESS": f"{LOOPBACK}:{ports.ingress}",
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_DEFAULT_NUM_PARTITIONS": str(partitions),
            "RESTATE_LOG_DISABLE_ANSI_CODES": "true",
            # restate makes invoker-* directories under TMPDIR at every start and leaves them.
            "TMPDIR": str(base / "tmp"),
        }
    )
    env.update(extra or {})
    return env
