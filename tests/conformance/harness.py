"""Harness for the port of Restate's SDK conformance suite (``restatedev/e2e`` ``sdk-tests``).

What the Kotlin runner does with Docker is done here with local processes on 127.0.0.1:

* per test class (and per suite configuration) a fresh ``restate-server`` with an empty data
  directory, started through :class:`restate_sync.restate_server.RestateServer` (for the
  three-node suites a fresh three-node :class:`~restate_sync.restate_server.RestateCluster`,
  all traffic to its first node, as upstream), and a fresh
  test-services process started with the upstream test-services contract (restatedev/e2e, sdk-tests)::

      PORT=<port> SERVICES=A,B [E2E_REQUEST_SIGNING=publickeyv1_...] python test-services/serve.py

  registered with ``POST /deployments {"uri": "http://127.0.0.1:<port>/", "force": false}``
  (``"use_http_11": true`` in the ``http11`` configuration, a deliberate addition); in the
  ``wsgiGunicorn`` configuration the same services are ``endpoint.app`` under a real
  ``gunicorn -k gevent`` (:func:`gunicorn_gevent`), also registered over HTTP/1.1;
* faults: SIGKILL / SIGTERM + restart of the server on the same data dir and ports
  (KillRuntime / StopRuntime) and of the services process on the same port (SleepWithFailures);
* :class:`Ingress`, a tiny ingress client that maps requests exactly like the Kotlin
  ``dev.restate.client`` does (upstream: restatedev/e2e, sdk-tests);
* :func:`eventually`, Awaitility's ``await untilAsserted`` (poll ~100 ms, ignore exceptions,
  10 s unless told otherwise).

The suite configurations (§3) and which classes each runs are in :data:`SUITES`; scenarios that
are deliberately not run are in :data:`NOT_RUN` with the reason.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from restate_sync.client import AdminClient, AdminError, HTTPTransport, quote_segment, target_path
from restate_sync.restate_server import RestateCluster, RestateServer
from restate_sync.restate_server.processes import (
    LoggedProcess,
    file_size,
    stable_free_ports,
    tail_file,
    wait_until,
)

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SERVE_SCRIPT = REPO_ROOT / "test-services" / "serve.py"

# --------------------------------------------------------------------------------------------
# Suites and classes (upstream: restatedev/e2e, sdk-tests)
# --------------------------------------------------------------------------------------------

INACTIVITY_0 = {"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s"}
LAZY_STATE = {"RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE": "true"}
#: restate-server 1.7 negotiates service protocol V7 only when this is set (V6 otherwise)
PROTOCOL_V7 = {"RESTATE_EXPERIMENTAL_ENABLE_PROTOCOL_V7": "true"}


@dataclass(frozen=True)
class Suite:
    """One suite configuration: runtime env, registration mode and the classes it runs."""

    name: str
    env: Mapping[str, str]
    classes: frozenset[str]
    #: class -> the only methods (Kotlin names) this suite runs of it (archived method-level tags)
    only_methods: Mapping[str, frozenset[str]] = field(default_factory=dict)
    use_http_11: bool = False
    #: None when runnable; otherwise why every scenario of this suite is reported as not run
    not_run_reason: str | None = None
    #: restate-server nodes: 1, or a cluster (every role on every node, replication 2)
    nodes: int = 1
    #: how the services are served: "serve" (``python test-services/serve.py``, the built-in
    #: server) or "gunicorn" (their ``endpoint.app`` under ``gunicorn -k gevent``)
    server: str = "serve"

    def includes(self, class_name: str, method: str) -> bool:
        if class_name in self.classes:
            return True
        return method in self.only_methods.get(class_name, frozenset())


_D = frozenset(
    {
        "CallOrdering",
        "Cancellation",
        "Combinators",
        "Custom",
        "Ingress",
        "KillInvocation",
        "KillRuntime",
        "ProxyRequestSigning",
        "RunRetry",
        "ServiceToServiceCommunication",
        "Sleep",
        "SleepWithFailures",
        "State",
        "StopRuntime",
        "UserErrors",
        "WorkflowAPI",
        "Signals",
        "ServiceToServiceScopeConcurrency",
    }
)
_AS = frozenset(
    {
        "Cancellation",
        "Combinators",
        "KillRuntime",
        "NonDeterminismErrors",
        "RunFlush",
        "RunRetry",
        "ServiceToServiceCommunication",
        "Sleep",
        "SleepWithFailures",
        "State",
        "StopRuntime",
        "UserErrors",
        "WorkflowAPI",
        "Signals",
    }
)
_ST = _D - {"Custom", "ServiceToServiceScopeConcurrency"}
_3N = _ST - {"KillRuntime", "StopRuntime"}
_3NAS = _AS - {"KillRuntime", "StopRuntime", "NonDeterminismErrors"}

SUITES: dict[str, Suite] = {
    s.name: s
    for s in [
        Suite("default", {}, _D),
        Suite("alwaysSuspending", dict(INACTIVITY_0), _AS),
        Suite(
            "singleThreadSinglePartition",
            {"RESTATE_DEFAULT_NUM_PARTITIONS": "1", "RESTATE_DEFAULT_THREAD_POOL_SIZE": "1"},
            _ST,
        ),
        Suite("lazyState", dict(LAZY_STATE), frozenset({"State"})),
        Suite("lazyStateAlwaysSuspending", {**LAZY_STATE, **INACTIVITY_0}, frozenset({"State"})),
        # e2e runs Sleep only; the archived suite's `timers` tag also picked up
        # ServiceToServiceCommunication.oneWayCallWithDelay (a delayed send is a timer too).
        Suite(
            "persistedTimers",
            {"RESTATE_WORKER__NUM_TIMERS_IN_MEMORY_LIMIT": "1"},
            frozenset({"Sleep"}),
            only_methods={"ServiceToServiceCommunication": frozenset({"oneWayCallWithDelay"})},
        ),
        # Not in the Kotlin suite: the default scenario set against a request/response
        # (HTTP/1.1) registration of the same endpoint.
        Suite("http11", {}, _D - {"Custom"}, use_http_11=True),
        # Not in the Kotlin suite: default and alwaysSuspending with service protocol V7 negotiated.
        Suite("defaultV7", dict(PROTOCOL_V7), _D),
        Suite("alwaysSuspendingV7", {**PROTOCOL_V7, **INACTIVITY_0}, _AS),
        # Also not in the Kotlin suite: the http11 scenarios against the services' WSGI app
        # (endpoint.app) under gunicorn's gevent worker.
        Suite("wsgiGunicorn", {}, _D - {"Custom"}, use_http_11=True, server="gunicorn"),
        # Three nodes with every role, replicated metadata and log, replication 2, 4 partitions;
        # the classes tagged only-single-node (KillRuntime, StopRuntime, NonDeterminismErrors)
        # are not in these suites upstream either.
        Suite("threeNodes", {"RESTATE_DEFAULT_NUM_PARTITIONS": "4"}, _3N, nodes=3),
        Suite(
            "threeNodesAlwaysSuspending",
            {**INACTIVITY_0, "RESTATE_DEFAULT_NUM_PARTITIONS": "4"},
            _3NAS,
            nodes=3,
        ),
    ]
}

#: what ``--conformance-suite=all`` runs, in this order
ALL_SUITES = [
    "default",
    "alwaysSuspending",
    "singleThreadSinglePartition",
    "lazyState",
    "lazyStateAlwaysSuspending",
    "persistedTimers",
    "http11",
    "defaultV7",
    "alwaysSuspendingV7",
    "wsgiGunicorn",
    "threeNodes",
    "threeNodesAlwaysSuspending",
]


@dataclass(frozen=True)
class NotRun:
    scenario: str
    suites: tuple[str, ...]
    reason: str


#: Scenarios of the Kotlin suite this port deliberately does not run (quoted by the README).
NOT_RUN: list[NotRun] = []

TEST_PRIVATE_KEY_PEM = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHsQRVQ+AZX9/Yy1b0Zw+OA+bb7xDxGsAd5kB45jZhoc
-----END PRIVATE KEY-----
"""
TEST_SIGNING_PUBLIC_KEY = "publickeyv1_ChjENKeMvCtRnqG2mrBK1HmPKufgFUc98K8B3ononQvp"


