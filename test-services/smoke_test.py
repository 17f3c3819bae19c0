"""Smoke test of the contract services against real restate-servers.

    .venv/bin/python test-services/smoke_test.py [-k SUBSTRING ...] [-v]

Starts ``serve.py`` as a subprocess (from ``/`` to prove it works from any cwd) on free ports,
registers it with a throwaway restate-server (``restate_sync.restate_server.RestateServer``) and
drives a handful of handlers per service through ``restate_sync.client.IngressClient``, checking
the **[verified]** examples of CONFORMANCE-CONTRACTS.md. Three server configurations:

1. default: every contract service, plus a second ``serve.py`` with ``BlockingProxy,Blocker``;
2. always-suspending (inactivity timeout 0) with retry policy "1 attempt, then kill":
   ``NonDeterministic`` journal mismatches, ``countExecutedSideEffects`` = 0, replayed sleeps;
3. request signing: ``E2E_REQUEST_SIGNING`` on the endpoint, the private key on the server.

Everything started here is stopped on exit. Exit status 0 when every check passed.
This is not the conformance suite (that lives in tests/conformance/); it is a quick self-check.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from restate_sync.client import AdminClient, IngressClient, IngressError
from restate_sync.restate_server import RestateServer

HERE = os.path.dirname(os.path.abspath(__file__))
SERVE = os.path.join(HERE, "serve.py")

# The request-signing key pair of the suite (CONFORMANCE-SCENARIOS.md §4.9).
SIGNING_PRIVATE_PEM = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIHsQRVQ+AZX9/Yy1b0Zw+OA+bb7xDxGsAd5kB45jZhoc
-----END PRIVATE KEY-----
"""
SIGNING_PUBLIC_KEY = "publickeyv1_ChjENKeMvCtRnqG2mrBK1HmPKufgFUc98K8B3ononQvp"

KEEP_LOGS = False  # --keep-logs: keep (and print the paths of) the serve.py logs


def as_bytes(text: str) -> list[int]:
    return list(text.encode())


def new_key() -> str:
    return str(uuid.uuid4())


def ik() -> str:
    return str(uuid.uuid4())


# ------------------------------------------------------------------------------------ plumbing


class CheckFailed(AssertionError):
    pass


def expect(actual: Any, expected: Any, what: str = "") -> None:
    if actual != expected:
        raise CheckFailed(f"{what + ': ' if what else ''}expected {expected!r}, got {actual!r}")


