"""Suite-wide options, and the check that no test leaves a process behind (tests/leftovers.py)."""

from __future__ import annotations

import pytest

from .leftovers import pytest_configure, pytest_sessionfinish

__all__ = ["pytest_configure", "pytest_sessionfinish"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--always-suspend",
        action="store_true",
        default=False,
        help="run the end-to-end tests with restate-server's inactivity timeout at 0s, so every "
        "blocking await suspends and the invocation resumes by replay",
    )


def pytest_report_header(config: pytest.Config) -> str:
    mode = "always-suspend (inactivity timeout 0s)" if config.getoption("--always-suspend") else "default"
    return f"restate-server mode: {mode}"
