"""Fixtures that start a real restate-server and serve the test services to it.

``pytest --always-suspend`` runs the end-to-end suite with the server's inactivity timeout at
0: every await that has to wait suspends the invocation, which resumes by replaying its journal.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

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