def expect_true(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def expect_error(fn: Callable[[], Any], *, status: int | None = None, contains: str = "") -> IngressError:
    try:
        value = fn()
    except IngressError as exc:
        if status is not None and exc.status != status:
            raise CheckFailed(f"expected HTTP {status}, got {exc.status}: {exc.body!r}") from exc
        if contains not in exc.message:
            raise CheckFailed(f"expected an error containing {contains!r}, got {exc.message!r}") from exc
        return exc
    raise CheckFailed(f"expected an error, got {value!r}")


def eventually(fn: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    """Retry ``fn`` until it returns without raising (CheckFailed/IngressError) or ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (CheckFailed, IngressError, OSError, http.client.HTTPException) as exc:
            if time.monotonic() >= deadline:
                raise CheckFailed(f"{what or 'condition'} not met within {timeout}s: {exc}") from exc
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_request(
    base_url: str, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = base_url.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


class ServeProcess:
    """``python serve.py`` in a subprocess (cwd ``/``), stopped with SIGTERM on exit."""

    def __init__(self, name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"serve-{name}-", suffix=".log", delete=False
        )
        self.env = {k: v for k, v in os.environ.items() if k not in ("SERVICES", "E2E_REQUEST_SIGNING")}
        self.env.update(env or {})
        self.env["PORT"] = str(self.port)
        self._start()

    def _start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, SERVE],
            cwd="/",
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"serve.py ({self.name}) exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                status, _, _ = http_request(self.url, "GET", "/health")
                if status in (200, 401):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve.py ({self.name}) did not come up:\n{self.tail()}")
            time.sleep(0.1)

    def restart(self, sig: int) -> float:
        """Stop the process with ``sig`` (SIGKILL or SIGTERM), start it again on the same port;
        returns how long the old process took to exit."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(30)
        exited = time.monotonic() - started
        self._start()
        return exited

    def tail(self, lines: int = 40) -> str:
        self.log.flush()
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        if KEEP_LOGS:
            print(f"serve.py ({self.name}) log: {self.log.name}", flush=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self.log.name)


@contextlib.contextmanager
def environment(
    name: str, services: str | None = None, server_env: dict[str, str] | None = None, **serve_env: str
) -> Iterator[tuple[RestateServer, ServeProcess, IngressClient, AdminClient]]:
    env = dict(serve_env)
    if services is not None:
        env["SERVICES"] = services
    with RestateServer(env=server_env or {}) as server:
        serve = ServeProcess(name, env)
        try:
            server.register_deployment(serve.url)
            yield server, serve, IngressClient(server.ingress_url), AdminClient(server.admin_url)
        except BaseException:
            print(f"--- serve.py ({name}) log tail ---\n{serve.tail()}", file=sys.stderr)
            raise
        finally:
            serve.stop()


class Runner:
    def __init__(self, selectors: list[str], verbose: bool) -> None:
        self.selectors = selectors
        self.verbose = verbose
        self.results: list[tuple[str, bool, float, str]] = []

    def wanted(self, name: str) -> bool:
        return not self.selectors or any(s in name for s in self.selectors)

    def run(self, name: str, fn: Callable[[], Any]) -> None:
        if not self.wanted(name):
            return
        started = time.monotonic()
        try:
            fn()
        except Exception as exc:
            elapsed = time.monotonic() - started
            detail = traceback.format_exc() if self.verbose else f"{type(exc).__name__}: {exc}"
            self.results.append((name, False, elapsed, detail))
            print(f"FAIL {name} ({elapsed:.2f}s)\n     {detail}", flush=True)
        else:
            elapsed = time.monotonic() - started
            self.results.append((name, True, elapsed, ""))
            print(f"ok   {name} ({elapsed:.2f}s)", flush=True)

    def run_parallel(self, checks: list[tuple[str, Callable[[], Any]]], workers: int = 8) -> None:
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(self.run, name, fn) for name, fn in checks]:
                future.result()


# ------------------------------------------------------------------- default-configuration checks

DEFAULT_CHECKS = [
    "Counter",
    "Counter.get shared",
    "Proxy.call uppercaseEcho",
    "Proxy.call signed bytes",
    "Proxy.oneWayCall",
    "Proxy idempotency keys",
    "Proxy.oneWayCall delay",
    "Proxy.manyCalls ordering",
    "Proxy scope/limitKey ignored",
    "ListObject",
    "MapObject",
    "TestUtilsService",
    "Interpreter awaitAny/timeout/getResults",
    "Interpreter firstSuccessfulCompletedAwakeable",
    "Interpreter awaitAllCompleted mix",
    "Interpreter signal combinators",
    "Interpreter signals resolve/reject",
    "Interpreter misc",
    "Sleep manySleeps",
    "Failing renderings",
    "Failing eventual success",
    "Failing run retry",
    "Cancellation (admin + context, 3 ops)",
    "KillInvocation",
    "AwakeableHolder",
    "WorkflowAPI",
    "ObjectInterpreter + helper",
    "BlockingProxy/Blocker",
]


def default_checks(
    ingress: IngressClient, admin: AdminClient, server: RestateServer, suspending: bool = False
) -> list:
    call = ingress.call

    def counter() -> None:
        k = new_key()
        expect(call("Counter", "add", 1, key=k, idempotency_key=ik()), {"oldValue": 0, "newValue": 1})
        expect(call("Counter", "add", 2, key=k, idempotency_key=ik()), {"oldValue": 1, "newValue": 3})
        expect(call("Counter", "get", key=k), 3)
        expect(call("Counter", "reset", key=k, raw=True), b"", "Unit handler body")
        expect(call("Counter", "get", key=k), 0)
        failure_key = f"my-failure-counter-{k}"
        expect_error(
            lambda: call("Counter", "addThenFail", 1, key=failure_key), status=500, contains=failure_key
        )
        expect(call("Counter", "get", key=failure_key), 1, "state written before the terminal error")

    def counter_get_is_shared() -> None:
        # the contract declares Counter.get shared (the Python/Ruby references made it exclusive)
        discovered = admin.service("Counter")
        kinds = {h["name"]: h.get("ty") for h in discovered["handlers"]}
        expect(kinds, {"add": "Exclusive", "addThenFail": "Exclusive", "get": "Shared", "reset": "Exclusive"})

    def proxy_call() -> None:
        request = {
            "serviceName": "TestUtilsService",
            "handlerName": "uppercaseEcho",
            "message": as_bytes('"ping"'),
        }
        expect(call("Proxy", "call", request, idempotency_key=ik()), [34, 80, 73, 78, 71, 34])

    def proxy_call_signed_bytes_and_raw() -> None:
        # kotlinx sends signed bytes: -1 must mean 0xFF; the result is unsigned
        request = {"serviceName": "TestUtilsService", "handlerName": "rawEcho", "message": [-1, 200, 0, 65]}
        expect(call("Proxy", "call", request), [255, 200, 0, 65])

    def proxy_one_way_call() -> None:
        c = new_key()
        request = {"serviceName": "Counter", "virtualObjectKey": c, "handlerName": "add", "message": [49]}
        invocation_id = call("Proxy", "oneWayCall", request, idempotency_key=ik())
        expect_true(
            isinstance(invocation_id, str) and invocation_id.startswith("inv_"), f"id {invocation_id!r}"
        )
        eventually(lambda: expect(call("Counter", "get", key=c), 1))

    def proxy_idempotency_keys() -> None:
        c, k = new_key(), new_key()
        request = {
            "serviceName": "Counter",
            "virtualObjectKey": c,
            "handlerName": "add",
            "message": [49],
            "idempotencyKey": k,
        }
        first = bytes(call("Proxy", "call", request))
        expect(json.loads(first), {"oldValue": 0, "newValue": 1})
        again = bytes(call("Proxy", "call", request))
        expect(json.loads(again), {"oldValue": 0, "newValue": 1}, "deduplicated call")
        call("Proxy", "oneWayCall", request)
        expect(call("Counter", "get", key=c), 1)
        status, _, body = http_request(
            server.ingress_url, "GET", f"/restate/invocation/Counter/{c}/add/{k}/output"
        )
        expect(status, 200)
        expect(json.loads(body), {"oldValue": 0, "newValue": 1})

    def proxy_one_way_call_with_delay() -> None:
        c = new_key()
        request = {
            "serviceName": "Counter",
            "virtualObjectKey": c,
            "handlerName": "add",
            "message": [49],
            "delayMillis": 1000,
        }
        started = time.monotonic()
        for _ in range(3):
            call("Proxy", "oneWayCall", request, idempotency_key=ik())
        expect_true(time.monotonic() - started < 1.0, "sends returned before the delay")
        eventually(lambda: expect(call("Counter", "get", key=c), 3), timeout=15)
        expect_true(time.monotonic() - started >= 1.0, "delay applied by the runtime")

    def proxy_many_calls_ordering() -> None:
        for pattern in ([True, False, False], [False, True, False], [True, True, False]):
            name = new_key()
            calls = [
                {
                    "proxyRequest": {
                        "serviceName": "ListObject",
                        "virtualObjectKey": name,
                        "handlerName": "append",
                        "message": as_bytes(f'"{i}"'),
                    },
                    "oneWayCall": one_way,
                    "awaitAtTheEnd": not one_way,
                }
                for i, one_way in enumerate(pattern)
            ]
            expect(call("Proxy", "manyCalls", calls, idempotency_key=ik(), raw=True), b"")
            expect(call("ListObject", "clear", key=name, idempotency_key=ik()), ["0", "1", "2"], str(pattern))

    def proxy_scope_is_ignored() -> None:
        request = {
            "serviceName": "TestUtilsService",
            "handlerName": "echo",
            "message": as_bytes('"x"'),
            "scope": "s2s-scope",
            "limitKey": "s2s-limit",
        }
        expect(bytes(call("Proxy", "call", request)), b'"x"')

    def list_object() -> None:
        k = new_key()
        expect(call("ListObject", "get", key=k), [])
        call("ListObject", "append", "a", key=k)
        call("ListObject", "append", "b", key=k)
        expect(call("ListObject", "get", key=k), ["a", "b"])
        expect(call("ListObject", "clear", key=k), ["a", "b"])
        expect(call("ListObject", "clear", key=k), [])

    def map_object() -> None:
        m = new_key()
        for i in (0, 1):
            call(
                "MapObject",
                "set",
                {"key": f"my-key-{i}", "value": f"my-value-{i}"},
                key=m,
                idempotency_key=ik(),
            )
        call(
            "MapObject", "set", {"key": "my-key-2", "value": "my-value-2"}, key=m + "1", idempotency_key=ik()
        )
        entries = call("MapObject", "clearAll", key=m, idempotency_key=ik())
        expect(
            sorted(entries, key=lambda e: e["key"]),
            [{"key": "my-key-0", "value": "my-value-0"}, {"key": "my-key-1", "value": "my-value-1"}],
        )
        expect(call("MapObject", "get", "my-key-0", key=m), "")
        expect(call("MapObject", "get", "my-key-1", key=m), "")
        expect(call("MapObject", "get", "my-key-2", key=m + "1"), "my-value-2")

    def test_utils() -> None:
        expect(call("TestUtilsService", "echo", "hi"), "hi")
        expect(call("TestUtilsService", "uppercaseEcho", "hi"), "HI")
        headers = call(
            "TestUtilsService",
            "echoHeaders",
            idempotency_key=ik(),
            headers={"x-my-custom-header": "x-my-custom-value"},
        )
        expect(headers.get("x-my-custom-header"), "x-my-custom-value", "echoHeaders")
        payload = os.urandom(100)
        status, response_headers, body = http_request(
            server.ingress_url,
            "POST",
            "/TestUtilsService/rawEcho",
            payload,
            {"content-type": "application/octet-stream", "idempotency-key": ik()},
        )
        expect(status, 200, "rawEcho status")
        expect(body, payload, "rawEcho body")
        expect(response_headers.get("content-type"), "application/octet-stream", "rawEcho content-type")
        status, _, body = http_request(
            server.ingress_url, "POST", "/TestUtilsService/rawEcho", b"plain", {"content-type": "text/plain"}
        )
        expect((status, body), (200, b"plain"), "rawEcho accepts any content type")
        started = time.monotonic()
        expect(call("TestUtilsService", "sleepConcurrently", [10, 50, 20], raw=True), b"")
        expect_true(time.monotonic() - started >= 0.05, "sleepConcurrently slept")
        # always suspending: every run waits for its ack, suspends, and the last attempt replays all
        expected_runs = 0 if suspending else 3
        expect(call("TestUtilsService", "countExecutedSideEffects", 3, idempotency_key=ik()), expected_runs)

    def interpreter_await_any_sleep() -> None:
        k = new_key()
        body = {
            "commands": [
                {
                    "type": "awaitAny",
                    "commands": [
                        {"type": "createAwakeable", "awakeableKey": "awk1"},
                        {"type": "sleep", "timeoutMillis": 100},
                    ],
                }
            ]
        }
        expect(
            call("VirtualObjectCommandInterpreter", "interpretCommands", body, key=k, idempotency_key=ik()),
            "sleep",
        )
        timeout = {
            "commands": [{"type": "awaitAwakeableOrTimeout", "awakeableKey": "t", "timeoutMillis": 100}]
        }
        error = expect_error(
            lambda: call(
                "VirtualObjectCommandInterpreter", "interpretCommands", timeout, key=k, idempotency_key=ik()
            ),
            status=500,
            contains="await-timeout",
        )
        expect(json.loads(error.body), {"code": 500, "message": "await-timeout", "source": "invocation"})
        expect(call("VirtualObjectCommandInterpreter", "getResults", key=k), ["sleep"])
        expect(call("VirtualObjectCommandInterpreter", "hasAwakeable", "awk1", key=k), True)
        expect(call("VirtualObjectCommandInterpreter", "hasAwakeable", "nope", key=k), False)

    def interpreter_first_successful_awakeable() -> None:
        k = new_key()
        commands = []
        for i in range(3):
            commands.append({"type": "createAwakeable", "awakeableKey": f"awk{i}"})
            commands.append({"type": "runThrowTerminalException", "reason": f"run{i}"})
        body = {"commands": [{"type": "awaitAnySuccessful", "commands": commands}]}
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                call,
                "VirtualObjectCommandInterpreter",
                "interpretCommands",
                body,
                key=k,
                idempotency_key=ik(),
            )
            eventually(
                lambda: expect(call("VirtualObjectCommandInterpreter", "hasAwakeable", "awk2", key=k), True)
            )
            expect(
                call("VirtualObjectCommandInterpreter", "hasAwakeable", "awk0", key=k, idempotency_key=ik()),
                True,
            )
            expect(
                call("VirtualObjectCommandInterpreter", "hasAwakeable", "awk1", key=k, idempotency_key=ik()),
                True,
            )
            call(
                "VirtualObjectCommandInterpreter",
                "rejectAwakeable",
                {"awakeableKey": "awk2", "reason": "fail"},
                key=k,
                idempotency_key=ik(),
            )
            call(
                "VirtualObjectCommandInterpreter",
                "resolveAwakeable",
                {"awakeableKey": "awk1", "value": "awk1-result"},
                key=k,
                idempotency_key=ik(),
            )
            expect(pending.result(30), "awk1-result")

    def interpreter_signals(
        commands: list[dict[str, Any]], drive: list[tuple[str, str, str]], expected: str
    ) -> None:
        k = new_key()
        body = {"commands": commands}
        invocation_id = ingress.send(
            "VirtualObjectCommandInterpreter", "interpretCommands", body, key=k, idempotency_key=ik()
        )["invocationId"]
        for action, signal_name, value in drive:
            field = "value" if action == "resolveSignal" else "reason"
            call(
                "TestUtilsService",
                action,
                {"invocationId": invocation_id, "signalName": signal_name, field: value},
                idempotency_key=ik(),
            )
        expect(ingress.attach(invocation_id, timeout=30), expected)

    def sig(name: str) -> dict[str, str]:
        return {"type": "createSignal", "signalName": name}

    def interpreter_mixed_all_completed() -> None:
        interpreter_signals(
            [
                {
                    "type": "awaitAllCompleted",
                    "commands": [
                        {"type": "runReturns", "value": "runval"},
                        sig("sig"),
                        {"type": "runThrowTerminalException", "reason": "fail"},
                    ],
                }
            ],
            [("resolveSignal", "sig", "sigval")],
            "ok:runval|ok:sigval|err:fail",
        )

    def interpreter_signal_combinators() -> None:
        three = [sig("sig0"), sig("sig1"), sig("sig2")]
        interpreter_signals(
            [{"type": "awaitAnySuccessful", "commands": three}],
            [
                ("rejectSignal", "sig0", "fail0"),
                ("rejectSignal", "sig2", "fail2"),
                ("resolveSignal", "sig1", "success1"),
            ],
            "success1",
        )
        interpreter_signals(
            [{"type": "awaitAllSucceededOrFirstFailed", "commands": three}],
            [("resolveSignal", f"sig{i}", f"val{i}") for i in range(3)],
            "val0|val1|val2",
        )
        interpreter_signals(
            [{"type": "awaitAllCompleted", "commands": three}],
            [
                ("resolveSignal", "sig0", "val0"),
                ("rejectSignal", "sig1", "err1"),
                ("resolveSignal", "sig2", "val2"),
            ],
            "ok:val0|err:err1|ok:val2",
        )
        interpreter_signals(
            [{"type": "awaitAny", "commands": three}], [("resolveSignal", "sig1", "first")], "first"
        )
        interpreter_signals(
            [
                {
                    "type": "awaitFirstSucceededOrAllFailed",
                    "commands": [{"type": "runThrowTerminalException", "reason": "fail"}, sig("sig")],
                }
            ],
            [("resolveSignal", "sig", "sigval")],
            "sigval",
        )
        interpreter_signals(
            [
                {
                    "type": "awaitAllSucceededOrFirstFailed",
                    "commands": [{"type": "runReturns", "value": "runval"}, sig("sig")],
                }
            ],
            [("resolveSignal", "sig", "sigval")],
            "runval|sigval",
        )
        k = new_key()
        race = {
            "commands": [
                {
                    "type": "awaitFirstCompleted",
                    "commands": [sig("sig"), {"type": "runReturns", "value": "runval"}],
                }
            ]
        }
        expect(
            call("VirtualObjectCommandInterpreter", "interpretCommands", race, key=k, idempotency_key=ik()),
            "runval",
        )

    def interpreter_signal_resolve_reject() -> None:
        interpreter_signals(
            [{"type": "awaitOne", "command": sig("mysignal")}],
            [("resolveSignal", "mysignal", "hello")],
            "hello",
        )
        k = new_key()
        body = {"commands": [{"type": "awaitOne", "command": sig("mysignal")}]}
        invocation_id = ingress.send(
            "VirtualObjectCommandInterpreter", "interpretCommands", body, key=k, idempotency_key=ik()
        )["invocationId"]
        call(
            "TestUtilsService",
            "rejectSignal",
            {"invocationId": invocation_id, "signalName": "mysignal", "reason": "boom"},
            idempotency_key=ik(),
        )
        expect_error(lambda: ingress.attach(invocation_id, timeout=30), status=500, contains="boom")

    def interpreter_misc() -> None:
        k = new_key()
        started = time.monotonic()
        sleep = {"commands": [{"type": "awaitOne", "command": {"type": "sleep", "timeoutMillis": 10}}]}
        expect(call("VirtualObjectCommandInterpreter", "interpretCommands", sleep, key=k), "sleep")
        expect_true(time.monotonic() - started >= 0.01, "slept 10 ms")
        many = {
            "commands": [
                {
                    "type": "awaitAllCompleted",
                    "commands": [{"type": "sleep", "timeoutMillis": 10 + i} for i in range(20)],
                }
            ]
        }
        expect(
            call("VirtualObjectCommandInterpreter", "interpretCommands", many, key=k),
            "|".join(["ok:sleep"] * 20),
        )
        env = {
            "commands": [
                {"type": "getEnvVariable", "envName": "PATH"},
                {"type": "getEnvVariable", "envName": "NOPE_X"},
            ]
        }
        expect(call("VirtualObjectCommandInterpreter", "interpretCommands", env, key=k), "")
        expect(call("VirtualObjectCommandInterpreter", "getResults", key=k)[-2] != "", True, "PATH is set")
        # resolve/reject awakeable commands inside interpretCommands, with the ids of another key
        other = new_key()
        holder = {
            "commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": "a"}}]
        }
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                call, "VirtualObjectCommandInterpreter", "interpretCommands", holder, key=other
            )
            eventually(
                lambda: expect(call("VirtualObjectCommandInterpreter", "hasAwakeable", "a", key=other), True)
            )
            awakeable_id = call(
                "VirtualObjectCommandInterpreter", "getResults", key=other
            )  # [] while pending
            expect(awakeable_id, [])
            # resolveAwakeable called directly, with an extra "type" key (accepted and ignored)
            call(
                "VirtualObjectCommandInterpreter",
                "resolveAwakeable",
                {"type": "resolveAwakeable", "awakeableKey": "a", "value": "v"},
                key=other,
            )
            expect(pending.result(30), "v")
        expect_error(
            lambda: call(
                "VirtualObjectCommandInterpreter",
                "resolveAwakeable",
                {"awakeableKey": "zz", "value": "v"},
                key=other,
            ),
            status=500,
        )
        reject = {
            "commands": [{"type": "awaitOne", "command": {"type": "createAwakeable", "awakeableKey": "r"}}]
        }
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                call, "VirtualObjectCommandInterpreter", "interpretCommands", reject, key=other
            )
            eventually(
                lambda: expect(call("VirtualObjectCommandInterpreter", "hasAwakeable", "r", key=other), True)
            )
            call(
                "VirtualObjectCommandInterpreter",
                "rejectAwakeable",
                {"awakeableKey": "r", "reason": "nope"},
                key=other,
            )
            try:
                pending.result(30)
            except IngressError as exc:
                expect(exc.message, "nope")
            else:
                raise CheckFailed("rejected awakeable did not fail the command")

    def many_sleeps() -> None:
        rng = random.Random()

        def one() -> None:
            sleeps = [{"type": "sleep", "timeoutMillis": rng.randint(10, 50)} for _ in range(20)]
            body = {"commands": [{"type": "awaitAllCompleted", "commands": sleeps}]}
            result = call(
                "VirtualObjectCommandInterpreter", "interpretCommands", body, key=new_key(), timeout=60
            )
            expect(result, "|".join(["ok:sleep"] * 20))

        with ThreadPoolExecutor(50) as pool:
            for future in [pool.submit(one) for _ in range(50)]:
                future.result()

    def failing_renderings() -> None:
        metadata = {"key1": "value1", "key2": "value2"}
        for handler, message in (
            ("terminallyFailingCall", "my error"),
            ("callTerminallyFailingCall", "propagated error"),
            ("terminallyFailingSideEffect", "failed side effect"),
        ):
            for with_metadata in (False, True):
                payload: dict[str, Any] = {"errorMessage": message}
                if with_metadata:
                    payload["metadata"] = metadata
                error = expect_error(
                    lambda h=handler, p=payload: call("Failing", h, p, key=new_key(), idempotency_key=ik()),
                    status=500,
                    contains=message,
                )
                expected = {"code": 500, "message": message, "source": "invocation"}
                if with_metadata:
                    expected["metadata"] = metadata
                expect(json.loads(error.body), expected, f"{handler} metadata={with_metadata}")

    def failing_eventual_success() -> None:
        expect(call("Failing", "failingCallWithEventualSuccess", key=new_key(), idempotency_key=ik()), 4)

    def failing_run_retry() -> None:
        result = call(
            "Failing", "sideEffectSucceedsAfterGivenAttempts", 3, key=new_key(), idempotency_key=ik()
        )
        expect_true(result >= 3, f"withSuccess {result} >= 3")
        result = call("Failing", "sideEffectFailsAfterGivenAttempts", 1, key=new_key(), idempotency_key=ik())
        expect_true(result >= 1, f"executedOnlyOnce {result} >= 1")
        result = call("Failing", "sideEffectFailsAfterGivenAttempts", 3, key=new_key(), idempotency_key=ik())
        expect_true(result >= 3, f"withExhaustedAttempts {result} >= 3")

    def cancel_flow(op: str, from_context: bool) -> None:
        k = new_key()
        if from_context:
            request = {
                "serviceName": "CancelTestRunner",
                "virtualObjectKey": k,
                "handlerName": "startTest",
                "message": as_bytes(f'"{op}"'),
            }
            invocation_id = call("Proxy", "oneWayCall", request, idempotency_key=ik())
        else:
            invocation_id = ingress.send("CancelTestRunner", "startTest", op, key=k, idempotency_key=ik())[
                "invocationId"
            ]
        eventually(lambda: expect(call("AwakeableHolder", "hasAwakeable", key=k), True), what="hasAwakeable")
        call("AwakeableHolder", "unlock", "cancel", key=k, idempotency_key=ik())

        def cancel_and_verify() -> None:
            if from_context:
                call("TestUtilsService", "cancelInvocation", invocation_id, idempotency_key=ik())
                result = call("CancelTestRunner", "verifyTest", key=k, idempotency_key=ik(), timeout=1)
            else:
                with contextlib.suppress(Exception):  # 404/409 are fine
                    admin.cancel_invocation(invocation_id)
                result = call("CancelTestRunner", "verifyTest", key=k, timeout=1)
            expect(result, True, "verifyTest")

        def retry_on_timeout() -> None:
            try:
                cancel_and_verify()
            except (TimeoutError, OSError) as exc:
                raise CheckFailed(f"verifyTest did not answer within 1 s: {exc}") from exc

        eventually(retry_on_timeout, timeout=10, what="cancel + verifyTest")
        eventually(lambda: call("CancelTestBlockingService", "isUnlocked", key=k, raw=True), timeout=10)

    def cancel_flows() -> None:
        for op in ("CALL", "SLEEP", "AWAKEABLE"):
            cancel_flow(op, from_context=False)
            cancel_flow(op, from_context=True)

    def kill_flow() -> None:
        k = new_key()
        invocation_id = ingress.send("KillTestRunner", "startCallTree", key=k, idempotency_key=ik())[
            "invocationId"
        ]
        eventually(lambda: expect(call("AwakeableHolder", "hasAwakeable", key=k), True), what="hasAwakeable")
        call("AwakeableHolder", "unlock", "cancel", key=k, idempotency_key=ik())
        time.sleep(0.2)  # let recursiveCall #1 reach its inboxed self-call
        eventually(lambda: admin.kill_invocation(invocation_id), what="kill")
        expect(call("KillTestSingleton", "isUnlocked", key=k, raw=True, timeout=10), b"")
        expect_error(lambda: ingress.attach(invocation_id, timeout=10), status=409)

    def awakeable_holder() -> None:
        k = new_key()
        expect(call("AwakeableHolder", "hasAwakeable", key=k), False)
        expect_error(
            lambda: call("AwakeableHolder", "unlock", "x", key=k), status=500, contains="No awakeable"
        )

    def workflow() -> None:
        w = new_key()
        first = ingress.send("BlockAndWaitWorkflow", "run", "Francesco", key=w)
        expect(first["status"], "Accepted")
        expect(call("BlockAndWaitWorkflow", "getState", key=new_key()), None, "getState of a fresh workflow")
        eventually(lambda: expect(call("BlockAndWaitWorkflow", "getState", key=w), "Francesco"))
        status, _, body = http_request(
            server.ingress_url, "GET", f"/restate/workflow/BlockAndWaitWorkflow/{w}/output"
        )
        expect(status, 470, f"output before completion: {body!r}")
        call("BlockAndWaitWorkflow", "unblock", "Till", key=w, idempotency_key=ik())
        status, _, body = http_request(
            server.ingress_url, "GET", f"/restate/workflow/BlockAndWaitWorkflow/{w}/attach"
        )
        expect((status, json.loads(body)), (200, "Till"), "attach")
        status, _, body = http_request(
            server.ingress_url, "GET", f"/restate/workflow/BlockAndWaitWorkflow/{w}/output"
        )
        expect((status, json.loads(body)), (200, "Till"), "output")
        again = ingress.send("BlockAndWaitWorkflow", "run", "Francesco", key=w)
        expect(again, {"invocationId": first["invocationId"], "status": "PreviouslyAccepted"})

    def object_interpreter() -> None:
        k = new_key()
        helper = "ServiceInterpreterHelper"
        call(helper, "ping")
        expect(call(helper, "echo", "e"), "e")
        expect(call(helper, "echoLater", {"sleep": 10, "parameter": "later"}), "later")
        expect_error(lambda: call(helper, "terminalFailure"), status=500, contains="bye")
        program = {
            "commands": [
                {"kind": 1, "key": 1},  # 0 SetState
                {"kind": 2, "key": 1},  # 1 GetState
                {"kind": 3, "key": 1},  # 2 ClearState
                {"kind": 4},  # 3 IncrementStateCounter                         +1
                {"kind": 5},  # 4 IncrementStateCounterIndirectly               +1
                {"kind": 6, "duration": 10},  # 5 Sleep
                {"kind": 7},  # 6 CallService
                {"kind": 8, "sleep": 10},  # 7 CallSlowService
                {"kind": 9, "duration": 10},  # 8 IncrementViaDelayedCall      +1
                {"kind": 10},  # 9 SideEffect
                {"kind": 11},  # 10 ThrowingSideEffect
                {"kind": 12},  # 11 SlowSideEffect
                {"kind": 13},  # 12 RecoverTerminalCall
                {"kind": 14},  # 13 RecoverTerminalCallMaybeUnAwaited
                {"kind": 16},  # 14 ResolveAwakeable
                {"kind": 17},  # 15 RejectAwakeable
                {"kind": 18},  # 16 IncrementStateCounterViaAwakeable          +1
                {"kind": 19, "key": 7, "program": {"commands": [{"kind": 4}, {"kind": 1, "key": 2}]}},  # 17
                {"kind": 15, "index": 6},
                {"kind": 15, "index": 7},
                {"kind": 15, "index": 13},
                {"kind": 15, "index": 14},
                {"kind": 15, "index": 15},
                {"kind": 15, "index": 17},
            ]
        }
        expect(call("ObjectInterpreterL0", "interpret", program, key=k, idempotency_key=ik(), raw=True), b"")
        eventually(lambda: expect(call("ObjectInterpreterL0", "counter", key=k), 4), what="L0 counter")
        expect(call("ObjectInterpreterL1", "counter", key="7"), 1)
        expect_error(
            lambda: call("ObjectInterpreterL0", "interpret", {"commands": [{"kind": 15, "index": 0}]}, key=k),
            status=500,
            contains="can not find a promise",
        )

    def blocking_proxy(second: ServeProcess) -> None:
        del second
        run_id = new_key()[:8]
        keys = [f"blocker-{run_id}-{i}" for i in range(4)]
        calls = [
            {
                "proxyRequest": {
                    "serviceName": "BlockingProxy",
                    "handlerName": "block",
                    "message": as_bytes(json.dumps(key)),
                    "scope": f"s2s-scope-{run_id}",
                    "limitKey": f"s2s-limitkey-{run_id}",
                },
                "oneWayCall": True,
                "awaitAtTheEnd": False,
            }
            for key in keys
        ]
        call("Proxy", "manyCalls", calls, idempotency_key=ik())
        for key in keys:
            eventually(lambda key=key: expect_true(call("Blocker", "getAwakeable", key=key) != "", "awk"))
            call("Blocker", "resolveAwakeable", "done", key=key, idempotency_key=ik())
        for key in keys:
            eventually(lambda key=key: expect(call("Blocker", "getResult", key=key), "done"))
        expect_error(
            lambda: call("Blocker", "resolveAwakeable", "x", key=new_key()), contains="not registered"
        )

    return [
        ("Counter", counter),
        ("Counter.get shared", counter_get_is_shared),
        ("Proxy.call uppercaseEcho", proxy_call),
        ("Proxy.call signed bytes", proxy_call_signed_bytes_and_raw),
        ("Proxy.oneWayCall", proxy_one_way_call),
        ("Proxy idempotency keys", proxy_idempotency_keys),
        ("Proxy.oneWayCall delay", proxy_one_way_call_with_delay),
        ("Proxy.manyCalls ordering", proxy_many_calls_ordering),
        ("Proxy scope/limitKey ignored", proxy_scope_is_ignored),
        ("ListObject", list_object),
        ("MapObject", map_object),
        ("TestUtilsService", test_utils),
        ("Interpreter awaitAny/timeout/getResults", interpreter_await_any_sleep),
        ("Interpreter firstSuccessfulCompletedAwakeable", interpreter_first_successful_awakeable),
        ("Interpreter awaitAllCompleted mix", interpreter_mixed_all_completed),
        ("Interpreter signal combinators", interpreter_signal_combinators),
        ("Interpreter signals resolve/reject", interpreter_signal_resolve_reject),
        ("Interpreter misc", interpreter_misc),
        ("Sleep manySleeps", many_sleeps),
        ("Failing renderings", failing_renderings),
        ("Failing eventual success", failing_eventual_success),
        ("Failing run retry", failing_run_retry),
        ("Cancellation (admin + context, 3 ops)", cancel_flows),
        ("KillInvocation", kill_flow),
        ("AwakeableHolder", awakeable_holder),
        ("WorkflowAPI", workflow),
        ("ObjectInterpreter + helper", object_interpreter),
        ("BlockingProxy/Blocker", blocking_proxy),
    ]


