"""Custom (§4.4): a hook, not a scenario. Runs shell commands from
``--conformance-custom-tests-file`` against a deployment binding every service (SERVICES
unset), with RESTATE_INGRESS_URL and RESTATE_ADMIN_URL set; passes on exit code 0. Without the
option there is nothing to run and the test is deselected, as in the Kotlin runner."""

from __future__ import annotations

import os
import subprocess

import pytest

from .harness import ConformanceEnv


class TestCustom:
    @pytest.mark.timeout(300)
    def test_run(self, conf: ConformanceEnv, custom_test: dict[str, str]) -> None:
        env = dict(
            os.environ, RESTATE_INGRESS_URL=conf.ingress_url + "/", RESTATE_ADMIN_URL=conf.admin_url + "/"
        )
        proc = subprocess.run(
            ["sh", "-c", custom_test["command"]],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=290,
            check=False,
        )
        output = proc.stdout.decode(errors="replace")
        assert proc.returncode == 0, (
            f"Command {custom_test['command']!r} failed with exit code {proc.returncode}\n{output[-4000:]}"
        )
