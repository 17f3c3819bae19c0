"""Cancellation from the admin API and from a handler context (upstream: restatedev/e2e, sdk-tests)."""

from __future__ import annotations

import pytest

from restate_sync.client import AdminError

from .harness import ConformanceEnv, eventually, invocation_id, json_bytes, new_key

BLOCKING_OPERATIONS = ["CALL", "SLEEP", "AWAKEABLE"]


def _await_awakeable_then_unlock(conf: ConformanceEnv, key: str) -> None:
    def registered() -> None:
        assert conf.ingress.call("AwakeableHolder", "hasAwakeable", key=key) is True

    eventually(registered, what="awakeable is registered")
    conf.ingress.call("AwakeableHolder", "unlock", "cancel", key=key, idempotent=True)


def _await_unlocked(conf: ConformanceEnv, key: str) -> None:
    # The exclusive isUnlocked returning at all proves the object's lock was released.
    eventually(
        lambda: conf.ingress.call("CancelTestBlockingService", "isUnlocked", key=key),
        what="blocking service is unlocked",
    )


class TestCancellation:
    @pytest.mark.parametrize("blocking_operation", BLOCKING_OPERATIONS)
    def test_cancelFromAdminAPI(self, conf: ConformanceEnv, blocking_operation: str) -> None:
        key = new_key()
        started = conf.ingress.send(
            "CancelTestRunner", "startTest", blocking_operation, key=key, idempotent=True
        ).invocation_id
        _await_awakeable_then_unlock(conf, key)

        # The cancel signal may arrive before the blocking call was made, so retry.
        def cancel_and_verify() -> None:
            try:
                conf.admin.cancel_invocation(started)
            except AdminError as exc:
                if exc.status not in (404, 409):  # already completed/cancelled
                    raise
            verified = conf.ingress.call("CancelTestRunner", "verifyTest", key=key, timeout=1)
            # Not asserted by the Kotlin test (§7 quirk): startTest must have seen the 409.
            assert verified is True, f"verifyTest returned {verified!r}"

        eventually(cancel_and_verify, what="verify test")
        _await_unlocked(conf, key)

    @pytest.mark.parametrize("blocking_operation", BLOCKING_OPERATIONS)
    def test_cancelFromContext(self, conf: ConformanceEnv, blocking_operation: str) -> None:
        key = new_key()
        request = {
            "serviceName": "CancelTestRunner",
            "virtualObjectKey": key,
            "handlerName": "startTest",
            "message": json_bytes(blocking_operation),
        }
        target = invocation_id(conf.ingress.call("Proxy", "oneWayCall", request, idempotent=True))
        _await_awakeable_then_unlock(conf, key)

        def cancel_and_verify() -> None:
            conf.ingress.call("TestUtilsService", "cancelInvocation", target, idempotent=True)
            verified = conf.ingress.call(
                "CancelTestRunner", "verifyTest", key=key, idempotent=True, timeout=1
            )
            assert verified is True, f"verifyTest returned {verified!r}"

        eventually(cancel_and_verify, what="verify test")
        _await_unlocked(conf, key)