# ---------------------------------------------------------------------------------------- main


def serve_py_checks(runner: Runner) -> None:
    def unknown_service() -> None:
        env = {**os.environ, "SERVICES": "Counter,NoSuchService", "PORT": str(free_port())}
        done = subprocess.run(
            [sys.executable, SERVE], cwd="/", env=env, capture_output=True, text=True, timeout=60, check=False
        )
        expect_true(done.returncode != 0, f"exit status {done.returncode}")
        expect_true("NoSuchService" in done.stderr and "Counter" in done.stderr, done.stderr)

    def services_filter() -> None:
        serve = ServeProcess("filter", {"SERVICES": "Counter, Proxy"})
        try:
            status, _, body = http_request(
                serve.url,
                "GET",
                "/discover",
                headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"},
            )
            expect(status, 200)
            expect(sorted(s["name"] for s in json.loads(body)["services"]), ["Counter", "Proxy"])
        finally:
            serve.stop()

    runner.run("serve.py unknown SERVICES name", unknown_service)
    runner.run("serve.py SERVICES filter", services_filter)


SUITES = {
    "default": {},
    "alwaysSuspending": {"RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s"},
    "lazyStateAlwaysSuspending": {
        "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s",
        "RESTATE_WORKER__INVOKER__DISABLE_EAGER_STATE": "true",
    },
}
# checks that run outside the thread pool (timing-sensitive or long)
SEQUENTIAL = {
    "Cancellation (admin + context, 3 ops)",
    "KillInvocation",
    "Failing eventual success",
    "Sleep manySleeps",
}


