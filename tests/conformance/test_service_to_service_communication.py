"""ServiceToServiceCommunication: calls, one-way sends, idempotency keys, delays (§4.12)."""

from __future__ import annotations

import json
import time

import pytest

from .harness import (
    ConformanceEnv,
    eventually,
    from_byte_array,
    invocation_id,
    json_bytes,
    long,
    new_key,
)


def add_one(counter: str, **extra: object) -> dict:
    return {
        "serviceName": "Counter",
        "virtualObjectKey": counter,
        "handlerName": "add",
        "message": json_bytes(1),
        **extra,
    }


def await_counter(conf: ConformanceEnv, counter: str, expected: int) -> None:
    def check() -> None:
        assert long(conf.ingress.call("Counter", "get", key=counter)) == expected

    eventually(check, what=f"Counter/{counter} == {expected}")


class TestServiceToServiceCommunication:
    def test_regularCall(self, conf: ConformanceEnv) -> None:
        result = conf.ingress.call(
            "Proxy",
            "call",
            {
                "serviceName": "TestUtilsService",
                "handlerName": "uppercaseEcho",
                "message": json_bytes("ping"),
            },
            idempotent=True,
        )
        assert from_byte_array(result) == b'"PING"'

    def test_oneWayCall(self, conf: ConformanceEnv) -> None:
        counter = new_key()
        invocation_id(conf.ingress.call("Proxy", "oneWayCall", add_one(counter), idempotent=True))
        await_counter(conf, counter, 1)

    def test_oneWayCallWithIdempotencyKey(self, conf: ConformanceEnv) -> None:
        counter, idempotency_key = new_key(), new_key()
        # In a loop (no ingress idempotency key): there can be failures; the key dedups repeats.
        eventually(
            lambda: invocation_id(
                conf.ingress.call("Proxy", "oneWayCall", add_one(counter, idempotencyKey=idempotency_key))
            ),
            what="one-way call",
        )
        await_counter(conf, counter, 1)
        output = conf.ingress.idempotent_output("Counter", counter, "add", idempotency_key)
        assert output.ready, "the idempotent invocation's output is not ready"
        assert output.value == {"oldValue": 0, "newValue": 1}

    def test_callWithIdempotencyKey(self, conf: ConformanceEnv) -> None:
        counter, idempotency_key = new_key(), new_key()

        def call() -> None:
            raw = conf.ingress.call("Proxy", "call", add_one(counter, idempotencyKey=idempotency_key))
            assert json.loads(from_byte_array(raw).decode()) == {"oldValue": 0, "newValue": 1}

        eventually(call, what="call with idempotency key")
        await_counter(conf, counter, 1)
        output = conf.ingress.idempotent_output("Counter", counter, "add", idempotency_key)
        assert output.ready, "the idempotent invocation's output is not ready"
        assert output.value == {"oldValue": 0, "newValue": 1}

    @pytest.mark.timeout(30)
    def test_oneWayCallWithDelay(self, conf: ConformanceEnv) -> None:
        counter = new_key()
        started = time.monotonic()
        for _ in range(10):
            invocation_id(
                conf.ingress.call("Proxy", "oneWayCall", add_one(counter, delayMillis=5000), idempotent=True)
            )
        await_counter(conf, counter, 10)
        elapsed = time.monotonic() - started
        # The runtime applies the delay before enqueueing (ten sequential 5 s waits would not fit
        # in the 30 s timeout), and the calls did happen.
        assert elapsed >= 5.0, f"the delayed calls completed after {elapsed:.2f}s, before the 5 s delay"