@dataclass(frozen=True)
class ClassSpec:
    """What a Kotlin test class's ``RestateDeployerExtension`` configures."""

    #: the ``SERVICES`` list; None = unset (bind every service: the Custom hook)
    services: tuple[str, ...] | None
    server_env: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, str] = field(default_factory=dict)
    #: write the test private key and point the runtime at it (ProxyRequestSigning)
    request_signing: bool = False


INTERPRETER = "VirtualObjectCommandInterpreter"

CLASSES: dict[str, ClassSpec] = {
    "CallOrdering": ClassSpec(("Proxy", "ListObject")),
    "Cancellation": ClassSpec(
        ("CancelTestRunner", "CancelTestBlockingService", "AwakeableHolder", "Proxy", "TestUtilsService")
    ),
    "Combinators": ClassSpec((INTERPRETER, "TestUtilsService")),
    "Custom": ClassSpec(None),
    "Ingress": ClassSpec(("TestUtilsService",), server_env={"RESTATE_WORKER__CLEANUP_INTERVAL": "1s"}),
    "KillInvocation": ClassSpec(("KillTestRunner", "KillTestSingleton", "AwakeableHolder")),
    "KillRuntime": ClassSpec(("Counter",)),
    "NonDeterminismErrors": ClassSpec(
        ("NonDeterministic", "Counter"),
        server_env={
            "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "1",
            "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "kill",
            "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "1ms",
        },
    ),
    "ProxyRequestSigning": ClassSpec(
        ("Counter",), service_env={"E2E_REQUEST_SIGNING": TEST_SIGNING_PUBLIC_KEY}, request_signing=True
    ),
    "RunFlush": ClassSpec(("TestUtilsService",)),
    "RunRetry": ClassSpec(("Failing",)),
    "ServiceToServiceCommunication": ClassSpec(("Proxy", "TestUtilsService", "Counter")),
    # v1.0 drives Sleep/SleepWithFailures through TestUtilsService.sleepConcurrently, v2.2 through
    # the interpreter; the port runs both variants, so the class binds both services.
    "Sleep": ClassSpec(("TestUtilsService", INTERPRETER)),
    "SleepWithFailures": ClassSpec(("TestUtilsService", INTERPRETER)),
    "State": ClassSpec(("Counter", "Proxy", "MapObject")),
    "StopRuntime": ClassSpec(("Counter",)),
    "UserErrors": ClassSpec(("Failing", "Counter")),
    "WorkflowAPI": ClassSpec(("BlockAndWaitWorkflow",)),
    "Signals": ClassSpec((INTERPRETER, "TestUtilsService")),
    "ServiceToServiceScopeConcurrency": ClassSpec(
        ("Proxy",),
        server_env={
            **PROTOCOL_V7,
            "RESTATE_EXPERIMENTAL_ENABLE_VQUEUES": "true",
            "RESTATE_WORKER__RULE_BOOK_POLL_INTERVAL": "1s",
        },
    ),
}