def run_suite(runner: Runner, suite: str) -> None:
    """Every default check against a server configured like the suite ``suite``."""
    prefix = f"[{suite}] "
    if not any(runner.wanted(prefix + n) for n in DEFAULT_CHECKS):
        return
    suspending = "INACTIVITY_TIMEOUT" in " ".join(SUITES[suite])
    with environment(suite, server_env=SUITES[suite]) as (server, _serve, ingress, admin):
        second = ServeProcess(f"{suite}-scenario-local", {"SERVICES": "BlockingProxy,Blocker"})
        try:
            server.register_deployment(second.url)
            checks = default_checks(ingress, admin, server, suspending)
            assert [n for n, _ in checks] == DEFAULT_CHECKS
            blocking = dict(checks)["BlockingProxy/Blocker"]
            checks = [
                (n, blocking, (second,)) if n == "BlockingProxy/Blocker" else (n, f, ()) for n, f in checks
            ]
            runner.run_parallel(
                [(prefix + n, lambda f=f, a=a: f(*a)) for n, f, a in checks if n not in SEQUENTIAL]
            )
            for name, fn, args in checks:
                if name in SEQUENTIAL:
                    runner.run(prefix + name, lambda f=fn, a=args: f(*a))
        finally:
            second.stop()


def run_always_suspending(runner: Runner) -> None:
    names = ["NonDeterminismErrors", "RunFlush countExecutedSideEffects", "Sleep under suspension"]
    if not any(runner.wanted(n) for n in names):
        return
    server_env = {
        "RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT": "0s",
        "RESTATE_DEFAULT_RETRY_POLICY__MAX_ATTEMPTS": "1",
        "RESTATE_DEFAULT_RETRY_POLICY__ON_MAX_ATTEMPTS": "kill",
        "RESTATE_DEFAULT_RETRY_POLICY__INITIAL_INTERVAL": "1ms",
    }
    services = "NonDeterministic,Counter,TestUtilsService,VirtualObjectCommandInterpreter"
    with environment("always-suspending", services, server_env) as (_server, _serve, ingress, _admin):
        call = ingress.call

        def non_determinism(handler: str) -> None:
            call("Counter", "add", 1, key=handler, idempotency_key=ik())
            expect_error(
                lambda: call("NonDeterministic", handler, key=handler, idempotency_key=ik()), status=570
            )
            time.sleep(0.5)
            eventually(lambda: expect(call("Counter", "get", key=handler), 1))

        def non_determinism_all() -> None:
            handlers = [
                "eitherSleepOrCall",
                "callDifferentMethod",
                "backgroundInvokeWithDifferentTargets",
                "setDifferentKey",
            ]
            with ThreadPoolExecutor(4) as pool:
                for future in [pool.submit(non_determinism, h) for h in handlers]:
                    future.result()

        def run_flush() -> None:
            expect(call("TestUtilsService", "countExecutedSideEffects", 3, idempotency_key=ik()), 0)

        def sleep_suspending() -> None:
            started = time.monotonic()
            body = {"commands": [{"type": "awaitOne", "command": {"type": "sleep", "timeoutMillis": 200}}]}
            expect(call("VirtualObjectCommandInterpreter", "interpretCommands", body, key=new_key()), "sleep")
            expect_true(time.monotonic() - started >= 0.2, "slept")

        runner.run("NonDeterminismErrors", non_determinism_all)
        runner.run("RunFlush countExecutedSideEffects", run_flush)
        runner.run("Sleep under suspension", sleep_suspending)


