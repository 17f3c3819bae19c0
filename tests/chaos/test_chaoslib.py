"""The chaos checks themselves, on hand-made records: each one can fail (no server here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .chaoslib import ChaosConfig, ChaosRun
from .services import start_value

STEPS = 3


def line(inv: str, step: int, prev: str, seen: int, value: str) -> dict[str, Any]:
    return {"id": inv, "step": step, "prev": prev, "seen": seen, "value": value, "pid": 1}


def healthy(inv: str, first_seen: int) -> list[dict[str, Any]]:
    prev, lines = start_value(inv), []
    for step in range(STEPS):
        value = f"{inv}:{step}"
        lines.append(line(inv, step, prev, first_seen + step, value))
        prev = value
    return lines


def analyse(tmp_path: Path, lines: list[dict[str, Any]], results: list[Any], counts: dict[str, Any]) -> Any:
    run = ChaosRun(ChaosConfig(name="check", invocations=len(results), keys=1, steps=STEPS), tmp_path)
    run.record_file.write_text("".join(json.dumps(entry) + "\n" for entry in lines))
    specs = [("k", f"i{n}") for n in range(len(results))]
    run._analyse(specs, results, counts)
    return run.report


def result(inv: str, first_seen: int) -> dict[str, Any]:
    return {"last": f"{inv}:{STEPS - 1}", "seen": list(range(first_seen, first_seen + STEPS))}


def test_clean_records_pass(tmp_path: Path) -> None:
    lines = healthy("i0", 0) + healthy("i1", STEPS)
    lines.insert(1, lines[0])  # step 0 of i0 ran twice before it was journaled: allowed
    report = analyse(tmp_path, lines, [result("i0", 0), result("i1", STEPS)], {"k": 2 * STEPS})
    assert report.problems == [] and report.reexecuted_steps == 1 and report.completed == 2


def test_a_replaced_journal_value_is_caught(tmp_path: Path) -> None:
    lines = healthy("i0", 0)
    lines.append(line("i0", 1, "i0:0-replaced", 1, "i0:1"))  # step 1 ran again on another step-0 value
    report = analyse(tmp_path, lines, [result("i0", 0)], {"k": STEPS})
    assert report.replaced_journal_values >= 1
    assert report.reexecuted_after_journaled == 1, "step 1 ran again after step 2 had started"


def test_a_lost_invocation_and_a_double_state_update_are_caught(tmp_path: Path) -> None:
    lines = healthy("i0", 0) + healthy("i1", 1)  # i1 started from a counter i0 had already used
    report = analyse(
        tmp_path, lines, [result("i0", 0), result("i1", 1), TimeoutError("gone")], {"k": 2 * STEPS}
    )
    assert report.lost == 1
    assert report.state_update_errors >= 1 and not report.ok
