#!/usr/bin/env python
"""Regenerate restate_sync/protocol/protocol_pb2.py and protocol_pb2.pyi.

Usage (from anywhere; paths are resolved relative to the repository root):

    python scripts/gen_protocol.py          # regenerate in place
    python scripts/gen_protocol.py --check  # exit 1 if the committed files are stale

protoc is run through ``grpc_tools.protoc`` with ``-I restate_sync/protocol`` and a
relative path as working directory, so the descriptor's file name is just
``protocol.proto`` and no absolute path ends up in the generated code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR_REL = Path("restate_sync") / "protocol"
PROTO_NAME = "protocol.proto"
GENERATED = ("protocol_pb2.py", "protocol_pb2.pyi")


def generate(out_dir: Path) -> None:
    """Run protoc on protocol.proto, writing the generated files into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_DIR_REL.as_posix()}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        # Relative to -I, so the descriptor is registered as "protocol.proto".
        PROTO_NAME,
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"protoc failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip())
    for name in GENERATED:
        if not (out_dir / name).is_file():
            raise RuntimeError(f"protoc did not produce {name} in {out_dir}")


def check() -> list[str]:
    """Generate into a temporary directory and compare with the committed files.

    Returns a list of human-readable problems; empty means the files are fresh.
    """
    problems: list[str] = []
    committed_dir = REPO_ROOT / PROTO_DIR_REL
    with tempfile.TemporaryDirectory(prefix="gen_protocol_") as tmp:
        tmp_dir = Path(tmp)
        generate(tmp_dir)
        for name in GENERATED:
            committed = committed_dir / name
            rel = (PROTO_DIR_REL / name).as_posix()
            if not committed.is_file():
                problems.append(f"{rel} is missing")
                continue
            if committed.read_bytes() != (tmp_dir / name).read_bytes():
                problems.append(f"{rel} is stale (differs from what {PROTO_NAME} generates)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write anything; exit 1 if the committed generated files are stale",
    )
    args = parser.parse_args(argv)

    try:
        if args.check:
            problems = check()
            if problems:
                for p in problems:
                    print(f"gen_protocol: {p}", file=sys.stderr)
                print(
                    "gen_protocol: generated protobuf code is out of date; "
                    "run `python scripts/gen_protocol.py` and commit the result",
                    file=sys.stderr,
                )
                return 1
            print("gen_protocol: generated protobuf code is up to date")
            return 0
        generate(REPO_ROOT / PROTO_DIR_REL)
    except RuntimeError as exc:
        print(f"gen_protocol: {exc}", file=sys.stderr)
        return 2
    for name in GENERATED:
        print(f"gen_protocol: wrote {(PROTO_DIR_REL / name).as_posix()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
