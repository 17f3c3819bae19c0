"""The SDK imports OpenTelemetry only when ``restate_sync.otel`` is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_after(statement: str) -> list[str]:
    code = (
        f"{statement}\n"
        "import sys\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return out.split()


def test_the_sdk_does_not_import_opentelemetry() -> None:
    statement = (
        "import restate_sync, restate_sync.testing, restate_sync.middleware, restate_sync.logs\n"
        "restate_sync.endpoint()"
    )
    assert imported_after(statement) == []


def test_the_otel_module_does() -> None:
    pytest.importorskip("opentelemetry", reason="needs the otel extra")
    assert "opentelemetry.trace" in imported_after("import restate_sync.otel")