_X, _S = "Exclusive", "Shared"

#: Service types and handler kinds of the upstream contracts (restatedev/e2e, sdk-tests), checked at
#: registration: a wrong lock kind changes what the scenarios prove (e.g. an exclusive
#: ``hasAwakeable`` deadlocks behind ``interpretCommands``; a shared ``isUnlocked`` proves nothing).
CONTRACT_HANDLERS: dict[str, tuple[str, dict[str, str | None]]] = {
    "AwakeableHolder": ("VirtualObject", {"hold": _X, "hasAwakeable": _X, "unlock": _X}),
    "BlockAndWaitWorkflow": ("Workflow", {"run": "Workflow", "unblock": _S, "getState": _S}),
    "CancelTestRunner": ("VirtualObject", {"startTest": _X, "verifyTest": _X}),
    "CancelTestBlockingService": ("VirtualObject", {"block": _X, "isUnlocked": _X}),
    "Counter": ("VirtualObject", {"add": _X, "addThenFail": _X, "get": _S, "reset": _X}),
    "Failing": (
        "VirtualObject",
        {
            h: _X
            for h in (
                "terminallyFailingCall",
                "callTerminallyFailingCall",
                "failingCallWithEventualSuccess",
                "terminallyFailingSideEffect",
                "sideEffectSucceedsAfterGivenAttempts",
                "sideEffectFailsAfterGivenAttempts",
            )
        },
    ),
    "KillTestRunner": ("VirtualObject", {"startCallTree": _X}),
    "KillTestSingleton": ("VirtualObject", {"recursiveCall": _X, "isUnlocked": _X}),
    "ListObject": ("VirtualObject", {"append": _X, "get": _X, "clear": _X}),
    "MapObject": ("VirtualObject", {"set": _X, "get": _X, "clearAll": _X}),
    "NonDeterministic": (
        "VirtualObject",
        {
            h: _X
            for h in (
                "eitherSleepOrCall",
                "callDifferentMethod",
                "backgroundInvokeWithDifferentTargets",
                "setDifferentKey",
            )
        },
    ),
    "Proxy": ("Service", {"call": None, "oneWayCall": None, "manyCalls": None}),
    "TestUtilsService": (
        "Service",
        {
            h: None
            for h in (
                "echo",
                "uppercaseEcho",
                "echoHeaders",
                "rawEcho",
                "sleepConcurrently",
                "countExecutedSideEffects",
                "cancelInvocation",
                "resolveSignal",
                "rejectSignal",
            )
        },
    ),
    "VirtualObjectCommandInterpreter": (
        "VirtualObject",
        {
            "interpretCommands": _X,
            "resolveAwakeable": _S,
            "rejectAwakeable": _S,
            "hasAwakeable": _S,
            "getResults": _S,
        },
    ),
}


def contract_problems(discovered: Iterable[Mapping[str, Any]], names: Iterable[str]) -> list[str]:
    """Where the registered services differ from :data:`CONTRACT_HANDLERS`."""
    by_name = {s.get("name"): s for s in discovered}
    problems = []
    for name in names:
        if name not in CONTRACT_HANDLERS or name not in by_name:
            continue
        ty, handlers = CONTRACT_HANDLERS[name]
        service = by_name[name]
        if service.get("ty") != ty:
            problems.append(f"{name} is a {service.get('ty')}, the contract says {ty}")
        kinds = {h.get("name"): h.get("ty") for h in service.get("handlers", [])}
        for handler, kind in handlers.items():
            if handler not in kinds:
                problems.append(f"{name}.{handler} is missing")
            elif kind is not None and kinds[handler] != kind:
                problems.append(f"{name}.{handler} is {kinds[handler]}, the contract says {kind}")
    return problems


def class_name_of(cls: type) -> str:
    """``TestCallOrdering`` -> ``CallOrdering`` (the Kotlin class name)."""
    name = cls.__name__
    return name[4:] if name.startswith("Test") else name


# --------------------------------------------------------------------------------------------
# Waiting (Awaitility semantics)
# --------------------------------------------------------------------------------------------


