"""UserErrors: terminal errors, their metadata, state before a failure, retries (§4.17)."""

from __future__ import annotations

import json
import uuid

from .harness import ConformanceEnv, expect_http_error, long, new_key

TEST_METADATA = {"key1": "value1", "key2": "value2"}


def failing_call(conf: ConformanceEnv, handler: str, message: str) -> str:
    error = expect_http_error(
        lambda: conf.ingress.call(
            "Failing", handler, {"errorMessage": message}, key=new_key(), idempotent=True
        )
    )
    return error.message


def raw_call_expect_error(conf: ConformanceEnv, handler: str, message: str) -> dict:
    """Raw POST {ingress}/Failing/{key}/{handler}; the error body is decoded leniently as
    ``{code?, message, metadata?}`` (unknown keys ignored)."""
    body = json.dumps({"errorMessage": message, "metadata": TEST_METADATA}).encode()
    resp = conf.ingress.request(
        "POST",
        f"/Failing/{new_key()}/{handler}",
        body,
        {"Content-Type": "application/json", "idempotency-key": str(uuid.uuid4())},
    )
    assert resp.status >= 400, f"expected an error status, got {resp.status}: {resp.body!r}"
    error = json.loads(resp.body)
    assert isinstance(error, dict) and isinstance(error.get("message"), str), error
    assert error.get("code") is None or isinstance(error["code"], int), error
    metadata = error.get("metadata")
    assert metadata is None or (
        isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
    ), error
    return error


def assert_error_with_metadata(conf: ConformanceEnv, handler: str, message: str) -> None:
    error = raw_call_expect_error(conf, handler, message)
    assert message in error["message"], error
    metadata = error.get("metadata") or {}
    assert metadata.items() >= TEST_METADATA.items(), f"metadata {metadata!r} lacks {TEST_METADATA!r}"


class TestUserErrors:
    def test_invokeTerminallyFailingCall(self, conf: ConformanceEnv) -> None:
        assert "my error" in failing_call(conf, "terminallyFailingCall", "my error")

    def test_failSeveralTimes(self, conf: ConformanceEnv) -> None:
        # The endpoint doesn't become unstable after the first failure.
        for _ in range(3):
            assert "my error" in failing_call(conf, "terminallyFailingCall", "my error")

    def test_internalCallFailurePropagation(self, conf: ConformanceEnv) -> None:
        assert "propagated error" in failing_call(conf, "callTerminallyFailingCall", "propagated error")

    def test_sideEffectWithTerminalError(self, conf: ConformanceEnv) -> None:
        assert "failed side effect" in failing_call(conf, "terminallyFailingSideEffect", "failed side effect")

    def test_invokeTerminallyFailingCallWithMetadata(self, conf: ConformanceEnv) -> None:
        assert_error_with_metadata(conf, "terminallyFailingCall", "my error with metadata")

    def test_failSeveralTimesWithMetadata(self, conf: ConformanceEnv) -> None:
        for _ in range(3):
            assert_error_with_metadata(conf, "terminallyFailingCall", "my error with metadata")

    def test_internalCallFailurePropagationWithMetadata(self, conf: ConformanceEnv) -> None:
        assert_error_with_metadata(conf, "callTerminallyFailingCall", "propagated error with metadata")

    def test_sideEffectWithTerminalErrorWithMetadata(self, conf: ConformanceEnv) -> None:
        assert_error_with_metadata(conf, "terminallyFailingSideEffect", "failed side effect with metadata")

    def test_setStateThenFailShouldPersistState(self, conf: ConformanceEnv) -> None:
        counter = "my-failure-counter"
        error = expect_http_error(
            lambda: conf.ingress.call("Counter", "addThenFail", 1, key=counter, idempotent=True)
        )
        assert counter in error.message
        assert long(conf.ingress.call("Counter", "get", key=counter, idempotent=True)) == 1

    def test_invocationWithEventualSuccess(self, conf: ConformanceEnv) -> None:
        result = conf.ingress.call(
            "Failing", "failingCallWithEventualSuccess", key=new_key(), idempotent=True
        )
        assert long(result) == 4
