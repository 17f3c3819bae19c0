"""Fixtures that start a real restate-server and serve the test services to it.

``pytest --always-suspend`` runs the end-to-end suite with the server's inactivity timeout at
0: every await that has to wait suspends the invocation, which resumes by replaying its journal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import restate_sync.testing

from . import api_services, api_trust_services, services


@pytest.fixture(scope="session")
def always_suspend(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--always-suspend"))


@pytest.fixture(scope="session")
def env(always_suspend: bool) -> Iterator[restate_sync.testing.TestEnvironment]:
    with restate_sync.testing.start(
        *services.ALL, *api_services.ALL, *api_trust_services.ALL, always_suspend=always_suspend
    ) as environment:
        yield environment


@pytest.fixture
def key() -> str:
    """A key no other test uses."""
    return uuid.uuid4().hex


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """A failing test shows the diagnostics of each fixture value that offers them
    (``diagnostics() -> [(title, text)]``, e.g. the contract services' logs and unfinished
    invocations)."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        diagnostics = getattr(value, "diagnostics", None)
        if callable(diagnostics):
            report.sections.extend(diagnostics())
