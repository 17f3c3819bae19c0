"""Differential fuzzing: a short, bounded, reproducible run by default; a long one on request.

Each fuzz test is a hypothesis property run through :func:`run_fuzz`. By default it runs a fixed
number of examples with a fixed seed (the CI run: a few seconds per test). With
``FUZZ_SECONDS=N`` every fuzz test instead keeps drawing new random examples for N seconds::

    FUZZ_SECONDS=600 .venv/bin/pytest tests/fuzz -q -p no:cacheprovider    # ten minutes each

``FUZZ_EXAMPLES`` changes the example count of the short run. A failure prints the example
(hypothesis shrinks it first) and the blob to reproduce it with ``@reproduce_failure``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "0"))
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "800"))

_BATCH = 2000  # examples per hypothesis run in the long mode


def run_fuzz(prop: Any, examples: int | None = None) -> int:
    """Run the ``@given`` property ``prop``; returns how many hypothesis runs were made."""
    count = examples or FUZZ_EXAMPLES
    common: dict[str, Any] = {
        "deadline": None,
        "database": None,
        "suppress_health_check": [
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
        "print_blob": True,
    }
    if not FUZZ_SECONDS:
        settings(max_examples=count, derandomize=True, **common)(prop)()
        return 1
    deadline = time.monotonic() + FUZZ_SECONDS
    runs = 0
    long_run: Callable[[], None] = settings(max_examples=_BATCH, derandomize=False, **common)(prop)
    while time.monotonic() < deadline:
        long_run()
        runs += 1
    print(f"{getattr(prop, '__name__', prop)}: {runs} runs of {_BATCH} examples in {FUZZ_SECONDS:.0f}s")
    return runs
