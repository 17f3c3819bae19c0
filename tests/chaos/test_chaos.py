"""Faults under load, end to end: nothing lost, no journaled step replaced, every state update
applied exactly once (see chaoslib.py for what each check proves)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .chaoslib import SHORT_SINGLE_NODE, SHORT_THREE_NODES, ChaosConfig, ChaosReport, ChaosRun

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("config", [SHORT_SINGLE_NODE, SHORT_THREE_NODES], ids=["single-node", "three-nodes"])
def test_faults_under_load_lose_nothing_and_replace_nothing(
    config: ChaosConfig, chaos_scale: int, chaos_run: Callable[[ChaosReport], None], tmp_path: Path
) -> None:
    run = ChaosRun(config.scaled(chaos_scale) if chaos_scale > 1 else config, tmp_path / "run")
    report = run.run()
    chaos_run(report)
    print(report.summary())
    assert report.faults_injected == len(config.faults), (
        f"not every fault hit while in flight:\n{report.summary()}"
    )
    assert report.ok, "\n".join([report.summary(), *report.problems, run.diagnostics()])
    assert report.executions >= report.invocations * report.steps