def eventually(
    fn: Callable[[], T], timeout: float = 10.0, interval: float = 0.1, what: str = "assertion"
) -> T:
    """Awaitility ``await untilAsserted { fn() }``: retry ``fn`` (every ~100 ms, ignoring any
    exception) until it returns without raising; returns its value. After ``timeout`` seconds
    fails with the last exception attached."""
    last: list[BaseException | None] = [None]
    result: list[Any] = [None]

    def attempt() -> bool:
        try:
            result[0] = fn()
        except Exception as exc:
            last[0] = exc
            return False
        return True

    try:
        wait_until(attempt, timeout=timeout, interval=interval, what=what)
    except AssertionError as exc:
        err = last[0]
        detail = f"{type(err).__name__}: {err}" if err is not None else "no attempt finished"
        raise AssertionError(f"{exc}; last attempt: {detail}") from err
    return result[0]


# --------------------------------------------------------------------------------------------
# Ingress client (upstream: restatedev/e2e, sdk-tests)
# --------------------------------------------------------------------------------------------

NO_BODY: Any = object()
"""Body of a no-argument (Kotlin ``Unit``) handler: empty body and no content-type header."""


class HttpError(Exception):
    """Any status >= 300. ``message`` is the JSON body's ``message`` field, else the body text."""

    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        self.status = status
        self.body = body
        text = body.decode("utf-8", errors="replace")
        self.message = text
        self.json: Any = None
        with contextlib.suppress(ValueError):
            self.json = json.loads(body) if body else None
        if isinstance(self.json, dict) and isinstance(self.json.get("message"), str):
            self.message = self.json["message"]
        super().__init__(f"[{method} {path}] HTTP {status}: {self.message}")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class SendResponse:
    invocation_id: str
    status: str  # "Accepted" | "PreviouslyAccepted"
    raw: dict[str, Any]


@dataclass
class Output:
    ready: bool
    value: Any = None


