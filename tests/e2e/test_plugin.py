"""restate-sync's pytest plugin, run the way a user runs it: pytest in a fresh project directory,
the plugin loaded from the installed entry point, a real restate-server per configuration.

(The project's own e2e tests use it too: ``test_logs.py``, ``test_middleware.py``.)
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

USER_TESTS = """
import pytest

import restate_sync as restate
from restate_sync.client import IngressError

ATTEMPTS = []
SERVERS = {}


class Greeter(restate.Service):
    @restate.handler
    def greet(ctx: restate.Context, name: str) -> str:
        return f"Hello, {name}!"

    @restate.handler
    def flaky(ctx: restate.Context, name: str) -> str:
        ATTEMPTS.append(ctx.invocation_id)
        raise RuntimeError("boom")

    @restate.handler
    def nap(ctx: restate.Context) -> str:
        ctx.sleep(0.01).result()
        return "rested"


restate_services = [Greeter]


def inactivity_timeout(server):
    return server.server_env().get("RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT")


def test_greet(restate_ingress):
    assert restate_ingress.call("Greeter", "greet", "World") == "Hello, World!"


def test_option_decides_by_default(restate_env, restate_always_suspend, request):
    assert restate_always_suspend is request.config.getoption("--restate-always-suspend")
    assert (inactivity_timeout(restate_env.server) == "0s") is restate_always_suspend
    SERVERS.setdefault(restate_always_suspend, restate_env.server)


@pytest.mark.restate(always_suspend="both")
def test_both_ways(restate_env, restate_always_suspend):
    assert restate_env.always_suspend is restate_always_suspend
    assert (inactivity_timeout(restate_env.server) == "0s") is restate_always_suspend
    assert restate_env.ingress.call("Greeter", "nap") == "rested"
    # one server per configuration for the whole session
    assert SERVERS.setdefault(restate_always_suspend, restate_env.server) is restate_env.server


@pytest.mark.restate(always_suspend=True)
def test_marker_wins(restate_always_suspend):
    assert restate_always_suspend is True


@pytest.mark.restate(disable_retries=True)
def test_disable_retries(restate_ingress, restate_admin):
    with pytest.raises(IngressError):
        restate_ingress.call("Greeter", "flaky", "x", timeout=30)
    assert len(ATTEMPTS) == 1
"""

NO_SERVICES = """
def test_forgot_to_bind(restate_ingress):
    pass
"""


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "test_greeter.py").write_text(textwrap.dedent(USER_TESTS))
    return tmp_path


@pytest.mark.parametrize("option", [[], ["--restate-always-suspend"]], ids=["default", "option"])
def test_user_suite_passes(project: Path, option: list[str]) -> None:
    result = run_pytest(project, *option)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_both_ways[streaming] PASSED" in result.stdout
    assert "test_both_ways[always-suspend] PASSED" in result.stdout
    assert "6 passed" in result.stdout


def test_a_module_without_services_is_told_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "test_nothing.py").write_text(NO_SERVICES)
    result = run_pytest(tmp_path)
    assert result.returncode != 0
    assert "binds no services" in result.stdout + result.stderr
    assert "restate_services = [MyService" in result.stdout + result.stderr


def test_the_options_are_listed(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--help")
    assert "--restate-always-suspend" in result.stdout
    markers = run_pytest(tmp_path, "--markers")
    assert "@pytest.mark.restate(always_suspend=None" in markers.stdout
