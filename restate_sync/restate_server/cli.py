"""``python -m restate_sync.restate_server {install,path,version}`` (the Makefile and CI use it)."""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import ServerBinaryNotFound
from .install import RESTATE_SERVER_VERSION, find_server_binary

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Install (if needed) and print the binary path, print it without installing, or the pin."""
    parser = argparse.ArgumentParser(
        prog="python -m restate_sync.restate_server",
        description=f"Find or install restate-server {RESTATE_SERVER_VERSION}.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install into the cache if needed, then print the binary path")
    sub.add_parser("path", help="print the binary path (never installs; exit 1 if there is none)")
    sub.add_parser("version", help="print the pinned restate-server version")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "version":
        print(RESTATE_SERVER_VERSION)
        return 0
    try:
        path = find_server_binary(install=args.command == "install")
    except ServerBinaryNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0
