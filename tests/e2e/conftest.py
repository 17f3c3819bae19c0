"""Fixtures that start a real restate-server and serve the test services to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import restate_sync.testing

from . import services


@pytest.fixture(scope="session")
def env() -> Iterator[restate_sync.testing.TestEnvironment]:
    with restate_sync.testing.start(*services.ALL) as environment:
        yield environment


@pytest.fixture
def key() -> str:
    """A key no other test uses."""
    return uuid.uuid4().hex