def run_restarts(runner: Runner) -> None:
    """SleepWithFailures (the SDK process dies mid-sleep) and Kill/StopRuntime (the server does)."""
    names = ["SleepWithFailures SIGKILL", "SleepWithFailures SIGTERM", "KillRuntime", "StopRuntime"]
    if not any(runner.wanted(n) for n in names):
        return
    with environment("restarts", "VirtualObjectCommandInterpreter,Counter") as (
        server,
        serve,
        ingress,
        _admin,
    ):

        def sleep_with_failure(sig: int) -> None:
            started = time.monotonic()
            body = {"commands": [{"type": "awaitOne", "command": {"type": "sleep", "timeoutMillis": 4000}}]}
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(
                    ingress.call,
                    "VirtualObjectCommandInterpreter",
                    "interpretCommands",
                    body,
                    key=new_key(),
                    idempotency_key=ik(),
                    timeout=60,
                )
                time.sleep(1.5)
                expect_true(not pending.done(), "still sleeping when the endpoint goes down")
                exited = serve.restart(sig)
                expect_true(exited < 10, f"serve.py took {exited:.1f}s to exit on signal {sig}")
                expect(pending.result(60), "sleep")
            expect_true(time.monotonic() - started >= 4, "slept at least 4 s")

        def runtime_restart(kill: bool) -> None:
            k = new_key()
            expect(
                ingress.call("Counter", "add", 1, key=k, idempotency_key=ik()), {"oldValue": 0, "newValue": 1}
            )
            if kill:
                server.kill()
                server.start()
            else:
                server.restart()
            fixed = ik()
            result = eventually(
                lambda: ingress.call("Counter", "add", 2, key=k, idempotency_key=fixed, timeout=5),
                timeout=60,
                interval=0.5,
                what="add after restart",
            )
            expect(result, {"oldValue": 1, "newValue": 3})

        runner.run("SleepWithFailures SIGKILL", lambda: sleep_with_failure(signal.SIGKILL))
        runner.run("SleepWithFailures SIGTERM", lambda: sleep_with_failure(signal.SIGTERM))
        runner.run("KillRuntime", lambda: runtime_restart(kill=True))
        runner.run("StopRuntime", lambda: runtime_restart(kill=False))


