"""Options of the chaos tests: ``--chaos-scale`` (the long form) and ``--chaos-report``.

pytest tests/chaos                                   # the short form (CI)
pytest tests/chaos --chaos-scale=10 --chaos-report=chaos.json   # the long form: 10x the load
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .chaoslib import ChaosReport

_reports: list[ChaosReport] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "faults under load (tests/chaos)")
    group.addoption("--chaos-scale", type=int, default=1, help="multiply the load (invocations, keys) by N")
    group.addoption("--chaos-report", default=None, metavar="FILE", help="write every run's figures as JSON")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scale = max(1, int(config.getoption("--chaos-scale", 1) or 1))
    for item in items:
        if "chaos_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(300 * scale))


@pytest.fixture
def chaos_scale(request: pytest.FixtureRequest) -> int:
    return max(1, int(request.config.getoption("--chaos-scale") or 1))


@pytest.fixture
def chaos_run() -> Any:
    """Record each report for the summary and the JSON file."""
    return _reports.append


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _reports:
        return
    terminalreporter.section("chaos")
    for report in _reports:
        terminalreporter.write_line(("OK   " if report.ok else "FAIL ") + report.summary())
    path = config.getoption("--chaos-report", None)
    if path:
        Path(path).write_text(json.dumps([r.as_dict() for r in _reports], indent=2) + "\n")
        terminalreporter.write_line(f"chaos figures written to {path}")
