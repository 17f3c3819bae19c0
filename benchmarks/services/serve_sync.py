"""Launch ``restate-sync serve`` for the benchmarks, optionally under cProfile.

    .venv/bin/python benchmarks/services/serve_sync.py --log-level warning serve \
        benchmarks/services/sync_services.py:endpoint --bind 127.0.0.1:9080 --grace 1

Arguments are those of the ``restate-sync`` command line. With ``BENCH_CPROFILE=<path>`` in the
environment the whole server runs under :mod:`cProfile` and the stats are written to ``<path>``
when it stops (SIGTERM/SIGINT). This switch exists only here, in the benchmark launcher; the
default profiler of ``benchmarks/run.py`` is py-spy, which attaches to the running process.
"""

from __future__ import annotations

import os
import sys

from restate_sync.cli import main as cli_main


def main() -> int:
    path = os.environ.get("BENCH_CPROFILE")
    if not path:
        return cli_main(sys.argv[1:])
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return cli_main(sys.argv[1:])
    finally:
        profiler.disable()
        profiler.dump_stats(path)


if __name__ == "__main__":
    sys.exit(main())
