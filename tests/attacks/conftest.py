"""Fixtures of the attack suite (see ``harness.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .harness import Target


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    """One server process with the default limits, shared by a module's attacks."""
    with Target() as served:
        yield served
