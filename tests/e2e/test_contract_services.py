"""The contract services in ``test-services/`` beyond what the conformance port drives.

``test-services/serve.py`` runs as a subprocess (from a directory outside the repository, to show
it works from any cwd) against a real restate-server, through the conformance harness's
:class:`ServicesProcess` and ingress client. The scenarios of the ported conformance suite are in
``tests/conformance``; what is here is what those scenarios leave out: the handler kinds the
contract declares, handlers no scenario calls (``Counter.reset``, ``ListObject.get``, the
interpreter's bookkeeping, ``ObjectInterpreterL*``, the scenario-local ``BlockingProxy`` and
``Blocker``), exact error renderings, and ``serve.py``'s own start contract (``SERVICES``).

Runs in the default e2e pass; the ``--always-suspend`` pass runs it again with the inactivity
timeout at 0, once with eager and once with lazy state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from restate_sync.client import AdminClient
from restate_sync.restate_server import RestateServer
from restate_sync.restate_server.processes import free_port, tail_file

from ..conformance.harness import (
    CONTRACT_HANDLERS,
    DEFAULT_SERVE_SCRIPT,
    INACTIVITY_0,
    INTERPRETER,
    LAZY_STATE,
    Ingress,
    ServicesProcess,
    contract_problems,
    eventually,
    expect_http_error,
    json_bytes,
    new_key,
)

pytestmark = pytest.mark.e2e

MANIFEST = "application/vnd.restate.endpointmanifest.v3+json"
SCENARIO_LOCAL = ("BlockingProxy", "Blocker")
OBJECT_INTERPRETERS = ("ObjectInterpreterL0", "ObjectInterpreterL1", "ObjectInterpreterL2")
HELPER = "ServiceInterpreterHelper"
#: The interpreter's ThrowingSideEffect fails at random, half of its attempts. restate-server's
#: default backoff (500 ms, doubling, up to 1 min) makes k failures in a row cost 0.5 * (2**k - 1)
#: seconds: seven in a row (1 in 128) outlast the ingress client's 60 s. Retrying every 10-100 ms
#: keeps the randomness and bounds its cost.
QUICK_RETRIES = {
    "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "10ms",
    "RESTATE_DEFAULT_RETRY_POLICY__MAX_INTERVAL": "100ms",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Eager state always; with ``--always-suspend`` lazy state too (restate's lazyState suites)."""
    if "state_mode" in metafunc.fixturenames:
        modes = ["eager", "lazy"] if metafunc.config.getoption("--always-suspend") else ["eager"]
        metafunc.parametrize("state_mode", modes, scope="module")


@dataclass
class Contract:
    server: RestateServer
    services: ServicesProcess
    scenario_local: ServicesProcess
    registered: dict[str, Any]
    ingress: Ingress
    suspending: bool

    def diagnostics(self) -> list[tuple[str, str]]:
        """What a failing test shows: the unfinished invocations and the end of each log."""
        sections = [
            (f"{path}, last 60 lines", tail_file(path, 60) or "<nothing>")
            for path in (self.server.log_path, self.services.log_path, self.scenario_local.log_path)
        ]
        try:
            rows = AdminClient(self.server.admin_url, timeout=3).query(
                "SELECT id, target, status, retry_count, last_failure "
                "FROM sys_invocation WHERE status != 'completed' LIMIT 30"
            )
            sections.append(("unfinished invocations", "\n".join(map(json.dumps, rows)) or "none"))
        except Exception as exc:  # the diagnostics of a failure must not raise one of their own
            sections.append(("unfinished invocations", f"<query failed: {exc!r}>"))
        return sections


def services_process(
    log_dir: Path, name: str, services: list[str] | None, ingress_url: str = "", **env: str
) -> ServicesProcess:
    return ServicesProcess(
        DEFAULT_SERVE_SCRIPT,
        free_port(),
        services,
        env,
        log_dir / f"{name}.log",
        ingress_url,
        cwd=log_dir,  # outside the repository: serve.py must find its services by itself
    )


@pytest.fixture(scope="module")
def contract(
    state_mode: str, always_suspend: bool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Contract]:
    server_env = {**QUICK_RETRIES, **(INACTIVITY_0 if always_suspend else {})}
    if state_mode == "lazy":
        server_env.update(LAZY_STATE)
    log_dir = tmp_path_factory.mktemp(f"contract-{state_mode}")
    with RestateServer(env=server_env, log_file=str(log_dir / "restate-server.log")) as server:
        main = services_process(log_dir, "test-services", None, server.ingress_url)
        local = services_process(log_dir, "scenario-local", list(SCENARIO_LOCAL), server.ingress_url)
        try:
            for process in (main, local):
                process.start()
            for process in (main, local):
                process.wait_listening()
            registered = server.register_deployment(main.url)
            server.register_deployment(local.url)
            yield Contract(server, main, local, registered, Ingress(server.ingress_url), always_suspend)
        finally:
            local.close()
            main.close()


