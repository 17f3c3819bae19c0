"""Ingress: header pass-through and raw handlers (upstream: restatedev/e2e, sdk-tests)."""

from __future__ import annotations

import os

import pytest

from .harness import ConformanceEnv


class TestIngress:
    @pytest.mark.timeout(15)
    def test_headersPassThrough(self, conf: ConformanceEnv) -> None:
        name, value = "x-my-custom-header", "x-my-custom-value"
        headers = conf.ingress.call("TestUtilsService", "echoHeaders", idempotent=True, headers={name: value})
        # Map<String, String>
        assert isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values()), headers
        assert headers.get(name) == value, headers

    def test_rawHandler(self, conf: ConformanceEnv) -> None:
        data = os.urandom(100)
        assert conf.ingress.call("TestUtilsService", "rawEcho", data, raw=True, idempotent=True) == data