class Ingress:
    """The Kotlin ingress client's HTTP mapping. Every request uses a fresh connection."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self._http = HTTPTransport(base_url, timeout)
        self.base_url = self._http.base_url

    # ---- raw -------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        return Response(*self._http.exchange(method, path, body, headers, timeout))

    def _checked(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        resp = self.request(method, path, body, headers, timeout)
        if resp.status >= 300:
            raise HttpError(method, path, resp.status, resp.body)
        return resp

    @staticmethod
    def _encode(
        body: Any, raw: bool, idempotent: bool, idempotency_key: str | None, headers: Mapping[str, str] | None
    ) -> tuple[bytes | None, dict[str, str]]:
        out: dict[str, str] = {}
        data: bytes | None
        if body is NO_BODY:
            data = None
        elif raw:
            assert isinstance(body, (bytes, bytearray)), "raw bodies are bytes"
            data = bytes(body)
            out["content-type"] = "application/octet-stream"
        else:
            data = json.dumps(body, separators=(",", ":")).encode()
            out["content-type"] = "application/json"
        if idempotent:
            assert idempotency_key is None
            idempotency_key = str(uuid.uuid4())  # a fresh key on every call, like idempotentCallOptions
        if idempotency_key is not None:
            out["idempotency-key"] = idempotency_key
        for name, value in (headers or {}).items():
            out[name.lower()] = value
        return data, out

    @staticmethod
    def _decode(resp: Response, raw: bool) -> Any:
        if raw:
            return resp.body
        return json.loads(resp.body) if resp.body else None

    # ---- calls -------------------------------------------------------------------------------

    def call(
        self,
        service: str,
        handler: str,
        body: Any = NO_BODY,
        *,
        key: str | None = None,
        idempotent: bool = False,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """``POST /S[/key]/h``; returns the decoded JSON (None for an empty body) or raw bytes."""
        data, hdrs = self._encode(body, raw, idempotent, idempotency_key, headers)
        resp = self._checked("POST", target_path(service, handler, key), data, hdrs, timeout)
        return self._decode(resp, raw)

    def send(
        self,
        service: str,
        handler: str,
        body: Any = NO_BODY,
        *,
        key: str | None = None,
        idempotent: bool = False,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SendResponse:
        """``POST /S[/key]/h/send`` -> ``{"invocationId": ..., "status": ...}``."""
        data, hdrs = self._encode(body, False, idempotent, idempotency_key, headers)
        resp = self._checked("POST", target_path(service, handler, key) + "/send", data, hdrs)
        parsed = json.loads(resp.body)
        assert isinstance(parsed, dict) and isinstance(parsed.get("invocationId"), str), parsed
        return SendResponse(parsed["invocationId"], str(parsed.get("status")), parsed)

    # ---- handles -----------------------------------------------------------------------------

    def _attach(self, prefix: str, raw: bool, timeout: float | None) -> Any:
        return self._decode(self._checked("GET", prefix + "/attach", timeout=timeout), raw)

    def _output(self, prefix: str, raw: bool) -> Output:
        resp = self.request("GET", prefix + "/output")
        if resp.status == 470:
            return Output(False)
        if resp.status >= 300:
            raise HttpError("GET", prefix + "/output", resp.status, resp.body)
        return Output(True, self._decode(resp, raw))

    @staticmethod
    def _invocation(invocation_id: str) -> str:
        return f"/restate/invocation/{quote_segment(invocation_id)}"

    @staticmethod
    def _idempotent(service: str, key: str | None, handler: str, idempotency_key: str) -> str:
        middle = (
            f"{quote_segment(service)}/{quote_segment(key)}" if key is not None else quote_segment(service)
        )
        return f"/restate/invocation/{middle}/{quote_segment(handler)}/{quote_segment(idempotency_key)}"

    @staticmethod
    def _workflow(name: str, workflow_id: str) -> str:
        return f"/restate/workflow/{quote_segment(name)}/{quote_segment(workflow_id)}"

    def attach(self, invocation_id: str, *, raw: bool = False, timeout: float | None = None) -> Any:
        return self._attach(self._invocation(invocation_id), raw, timeout)

    def output(self, invocation_id: str, *, raw: bool = False) -> Output:
        return self._output(self._invocation(invocation_id), raw)

    def idempotent_attach(
        self, service: str, key: str | None, handler: str, idempotency_key: str, *, raw: bool = False
    ) -> Any:
        return self._attach(self._idempotent(service, key, handler, idempotency_key), raw, None)

    def idempotent_output(
        self, service: str, key: str | None, handler: str, idempotency_key: str, *, raw: bool = False
    ) -> Output:
        return self._output(self._idempotent(service, key, handler, idempotency_key), raw)

    def workflow_attach(self, name: str, workflow_id: str, *, timeout: float | None = None) -> Any:
        return self._attach(self._workflow(name, workflow_id), False, timeout)

    def workflow_output(self, name: str, workflow_id: str) -> Output:
        return self._output(self._workflow(name, workflow_id), False)


# ---- payload helpers --------------------------------------------------------------------------


def json_bytes(value: Any) -> list[int]:
    """kotlinx ``Json.encodeToString(value).encodeToByteArray()`` as a JSON array of byte numbers."""
    return list(json.dumps(value, separators=(",", ":")).encode())


def from_byte_array(value: Any) -> bytes:
    """Decode a returned ``ByteArray`` (JSON array of numbers) like kotlinx would, but also accept
    the unsigned 0..255 rendering the contract recommends (§1)."""
    assert isinstance(value, list), f"expected a JSON array of byte numbers, got {value!r}"
    for b in value:
        assert isinstance(b, int) and not isinstance(b, bool) and -128 <= b <= 255, (
            f"not a byte number: {b!r} in {value!r}"
        )
    return bytes(b & 0xFF for b in value)


def long(value: Any) -> int:
    """A JSON number decoded as a Kotlin ``Long`` (kotlinx rejects ``true``, ``"1"``, ``1.5``)."""
    assert isinstance(value, int) and not isinstance(value, bool), f"expected a JSON integer, got {value!r}"
    return value


def invocation_id(value: Any) -> str:
    """``Proxy.oneWayCall``'s result: a JSON string, the sent invocation's id (decoded eagerly by
    the Kotlin client even where the test ignores it)."""
    assert isinstance(value, str) and value, f"expected an invocation id (JSON string), got {value!r}"
    return value


def new_key() -> str:
    return str(uuid.uuid4())


def expect_http_error(fn: Callable[[], Any]) -> HttpError:
    """Run ``fn``; it must raise :class:`HttpError` (the Kotlin client's exception)."""
    try:
        value = fn()
    except HttpError as exc:
        return exc
    raise AssertionError(f"expected the request to fail, but it returned {value!r}")


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def gunicorn_gevent(script: Path, port: int) -> list[str]:
    """``gunicorn -k gevent`` serving ``build_endpoint()`` of ``script`` (its ``endpoint.app``).

    gunicorn calls the factory in its worker, after the fork, with the same environment
    (``SERVICES``, ``E2E_REQUEST_SIGNING``) serve.py reads. ``--graceful-timeout 10`` is
    ``docker stop``'s grace; the control socket (gunicorn 25.1+) is not wanted here.
    """
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-k",
        "gevent",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--graceful-timeout",
        "10",
        "--no-control-socket",
        "--chdir",
        str(script.parent),
        f"{script.stem}:build_endpoint()",
    ]