def interpret(*commands: dict[str, Any]) -> dict[str, Any]:
    return {"commands": list(commands)}


def create_awakeable(key: str) -> dict[str, Any]:
    return {"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": key}}


# ---- serve.py's start contract ----------------------------------------------------------------


def test_serve_py_rejects_an_unknown_service_name(tmp_path: Path) -> None:
    env = {**os.environ, "SERVICES": "Counter,NoSuchService", "PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, str(DEFAULT_SERVE_SCRIPT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "NoSuchService" in done.stderr and "Counter" in done.stderr, done.stderr


def test_serve_py_binds_only_the_services_named(tmp_path: Path) -> None:
    process = services_process(tmp_path, "filtered", ["Counter", " Proxy"])
    process.start()
    try:
        process.wait_listening()
        response = Ingress(process.url).request("GET", "/discover", headers={"accept": MANIFEST})
    finally:
        process.close()
    assert response.status == 200, response.body
    assert sorted(s["name"] for s in json.loads(response.body)["services"]) == ["Counter", "Proxy"]


# ---- what was registered ------------------------------------------------------------------------


def test_every_contract_service_has_the_declared_kinds(contract: Contract) -> None:
    services = contract.registered["services"]
    names = {s["name"] for s in services}
    assert set(CONTRACT_HANDLERS) | {*OBJECT_INTERPRETERS, HELPER} <= names
    assert not names & set(SCENARIO_LOCAL), "the scenario-local services are bound only when named"
    # e.g. Counter.get is shared, although two reference SDKs made it exclusive
    assert contract_problems(services, sorted(CONTRACT_HANDLERS)) == []


# ---- handlers no conformance scenario calls -----------------------------------------------------


def test_counter_reset_answers_an_empty_body(contract: Contract) -> None:
    call = contract.ingress.call
    counter = new_key()
    assert call("Counter", "add", 1, key=counter, idempotent=True) == {"oldValue": 0, "newValue": 1}
    assert call("Counter", "add", 2, key=counter, idempotent=True) == {"oldValue": 1, "newValue": 3}
    assert call("Counter", "get", key=counter) == 3
    assert call("Counter", "reset", key=counter, raw=True, idempotent=True) == b""
    assert call("Counter", "get", key=counter) == 0
    failure = f"my-failure-counter-{counter}"
    error = expect_http_error(lambda: call("Counter", "addThenFail", 1, key=failure))
    assert error.status == 500 and failure in error.message


def test_list_object_get_and_clear(contract: Contract) -> None:
    call = contract.ingress.call
    name = new_key()
    assert call("ListObject", "get", key=name) == []
    call("ListObject", "append", "a", key=name)
    call("ListObject", "append", "b", key=name)
    assert call("ListObject", "get", key=name) == ["a", "b"]
    assert call("ListObject", "clear", key=name) == ["a", "b"]
    assert call("ListObject", "clear", key=name) == []


def test_proxy_takes_signed_bytes_and_answers_unsigned_ones(contract: Contract) -> None:
    # kotlinx sends a ByteArray as signed numbers: -1 is 0xFF
    request = {"serviceName": "TestUtilsService", "handlerName": "rawEcho", "message": [-1, 200, 0, 65]}
    assert contract.ingress.call("Proxy", "call", request) == [255, 200, 0, 65]


def test_test_utils_echo_raw_echo_and_side_effects(contract: Contract) -> None:
    ingress = contract.ingress
    assert ingress.call("TestUtilsService", "echo", "hi") == "hi"
    payload = os.urandom(100)
    echoed = ingress.request(
        "POST",
        "/TestUtilsService/rawEcho",
        payload,
        {"content-type": "application/octet-stream", "idempotency-key": new_key()},
    )
    assert (echoed.status, echoed.body) == (200, payload)
    assert echoed.headers.get("content-type") == "application/octet-stream"
    plain = ingress.request("POST", "/TestUtilsService/rawEcho", b"plain", {"content-type": "text/plain"})
    assert (plain.status, plain.body) == (200, b"plain"), "rawEcho accepts any content type"
    # Always suspending, every run waits for its ack and suspends, and the last attempt replays all.
    expected_runs = 0 if contract.suspending else 3
    assert ingress.call("TestUtilsService", "countExecutedSideEffects", 3, idempotent=True) == expected_runs


def test_interpreter_results_timeout_rendering_and_awakeable_lookup(contract: Contract) -> None:
    call = contract.ingress.call
    key = new_key()
    race = {
        "type": "awaitAny",
        "commands": [
            {"type": "createAwakeable", "awakeableKey": "awk1"},
            {"type": "sleep", "timeoutMillis": 100},
        ],
    }
    assert call(INTERPRETER, "interpretCommands", interpret(race), key=key, idempotent=True) == "sleep"
    timeout = {"type": "awaitAwakeableOrTimeout", "awakeableKey": "t", "timeoutMillis": 100}
    error = expect_http_error(
        lambda: call(INTERPRETER, "interpretCommands", interpret(timeout), key=key, idempotent=True)
    )
    assert error.status == 500
    assert error.json == {"code": 500, "message": "await-timeout", "source": "invocation"}
    assert call(INTERPRETER, "getResults", key=key) == ["sleep"]
    assert call(INTERPRETER, "hasAwakeable", "awk1", key=key) is True
    assert call(INTERPRETER, "hasAwakeable", "nope", key=key) is False


def test_interpreter_reads_environment_variables(contract: Contract) -> None:
    call = contract.ingress.call
    key = new_key()
    commands = interpret(
        {"type": "getEnvVariable", "envName": "PATH"}, {"type": "getEnvVariable", "envName": "NOPE_X"}
    )
    assert call(INTERPRETER, "interpretCommands", commands, key=key) == "", "an unset variable is empty"
    assert call(INTERPRETER, "getResults", key=key)[-2] != "", "PATH is set in serve.py's environment"


def test_interpreter_awakeables_resolved_and_rejected_from_outside(contract: Contract) -> None:
    call = contract.ingress.call
    key = new_key()

    def pending_awakeable(pool: ThreadPoolExecutor, name: str) -> Any:
        pending = pool.submit(
            call, INTERPRETER, "interpretCommands", interpret(create_awakeable(name)), key=key
        )

        def created() -> None:
            assert call(INTERPRETER, "hasAwakeable", name, key=key) is True

        eventually(created, what=f"awakeable {name} created")
        return pending

    with ThreadPoolExecutor(1) as pool:
        pending = pending_awakeable(pool, "a")
        assert call(INTERPRETER, "getResults", key=key) == [], "no result while the command waits"
        # an extra "type" key in the request is accepted and ignored
        call(
            INTERPRETER,
            "resolveAwakeable",
            {"type": "resolveAwakeable", "awakeableKey": "a", "value": "v"},
            key=key,
        )
        assert pending.result(30) == "v"
    unknown = expect_http_error(
        lambda: call(INTERPRETER, "resolveAwakeable", {"awakeableKey": "zz", "value": "v"}, key=key)
    )
    assert unknown.status == 500
    with ThreadPoolExecutor(1) as pool:
        pending = pending_awakeable(pool, "r")
        call(INTERPRETER, "rejectAwakeable", {"awakeableKey": "r", "reason": "nope"}, key=key)
        rejected = expect_http_error(lambda: pending.result(30))
    assert rejected.message == "nope"


@pytest.mark.parametrize("with_metadata", [False, True], ids=["plain", "metadata"])
@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("terminallyFailingCall", "my error"),
        ("callTerminallyFailingCall", "propagated error"),
        ("terminallyFailingSideEffect", "failed side effect"),
    ],
)
def test_terminal_errors_are_rendered_exactly(
    contract: Contract, handler: str, message: str, with_metadata: bool
) -> None:
    metadata = {"key1": "value1", "key2": "value2"}
    payload: dict[str, Any] = {"errorMessage": message, **({"metadata": metadata} if with_metadata else {})}
    error = expect_http_error(
        lambda: contract.ingress.call("Failing", handler, payload, key=new_key(), idempotent=True)
    )
    expected: dict[str, Any] = {"code": 500, "message": message, "source": "invocation"}
    if with_metadata:
        expected["metadata"] = metadata
    assert (error.status, error.json) == (500, expected)


