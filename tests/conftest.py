"""Suite-wide options, and the check that no test leaves a process behind (tests/leftovers.py).

``--always-suspend`` also switches restate-sync's pytest plugin (``--restate-always-suspend``), which
the tests that use its fixtures follow.
"""

from __future__ import annotations

import pytest

from . import leftovers
from .leftovers import pytest_sessionfinish

__all__ = ["pytest_sessionfinish"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--always-suspend",
        action="store_true",
        default=False,
        help="run the end-to-end tests with restate-server's inactivity timeout at 0s, so every "
        "blocking await suspends and the invocation resumes by replay",
    )


def pytest_configure(config: pytest.Config) -> None:
    leftovers.pytest_configure(config)
    if config.getoption("--always-suspend") and hasattr(config.option, "restate_always_suspend"):
        config.option.restate_always_suspend = True


def pytest_report_header(config: pytest.Config) -> str:
    mode = "always-suspend (inactivity timeout 0s)" if config.getoption("--always-suspend") else "default"
    return f"restate-server mode: {mode}"
