"""The differential suite needs Restate's shared core (the ``restate-sdk`` wheel of the dev extra)."""

from __future__ import annotations

import pytest

from restate_sync.protocol.vm import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION

from .oracle import core_versions, load_core


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    core, reason = load_core()
    if core is not None:
        return
    skip = pytest.mark.skip(reason=f"differential suite: {reason}")
    for item in items:
        if "tests/differential" in item.nodeid.replace("\\", "/"):
            item.add_marker(skip)


def shared_versions() -> list[int]:
    """Every protocol version both VMs speak (V5.. on both sides; the core may go further)."""
    core, _ = load_core()
    if core is None:
        return list(range(MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION + 1))
    low, high = core_versions()
    return list(range(max(low, MIN_PROTOCOL_VERSION), min(high, MAX_PROTOCOL_VERSION) + 1))


def pytest_report_header(config: pytest.Config) -> str:
    core, reason = load_core()
    if core is None:
        return f"differential oracle: unavailable ({reason})"
    return f"differential oracle: shared core of restate-sdk {core.SDK_VERSION}, protocol versions {shared_versions()}"
