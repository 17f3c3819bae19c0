"""ServiceToServiceScopeConcurrency [v2] (§4.20): not run by this port; see harness.NOT_RUN."""

from __future__ import annotations

import pytest

from .harness import NOT_RUN, Suite

REASON = next(n.reason for n in NOT_RUN if n.scenario.startswith("ServiceToServiceScopeConcurrency"))


class TestServiceToServiceScopeConcurrency:
    def test_scopeAndLimitKeyArePropagatedOnServiceToServiceCalls(self, conformance_suite: Suite) -> None:
        pytest.skip(f"not run: {REASON}")