class ServicesProcess:
    """The SDK test-services process (``python test-services/serve.py``) on a fixed port.

    It runs in its own session, so a kill reaches any worker it forks, like killing a container.
    stdout and stderr go (appended across restarts) to ``log_path``. ``server="gunicorn"`` serves
    the same services with gunicorn's gevent worker instead (:func:`gunicorn_gevent`).
    """

    def __init__(
        self,
        script: Path,
        port: int,
        services: Iterable[str] | None,
        extra_env: Mapping[str, str],
        log_path: Path,
        ingress_url: str,
        cwd: Path = REPO_ROOT,
        server: str = "serve",
    ) -> None:
        self.script = script
        self.port = port
        self.services = list(services) if services is not None else None
        self.extra_env = dict(extra_env)
        self.log_path = log_path
        self.ingress_url = ingress_url
        if server == "gunicorn":
            command = gunicorn_gevent(script, port)
        elif server == "serve":
            command = [sys.executable, str(script)]
        else:
            raise ValueError(f"unknown services server {server!r}")
        self.process = LoggedProcess(command, log_path, env=self.env(), cwd=cwd, name="test-services process")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process.proc

    @property
    def starts(self) -> int:
        return self.process.starts

    def env(self) -> dict[str, str]:
        # Hermetic: don't leak the harness's RESTATE_*/E2E_* settings into the services.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTATE_", "E2E_"))}
        env.update(
            {
                "PORT": str(self.port),
                "RESTATE_URI": self.ingress_url + "/",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.services is not None:
            env["SERVICES"] = ",".join(self.services)
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        assert not self.process.is_running(), "already running"
        if not self.script.exists():
            raise RuntimeError(
                f"test-services entry point {self.script} does not exist (start contract: "
                "PORT=<port> [SERVICES=A,B] python test-services/serve.py)"
            )
        services = ",".join(self.services) if self.services is not None else "<unset>"
        self.process.start(
            f"harness: start #{self.starts + 1} PORT={self.port} SERVICES={services} "
            f"at {time.strftime('%H:%M:%S')}"
        )

    def is_running(self) -> bool:
        return self.process.is_running()

    def exited_error(self, what: str) -> RuntimeError:
        return self.process.exited_error(what)

    def wait_listening(self, timeout: float = 20.0) -> None:
        self.process.wait_listening(self.port, timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group (``docker kill``)."""
        self.process.kill()

    def terminate(self, grace: float = 10.0) -> float:
        """SIGTERM the main process (``docker stop``); SIGKILL everything after ``grace`` seconds.
        Returns how long it took the process to exit on its own (``inf`` if it had to be killed)."""
        return self.process.stop(grace, leader_only=True)

    def close(self, grace: float = 1.0) -> None:
        self.terminate(grace)


# --------------------------------------------------------------------------------------------
# One class's environment
# --------------------------------------------------------------------------------------------

DEFAULT_RUST_LOG = "info,restate_invoker=debug"


@dataclass
class HarnessOptions:
    serve_script: Path = DEFAULT_SERVE_SCRIPT
    partitions: int = 24  # restate-server 1.7.12's default; the Kotlin runner doesn't set it
    rust_log: str = DEFAULT_RUST_LOG
    keep_data: bool = False


class ConformanceEnv:
    """restate-server + test-services for one Kotlin test class under one suite configuration."""

    def __init__(
        self, suite: Suite, class_name: str, log_dir: Path, options: HarnessOptions | None = None
    ) -> None:
        self.suite = suite
        self.class_name = class_name
        self.spec = CLASSES[class_name]
        self.options = options or HarnessOptions()
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_root = Path(tempfile.mkdtemp(prefix=f"conformance-{suite.name}-{class_name}-"))
        self.cluster_name = str(uuid.uuid4())
        self.server: RestateServer | None = None
        #: the three-node suites' cluster (then ``server`` stays None)
        self.cluster: RestateCluster | None = None
        self.services: ServicesProcess | None = None
        self.deployment: dict[str, Any] = {}
        self.startup_seconds = 0.0
        self.failed = False

    # ---- convenience -------------------------------------------------------------------------

    @property
    def runtime(self) -> RestateServer | RestateCluster:
        """The server, or the cluster (whose first node takes all traffic, as upstream)."""
        runtime = self.cluster or self.server
        assert runtime is not None, "not started"
        return runtime

    @property
    def ingress_url(self) -> str:
        return self.runtime.ingress_url

    @property
    def admin_url(self) -> str:
        return self.runtime.admin_url

    @property
    def ingress(self) -> Ingress:
        return Ingress(self.ingress_url)

    @property
    def admin(self) -> AdminClient:
        return AdminClient(self.admin_url, timeout=30)

    @property
    def server_log(self) -> Path:
        return self.log_dir / "restate-server.log"

    @property
    def server_logs(self) -> list[Path]:
        """Every restate-server log: one, or one per cluster node (``node-<n>.log``)."""
        if self.suite.nodes > 1:
            return [self.log_dir / f"node-{n}.log" for n in range(1, self.suite.nodes + 1)]
        return [self.server_log]

    @property
    def services_log(self) -> Path:
        return self.log_dir / "test-services.log"

    # ---- environment -------------------------------------------------------------------------

    def server_env(self) -> dict[str, str]:
        """Precedence as in the Kotlin deployer (later wins): defaults, class env, suite env,
        fixed cluster settings, container settings. Bind/advertised addresses, node name and base
        dir come from RestateServer; for the three-node suites the cluster settings (name, roles,
        replication 2, only the first node provisioning) from RestateCluster."""
        env: dict[str, str] = {
            "RESTATE_NETWORKING__HTTP2_KEEP_ALIVE_INTERVAL": "4s",
            "RESTATE_NETWORKING__HTTP2_KEEP_ALIVE_TIMEOUT": "20s",
            "RUST_LOG": self.options.rust_log,
            "RUST_BACKTRACE": "full",
        }
        env.update(self.spec.server_env)
        if self.spec.request_signing:
            pem = self.data_root / "a.pem"
            pem.write_text(TEST_PRIVATE_KEY_PEM)
            env["RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE"] = str(pem)
        env.update(self.suite.env)
        if self.suite.nodes > 1:
            env["DO_NOT_TRACK"] = "true"
            return env
        env.update(
            {
                "RESTATE_CLUSTER_NAME": self.cluster_name,
                "RESTATE_AUTO_PROVISION": "true",
                "RESTATE_BIFROST__DEFAULT_PROVIDER": "replicated",
                "RESTATE_DEFAULT_REPLICATION": "1",
                "RESTATE_ROLES": "[worker,http-ingress,log-server,admin,metadata-server]",
                "RESTATE_METADATA_SERVER__TYPE": "replicated",
                "DO_NOT_TRACK": "true",
            }
        )
        return env

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, attempts: int = 3) -> ConformanceEnv:
        """Start both processes and register; retried on fresh ports if a port was taken
        meanwhile (another run on the machine may pick the same free port)."""
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            marks = [file_size(log) for log in (*self.server_logs, self.services_log)]
            try:
                self._start_once()
                break
            except Exception:
                lost_race = attempt < attempts and self._port_in_use_since(marks)
                self._stop_processes()
                if not lost_race:
                    raise
                shutil.rmtree(self.data_root / "restate", ignore_errors=True)
        self.startup_seconds = time.monotonic() - started
        return self

    def _port_in_use_since(self, marks: list[int]) -> bool:
        logs = (*self.server_logs, self.services_log)
        text = "\n".join(
            tail_file(log, 400, since=mark) for log, mark in zip(logs, marks, strict=True)
        ).lower()
        return "address already in use" in text or "address in use" in text or "errno 98" in text

    def _stop_processes(self) -> None:
        if self.services is not None:
            self.services.close(grace=0.5)
        if self.server is not None:
            with contextlib.suppress(Exception):
                self.server.kill()
        if self.cluster is not None:
            self.cluster.close(timeout=1)
            self.cluster = None

    def _start_once(self) -> None:
        if self.suite.nodes > 1:
            self._start_cluster_once()
            return
        # Outside the ephemeral range: KillRuntime/StopRuntime restart the server and
        # SleepWithFailures the services on the same ports.
        svc_port, ingress_port, admin_port, node_port = stable_free_ports(4)
        self.services = ServicesProcess(
            self.options.serve_script,
            svc_port,
            self.spec.services,
            self.spec.service_env,
            self.services_log,
            f"http://127.0.0.1:{ingress_port}",
            server=self.suite.server,
        )
        # Both processes start in parallel: Popen returns at once, the server start blocks until
        # healthy, and the registration below waits for the services to answer discovery.
        self.services.start()
        self.server = RestateServer(
            env=self.server_env(),
            partitions=self.options.partitions,
            data_dir=str(self.data_root / "restate"),
            log_file=str(self.server_log),
            ingress_port=ingress_port,
            admin_port=admin_port,
            node_port=node_port,
            startup_timeout=60,
        )
        # Ready like the Kotlin deployer: admin and ingress health (it doesn't wait for partition
        # leaders either; the ingress holds requests until they are elected).
        self.server.start(wait=False)
        self.server.wait_healthy(60, partitions_ready=False)
        self._log_effective_config()
        self.deployment = self._register()

    def _start_cluster_once(self) -> None:
        """The three-node suites: a cluster ready (every partition writable through every node,
        stricter than the Kotlin deployer's health check), then the services, then registration
        through the first node."""
        self.cluster = RestateCluster(
            self.suite.nodes,
            env=self.server_env(),
            data_dir=str(self.data_root / "restate"),
            log_dir=str(self.log_dir),
            cluster_name=self.cluster_name,
            startup_timeout=90,
        )
        self.cluster.start()
        self._log_effective_config()
        (svc_port,) = stable_free_ports(1)
        self.services = ServicesProcess(
            self.options.serve_script,
            svc_port,
            self.spec.services,
            self.spec.service_env,
            self.services_log,
            self.cluster.ingress_url,
            server=self.suite.server,
        )
        self.services.start()
        self.deployment = self._register()

    def _log_effective_config(self) -> None:
        """Like the Kotlin deployer: SIGUSR1 makes restate-server log its effective configuration."""
        pids = self.cluster.pids if self.cluster is not None else [self.server.pid if self.server else None]
        for pid in pids:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGUSR1)

    def _register(self, timeout: float = 20.0) -> dict[str, Any]:
        """``POST /deployments``, retried every 30 ms for up to 20 s, like the Kotlin deployer."""
        services = self.services
        assert services is not None
        admin = AdminClient(self.admin_url, timeout=10)
        last: list[Exception | None] = [None]

        def register() -> dict[str, Any] | None:
            if not services.is_running():
                raise services.exited_error("before the deployment could be registered")
            try:
                return admin.register_deployment(
                    services.url, use_http_11=self.suite.use_http_11, force=False
                )
            except (AdminError, OSError, http.client.HTTPException) as exc:
                last[0] = exc
                return None

        result = wait_until(
            register,
            timeout,
            0.03,
            on_timeout=lambda: RuntimeError(
                f"could not register {services.url} within {timeout}s: {last[0]}\n"
                f"--- test-services log:\n{tail_file(self.services_log, 30)}\n"
                f"--- restate-server log:\n{tail_file(self.server_log, 30)}"
            ),
        )
        self._check_registered_services(result)
        self._check_protocol(admin, str(result.get("id")))
        return result

    def _check_protocol(self, admin: AdminClient, deployment_id: str) -> None:
        """The registration mode took: h2c bidi-streaming, or request/response for http11."""
        expected = "RequestResponse" if self.suite.use_http_11 else "BidiStream"
        for d in admin.deployments():
            if d.get("id") == deployment_id and d.get("protocol_type") not in (None, expected):
                raise RuntimeError(
                    f"deployment {deployment_id} registered as {d.get('protocol_type')} "
                    f"({d.get('http_version')}), expected {expected}"
                )

    def _check_registered_services(self, result: Mapping[str, Any]) -> None:
        registered = {s.get("name") for s in result.get("services", []) if isinstance(s, dict)}
        wanted = set(self.spec.services or ())
        missing = wanted - registered
        if missing:
            raise RuntimeError(
                f"the deployment does not offer {sorted(missing)} (SERVICES={','.join(sorted(wanted))}); "
                f"discovered: {sorted(n for n in registered if n)}"
            )
        problems = contract_problems(result.get("services", []), sorted(wanted))
        if problems:
            warnings.warn(
                f"{self.class_name}: test-services differ from the upstream contracts (restatedev/e2e, sdk-tests): "
                + "; ".join(problems),
                stacklevel=2,
            )
        extra = registered - wanted
        if self.spec.services is not None and extra:
            warnings.warn(
                f"{self.class_name}: test-services bound {sorted(n for n in extra if n)} although "
                f"SERVICES={','.join(self.spec.services)} (contract §2: 'bind only these services')",
                stacklevel=2,
            )

    # ---- faults --------------------------------------------------------------------------------

    def kill_runtime_and_restart(self) -> None:
        """``docker restart --signal SIGKILL -t 0`` of the runtime: same data, same ports."""
        assert self.server is not None
        self.server.kill()
        self.server.start()

    def terminate_runtime_and_restart(self) -> None:
        """``docker restart`` of the runtime: SIGTERM, 10 s grace, SIGKILL, start again."""
        assert self.server is not None
        self.server.stop(timeout=10)
        self.server.start()

    def kill_service_and_restart(self) -> None:
        """SIGKILL the test-services process, start it again on the same port (no re-registration)."""
        assert self.services is not None
        self.services.kill()
        self.services.start()
        self.services.wait_listening()

    def terminate_service_and_restart(self) -> float:
        """SIGTERM (10 s grace, then SIGKILL), restart on the same port. Returns the seconds the
        graceful shutdown took (``inf`` if it had to be killed)."""
        assert self.services is not None
        took = self.services.terminate(grace=10.0)
        self.services.start()
        self.services.wait_listening()
        return took

    # ---- diagnostics ---------------------------------------------------------------------------

    def mark_test_start(self) -> None:
        """Remember where the logs are, so a failure shows what the failing test caused."""
        self._marks = {log: file_size(log) for log in (*self.server_logs, self.services_log)}

    def diagnostics(self, lines: int = 80) -> list[tuple[str, str]]:
        marks: dict[Path, int] = getattr(self, "_marks", {})
        sections = [
            (
                f"{'restate-server' if log != self.services_log else 'test-services'} log since the "
                f"test started, last {lines} lines ({log})",
                tail_file(log, lines, since=marks.get(log, 0)) or "<nothing>",
            )
            for log in (*self.server_logs, self.services_log)
        ]
        runtime = self.cluster or self.server
        if runtime is not None and runtime.is_running():
            try:
                rows = AdminClient(self.admin_url, timeout=3).query(
                    "SELECT id, target, status, retry_count, last_failure, last_failure_error_code "
                    "FROM sys_invocation WHERE status != 'completed' LIMIT 30"
                )
                sections.append(
                    (
                        "unfinished invocations (sys_invocation)",
                        "\n".join(json.dumps(r) for r in rows) or "none",
                    )
                )
            except Exception as exc:
                sections.append(("sys_invocation", f"<query failed: {exc}>"))
        return sections

    def close(self) -> None:
        """Stop everything (SIGTERM, ~1 s grace, then SIGKILL, like ``docker stop -t 1``)."""
        try:
            if self.services is not None:
                self.services.process.send_signal(signal.SIGTERM)
            if self.server is not None:
                self.server.close(timeout=2)
            if self.cluster is not None:
                self.cluster.close(timeout=2)
        finally:
            if self.services is not None:
                self.services.close(grace=1.0)
            if not self.options.keep_data:
                shutil.rmtree(self.data_root, ignore_errors=True)
