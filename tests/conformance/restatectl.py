"""``restatectl`` for the conformance port: installed from npm (pinned, once, into the same cache
as restate-server) and used to read cluster tables that the admin API's ``/query`` does not
expose, such as ``partition_state``."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from restate_sync.restate_server import RESTATE_SERVER_VERSION, cache_dir

VERSION = RESTATE_SERVER_VERSION  # restatectl is released together with the server
PACKAGE = "@restatedev/restatectl"
_BINARY = Path("node_modules") / "@restatedev" / "restatectl-linux-x64" / "bin" / "restatectl"


class RestatectlUnavailable(RuntimeError):
    """restatectl could not be installed (no npm, no registry, another platform)."""


def find_restatectl() -> str:
    """The path of restatectl VERSION, installing it with npm into the cache on first use."""
    final = cache_dir() / f"restatectl-{VERSION}"
    binary = final / _BINARY
    if binary.is_file():
        return str(binary)
    npm = shutil.which("npm")
    if npm is None:
        raise RestatectlUnavailable("npm is not on PATH, so restatectl cannot be installed")
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f".restatectl-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing it right now
        if binary.is_file():
            return str(binary)
        with tempfile.TemporaryDirectory(
            dir=final.parent, prefix=".restatectl-", ignore_cleanup_errors=True
        ) as tmp:
            proc = subprocess.run(
                [
                    npm,
                    "install",
                    "--no-save",
                    "--no-audit",
                    "--no-fund",
                    "--prefix",
                    tmp,
                    f"{PACKAGE}@{VERSION}",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if proc.returncode != 0 or not (Path(tmp) / _BINARY).is_file():
                raise RestatectlUnavailable(
                    f"npm install {PACKAGE}@{VERSION} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
                )
            Path(tmp).rename(final)
    return str(binary)


def sql(node_url: str, query: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Run ``restatectl sql --json`` against one node (its node-to-node address)."""
    proc = subprocess.run(
        [find_restatectl(), "sql", "--json", "--address", node_url, query],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"restatectl sql failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    rows = json.loads(proc.stdout or "[]")
    assert isinstance(rows, list), rows
    return rows