def run_request_signing(runner: Runner) -> None:
    if not runner.wanted("ProxyRequestSigning"):
        return
    with tempfile.TemporaryDirectory() as tmp:
        pem = os.path.join(tmp, "a.pem")
        with open(pem, "w") as f:
            f.write(SIGNING_PRIVATE_PEM)
        server_env = {"RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": pem}
        with environment("signing", "Counter", server_env, E2E_REQUEST_SIGNING=SIGNING_PUBLIC_KEY) as (
            _server,
            serve,
            ingress,
            _admin,
        ):

            def signed() -> None:
                k = new_key()
                expect(
                    ingress.call("Counter", "add", 1, key=k, idempotency_key=ik()),
                    {"oldValue": 0, "newValue": 1},
                )
                expect(ingress.call("Counter", "get", key=k, idempotency_key=ik()), 1)
                status, _, _ = http_request(
                    serve.url,
                    "GET",
                    "/discover",
                    headers={"accept": "application/vnd.restate.endpointmanifest.v3+json"},
                )
                expect(status, 401, "unsigned discovery is rejected")

            runner.run("ProxyRequestSigning", signed)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-k", action="append", default=[], help="run only checks whose name contains this")
    parser.add_argument("-v", action="store_true", help="print tracebacks")
    parser.add_argument("--keep-logs", action="store_true", help="keep the serve.py logs")
    args = parser.parse_args()
    global KEEP_LOGS
    KEEP_LOGS = args.keep_logs
    runner = Runner(args.k, args.v)
    started = time.monotonic()
    serve_py_checks(runner)
    for suite in SUITES:
        run_suite(runner, suite)
    run_always_suspending(runner)
    run_request_signing(runner)
    run_restarts(runner)
    failed = [name for name, ok, _, _ in runner.results if not ok]
    print(
        f"\n{len(runner.results) - len(failed)} passed, {len(failed)} failed "
        f"in {time.monotonic() - started:.1f}s" + (f": {', '.join(failed)}" if failed else "")
    )
    return 1 if failed or not runner.results else 0


if __name__ == "__main__":
    sys.exit(main())
