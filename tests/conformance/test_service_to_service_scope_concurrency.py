"""ServiceToServiceScopeConcurrency [v2] (§4.20): scope and limit key travel on service-to-service
sends, so restate-server's concurrency rules (vqueues) apply to the callees.

As in the Kotlin runner, ``BlockingProxy`` and ``Blocker`` are hosted by the harness itself (our
SDK, in this process) as a second deployment; the SDK under test is the ``Proxy`` contract
service, whose ``manyCalls`` sends four ``BlockingProxy.block`` invocations in one scope and limit
key. The rule "at most 2 concurrent invocations for <scope>/<limitKey>" must hold, and is only
relied on once every partition applied it (read with ``restatectl sql`` from
``partition_state``). Needs protocol V7 and vqueues on the server (the class's server env).
"""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import restate_sync as restate
from restate_sync.testing import EndpointThread
from tests.waiting import wait_until

from . import restatectl
from .harness import ConformanceEnv


class _Running:
    """How many BlockingProxy.block run at once in this process, and the most ever seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.max = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.max = max(self.max, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


RUNNING = _Running()


class BlockingProxy(restate.Service):
    @restate.handler
    def block(ctx: restate.Context, key: str) -> str:
        RUNNING.enter()
        try:
            return ctx.object_call("Blocker", "run", key).result()
        finally:  # also when the attempt suspends or is aborted (BaseException control flow)
            RUNNING.leave()


class Blocker(restate.VirtualObject):
    @restate.handler
    def run(ctx: restate.ObjectContext) -> str:
        awakeable_id, future = ctx.awakeable()
        ctx.set("awk", awakeable_id)
        value = future.result()
        ctx.set("result", value)
        return value

    @restate.shared(name="getAwakeable")
    def get_awakeable(ctx: restate.ObjectSharedContext) -> str:
        return ctx.get("awk") or ""

    @restate.shared(name="getResult")
    def get_result(ctx: restate.ObjectSharedContext) -> str:
        return ctx.get("result") or ""

    @restate.shared(name="resolveAwakeable")
    def resolve_awakeable(ctx: restate.ObjectSharedContext, value: str) -> None:
        awakeable_id = ctx.get("awk")
        if not awakeable_id:
            raise restate.TerminalError("Awakeable not registered yet")
        ctx.resolve_awakeable(awakeable_id, value)


def _admin(conf: ConformanceEnv, method: str, path: str, payload: Any) -> Any:
    request = urllib.request.Request(
        conf.admin_url + path,
        data=json.dumps(payload).encode(),
        method=method,
        headers={"content-type": "application/json", "accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture
def blocking_deployment(conf: ConformanceEnv) -> Iterator[EndpointThread]:
    thread = EndpointThread(restate.endpoint(BlockingProxy, Blocker)).start()
    try:
        conf.admin.register_deployment(thread.url)
        yield thread
    finally:
        thread.stop()


class TestServiceToServiceScopeConcurrency:
    @pytest.mark.timeout(120)
    def test_scopeAndLimitKeyArePropagatedOnServiceToServiceCalls(
        self, conf: ConformanceEnv, blocking_deployment: EndpointThread
    ) -> None:
        try:
            restatectl.find_restatectl()
        except restatectl.RestatectlUnavailable as exc:
            pytest.skip(f"restatectl is needed to read partition_state: {exc}")
        RUNNING.now = RUNNING.max = 0
        run_id = uuid.uuid4().hex[:8]
        scope, limit_key = f"s2s-scope-{run_id}", f"s2s-limitkey-{run_id}"
        pattern = f"{scope}/{limit_key}"
        keys = [f"blocker-{run_id}-{i}" for i in range(4)]

        rules = _admin(conf, "PUT", "/limits/rules", [{"pattern": pattern, "limits": {"concurrency": 2}}])
        version = next(rule["version"] for rule in rules if rule["pattern"] == pattern)
        assert conf.server is not None
        node = f"http://127.0.0.1:{conf.server.node_port}"

        def rule_applied_everywhere() -> bool:
            rows = restatectl.sql(node, "SELECT partition_id, applied_rule_book_version FROM partition_state")
            # a partition that applied no rule book yet has no value (restatectl omits nulls)
            return bool(rows) and all((row.get("applied_rule_book_version") or 0) >= version for row in rows)

        wait_until(
            rule_applied_everywhere, timeout=30, interval=0.5, what="every partition to apply the rule"
        )

        message = lambda key: list(json.dumps(key).encode())  # noqa: E731 - the contract's byte-array body
        conf.ingress.call(
            "Proxy",
            "manyCalls",
            [
                {
                    "proxyRequest": {
                        "serviceName": "BlockingProxy",
                        "handlerName": "block",
                        "message": message(key),
                        "scope": scope,
                        "limitKey": limit_key,
                    },
                    "oneWayCall": True,
                    "awaitAtTheEnd": False,
                }
                for key in keys
            ],
            idempotent=True,
        )

        running_query = (
            "SELECT id, status FROM sys_invocation WHERE target_service_name = 'BlockingProxy' "
            f"AND scope = '{scope}' AND status = 'running'"
        )
        wait_until(
            lambda: len(conf.admin.query(running_query)) == 2, timeout=10, what="2 running BlockingProxy"
        )

        unresolved = set(keys)
        for _ in range(len(keys)):

            def ready_key() -> str | None:
                for key in sorted(unresolved):
                    if conf.ingress.call("Blocker", "getAwakeable", key=key, idempotent=True):
                        return key
                return None

            key = wait_until(ready_key, timeout=30, what="a Blocker with an awakeable")
            conf.ingress.call("Blocker", "resolveAwakeable", "done", key=key, idempotent=True)
            unresolved.discard(key)

        for key in keys:
            wait_until(
                lambda key=key: conf.ingress.call("Blocker", "getResult", key=key, idempotent=True) == "done",
                timeout=30,
                what=f"{key} to finish",
            )
        assert RUNNING.max <= 2, f"{RUNNING.max} BlockingProxy.block ran at once, the rule allows 2"
        assert RUNNING.max == 2  # the limit was reached, so the scope did reach the callees

        _admin(conf, "POST", "/limits/rules/bulk-delete", [{"pattern": pattern}])
