"""pytest wiring for the conformance-suite port (see harness.py).

Run (the options exist only when pytest is pointed at this directory)::

    pytest tests/conformance --conformance-suite=default
    pytest tests/conformance --conformance-suite=alwaysSuspending
    pytest tests/conformance --conformance-suite=default,alwaysSuspending
    pytest tests/conformance --conformance-suite=threeNodes,threeNodesAlwaysSuspending
    pytest tests/conformance --conformance-suite=all
    CONFORMANCE_SUITE=default pytest          # same, from anywhere (environment variable)

Without ``--conformance-suite`` every test here is deselected (and a line says so), so a plain
``pytest`` run stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    ALL_SUITES,
    NOT_RUN,
    SUITES,
    ConformanceEnv,
    HarnessOptions,
    Suite,
    class_name_of,
)

HERE = Path(__file__).resolve().parent
SUITE_PARAM = "conformance_suite"

_outcomes: dict[str, tuple[str, str]] = {}  # nodeid -> (suite, outcome)
_startup_times: list[tuple[str, str, float]] = []
_deselected_count = 0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "Restate SDK conformance suite (tests/conformance)")
    group.addoption(
        "--conformance-suite",
        default=None,
        metavar="NAME[,NAME...]|all",
        help="run the conformance port in these suite configurations: " + ", ".join(ALL_SUITES) + ", or all",
    )
    group.addoption(
        "--conformance-serve",
        default=None,
        metavar="PATH",
        help="test-services entry point (default: test-services/serve.py in the repository)",
    )
    group.addoption(
        "--conformance-partitions",
        type=int,
        default=24,
        help="RESTATE_DEFAULT_NUM_PARTITIONS unless the suite sets it (default 24 = restate's own default)",
    )
    group.addoption(
        "--conformance-rust-log",
        default=None,
        help="RUST_LOG for restate-server (default: info,restate_invoker=debug)",
    )
    group.addoption(
        "--conformance-custom-tests-file",
        default=None,
        metavar="FILE",
        help='the Custom hook\'s test list, JSON (or YAML with PyYAML): {"tests":[{"name":..,"command":..}]}',
    )
    group.addoption(
        "--conformance-keep-data",
        action="store_true",
        default=False,
        help="keep every restate-server data directory",
    )


def _in_here(path: Any) -> bool:
    try:
        Path(str(path)).resolve().relative_to(HERE)
    except ValueError:
        return False
    return True


def selected_suites(config: pytest.Config) -> list[Suite]:
    # The environment variable also works where the option can't be given (a plain `pytest` run
    # from the repository root only knows this directory's options once it is collected).
    raw = config.getoption("conformance_suite", None) or os.environ.get("CONFORMANCE_SUITE")
    if not raw:
        return []
    names: list[str] = []
    for part in str(raw).split(","):
        part = part.strip()
        if not part:
            continue
        if part == "all":
            names.extend(ALL_SUITES)
        elif part in SUITES:
            names.append(part)
        else:
            raise pytest.UsageError(
                f"--conformance-suite: unknown suite {part!r}; choose from {', '.join(ALL_SUITES)} or all"
            )
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return [SUITES[n] for n in seen]


def pytest_configure(config: pytest.Config) -> None:
    # `timeout ... pytest` and CI cancellations send SIGTERM, which would end Python without
    # running fixture teardown or atexit hooks and leave restate-server/serve.py processes behind.
    # Turn it into a KeyboardInterrupt: pytest then tears every fixture down.
    if selected_suites(config) and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def _interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(signal.SIGTERM, _interrupt)


def _custom_tests(config: pytest.Config) -> list[dict[str, str]]:
    path = config.getoption("conformance_custom_tests_file", None)
    if not path:
        return []
    text = Path(path).read_text()
    try:
        data = json.loads(text)
    except ValueError:
        import yaml  # type: ignore[import-untyped]  # only needed for YAML files

        data = yaml.safe_load(text)
    return [{"name": str(t["name"]), "command": str(t["command"])} for t in data["tests"]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.cls is None or SUITE_PARAM not in metafunc.fixturenames:
        return
    cls = class_name_of(metafunc.cls)
    method = metafunc.function.__name__.removeprefix("test_")
    suites = [s.name for s in selected_suites(metafunc.config) if s.includes(cls, method)]
    metafunc.parametrize(SUITE_PARAM, suites or [None], indirect=True, scope="class", ids=lambda s: str(s))
    if "custom_test" in metafunc.fixturenames:
        entries = _custom_tests(metafunc.config)
        metafunc.parametrize(
            "custom_test", entries or [None], ids=[e["name"] for e in entries] if entries else ["none"]
        )


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[Any]) -> None:
    global _deselected_count
    suites = selected_suites(config)
    order = {s.name: i for i, s in enumerate(suites)}
    keep: list[Any] = []
    drop: list[Any] = []
    for item in items:
        if not _in_here(item.path):
            keep.append(item)
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        if not suites or params.get(SUITE_PARAM) is None or params.get("custom_test", "") is None:
            drop.append(item)
            continue
        item.add_marker(pytest.mark.conformance)
        if item.get_closest_marker("timeout") is None:
            # JUnit's default per-method timeout. A cluster takes ~10 s to be ready: there the
            # 30 s cover the test method alone (the class's start has its own bound), as in JUnit.
            multi_node = SUITES[params[SUITE_PARAM]].nodes > 1
            item.add_marker(pytest.mark.timeout(30, func_only=multi_node))
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        _deselected_count = len(drop) if not suites else 0
    # Group by suite (stable: each class's items under one suite stay together).
    here = [i for i in keep if _in_here(i.path)]
    here.sort(key=lambda i: order.get(i.callspec.params[SUITE_PARAM], 0))
    it = iter(here)
    items[:] = [next(it) if _in_here(i.path) else i for i in keep]


# ---- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="class")
def conformance_suite(request: pytest.FixtureRequest) -> Suite:
    return SUITES[request.param]


@pytest.fixture(scope="class")
def conf(
    request: pytest.FixtureRequest, conformance_suite: Suite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConformanceEnv]:
    """A fresh restate-server and test-services process for this class under this suite."""
    suite = conformance_suite
    if suite.not_run_reason:
        pytest.skip(f"not run ({suite.name}): {suite.not_run_reason}")
    config = request.config
    serve = config.getoption("conformance_serve", None)
    options = HarnessOptions(
        partitions=config.getoption("conformance_partitions", 24) or 24,
        keep_data=bool(config.getoption("conformance_keep_data", False)),
    )
    if serve:
        options.serve_script = Path(serve).resolve()
    rust_log = config.getoption("conformance_rust_log", None)
    if rust_log:
        options.rust_log = rust_log
    cls = class_name_of(request.cls)
    log_dir = tmp_path_factory.mktemp(f"{suite.name}-{cls}", numbered=True)
    env = ConformanceEnv(suite, cls, log_dir, options)
    try:
        env.start()
        _startup_times.append((suite.name, cls, env.startup_seconds))
        yield env
    finally:
        env.close()


@pytest.fixture(autouse=True)
def _conformance_log_marks(request: pytest.FixtureRequest) -> None:
    if "conf" in request.fixturenames:
        env = request.getfixturevalue("conf")
        env.mark_test_start()


# ---- reporting --------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if not _in_here(item.path):
        return
    params = getattr(getattr(item, "callspec", None), "params", {})
    suite = params.get(SUITE_PARAM)
    if suite is None:
        return
    prev = _outcomes.get(item.nodeid, (suite, ""))[1]
    if rep.failed:
        _outcomes[item.nodeid] = (suite, "failed")
        env = getattr(item, "funcargs", {}).get("conf")
        if isinstance(env, ConformanceEnv):
            env.failed = True
            for title, text in env.diagnostics():
                rep.sections.append((title, text))
            rep.sections.append(("conformance logs", str(env.log_dir)))
    elif rep.skipped and prev != "failed":
        _outcomes[item.nodeid] = (suite, "not run")
    elif rep.when == "call" and rep.passed and prev != "failed":
        _outcomes[item.nodeid] = (suite, "passed")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    suites = selected_suites(config)
    tr = terminalreporter
    if not suites:
        if _deselected_count:
            tr.write_line(
                f"restate conformance: {_deselected_count} tests deselected because --conformance-suite "
                "(or CONFORMANCE_SUITE) was not given; run e.g. "
                "`pytest tests/conformance --conformance-suite=default` "
                f"(suites: {', '.join(ALL_SUITES)}, all)"
            )
        return
    tr.section("restate conformance")
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for suite, outcome in _outcomes.values():
        counts[suite][outcome] += 1
    tr.write_line(f"{'suite':<30}{'passed':>8}{'failed':>8}{'not run':>9}")
    for s in suites:
        c = counts.get(s.name, {})
        tr.write_line(f"{s.name:<30}{c.get('passed', 0):>8}{c.get('failed', 0):>8}{c.get('not run', 0):>9}")
    relevant = [n for n in NOT_RUN if any(s.name in n.suites for s in suites)]
    if relevant:
        tr.write_line("not run (by design):")
        for n in relevant:
            tr.write_line(f"  - {n.scenario} [{', '.join(n.suites)}]: {n.reason}")
    if _startup_times:
        times = sorted(t for _, _, t in _startup_times)
        slow = max(_startup_times, key=lambda x: x[2])
        tr.write_line(
            f"per-class startup (server + services + registration): {len(times)} classes, "
            f"median {times[len(times) // 2]:.2f}s, max {slow[2]:.2f}s ({slow[0]}/{slow[1]})"
        )