def test_awakeable_holder_without_an_awakeable(contract: Contract) -> None:
    call = contract.ingress.call
    key = new_key()
    assert call("AwakeableHolder", "hasAwakeable", key=key) is False
    error = expect_http_error(lambda: call("AwakeableHolder", "unlock", "x", key=key))
    assert error.status == 500 and "No awakeable" in error.message


def test_workflow_state_and_output_before_it_completes(contract: Contract) -> None:
    ingress = contract.ingress
    workflow = "BlockAndWaitWorkflow"
    assert ingress.call(workflow, "getState", key=new_key()) is None, "a fresh workflow has no state"
    workflow_id = new_key()
    assert ingress.send(workflow, "run", "Francesco", key=workflow_id).status == "Accepted"

    def state_is_set() -> None:
        assert ingress.call(workflow, "getState", key=workflow_id) == "Francesco"

    eventually(state_is_set, what="the workflow's state")
    assert not ingress.workflow_output(workflow, workflow_id).ready, "no output before it completes"
    ingress.call(workflow, "unblock", "Till", key=workflow_id, idempotent=True)
    assert ingress.workflow_attach(workflow, workflow_id) == "Till"


def test_object_interpreter_runs_a_program_through_every_command(contract: Contract) -> None:
    call = contract.ingress.call
    call(HELPER, "ping")
    assert call(HELPER, "echo", "e") == "e"
    assert call(HELPER, "echoLater", {"sleep": 10, "parameter": "later"}) == "later"
    failure = expect_http_error(lambda: call(HELPER, "terminalFailure"))
    assert failure.status == 500 and "bye" in failure.message

    key = new_key()
    program = {
        "commands": [
            {"kind": 1, "key": 1},  # 0 SetState
            {"kind": 2, "key": 1},  # 1 GetState
            {"kind": 3, "key": 1},  # 2 ClearState
            {"kind": 4},  # 3 IncrementStateCounter                        +1
            {"kind": 5},  # 4 IncrementStateCounterIndirectly              +1
            {"kind": 6, "duration": 10},  # 5 Sleep
            {"kind": 7},  # 6 CallService
            {"kind": 8, "sleep": 10},  # 7 CallSlowService
            {"kind": 9, "duration": 10},  # 8 IncrementViaDelayedCall     +1
            {"kind": 10},  # 9 SideEffect
            {"kind": 11},  # 10 ThrowingSideEffect
            {"kind": 12},  # 11 SlowSideEffect
            {"kind": 13},  # 12 RecoverTerminalCall
            {"kind": 14},  # 13 RecoverTerminalCallMaybeUnAwaited
            {"kind": 16},  # 14 ResolveAwakeable
            {"kind": 17},  # 15 RejectAwakeable
            {"kind": 18},  # 16 IncrementStateCounterViaAwakeable         +1
            {"kind": 19, "key": 7, "program": {"commands": [{"kind": 4}, {"kind": 1, "key": 2}]}},  # 17
            {"kind": 15, "index": 6},  # AwaitPromise ...
            {"kind": 15, "index": 7},
            {"kind": 15, "index": 13},
            {"kind": 15, "index": 14},
            {"kind": 15, "index": 15},
            {"kind": 15, "index": 17},
        ]
    }
    done = contract.ingress.request(
        "POST",
        f"/ObjectInterpreterL0/{key}/interpret",
        json.dumps(program).encode(),
        {"content-type": "application/json", "idempotency-key": new_key()},
    )
    assert (done.status, done.body) == (200, b""), "interpret is a Unit handler: an empty body"

    def counted() -> None:
        assert call("ObjectInterpreterL0", "counter", key=key) == 4

    eventually(counted, what="the L0 counter to reach 4")
    # the program's CallObject (17) ran one increment on L1 object "7"
    assert call("ObjectInterpreterL1", "counter", key="7") == 1
    unknown = expect_http_error(
        lambda: call("ObjectInterpreterL0", "interpret", interpret({"kind": 15, "index": 0}), key=key)
    )
    assert unknown.status == 500 and "can not find a promise" in unknown.message


def test_blocking_proxy_and_blocker_as_a_second_deployment(contract: Contract) -> None:
    call = contract.ingress.call
    run_id = uuid.uuid4().hex[:8]
    keys = [f"blocker-{run_id}-{i}" for i in range(4)]
    calls = [
        {
            "proxyRequest": {
                "serviceName": "BlockingProxy",
                "handlerName": "block",
                "message": json_bytes(key),
            },
            "oneWayCall": True,
            "awaitAtTheEnd": False,
        }
        for key in keys
    ]
    call("Proxy", "manyCalls", calls, idempotent=True)
    for key in keys:

        def holds_an_awakeable(key: str = key) -> None:
            assert call("Blocker", "getAwakeable", key=key) != ""

        eventually(holds_an_awakeable, what=f"Blocker/{key} to hold an awakeable")
        call("Blocker", "resolveAwakeable", "done", key=key, idempotent=True)
    for key in keys:

        def finished(key: str = key) -> None:
            assert call("Blocker", "getResult", key=key) == "done"

        eventually(finished, what=f"Blocker/{key} to finish")
    error = expect_http_error(lambda: call("Blocker", "resolveAwakeable", "x", key=new_key()))
    assert "not registered" in error.message
