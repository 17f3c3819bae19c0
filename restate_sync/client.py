"""Small blocking clients for the Restate ingress and admin HTTP APIs (standard library only).

::

    ingress = IngressClient("http://127.0.0.1:8080")
    ingress.call("Greeter", "greet", "World")              # POST /Greeter/greet
    ingress.call("Counter", "add", 1, key="alice")         # POST /Counter/alice/add
    ingress.send("Greeter", "greet", "later", delay=10)    # POST /Greeter/greet/send?delay=10000ms

    admin = AdminClient("http://127.0.0.1:9070")
    admin.register_deployment("http://127.0.0.1:9080")
    admin.query("SELECT id, status FROM sys_invocation")

Every request uses its own ``http.client`` connection, so one client can be shared by threads
(or greenlets: under gevent monkey-patching the sockets cooperate). Proxy environment variables
are deliberately ignored: these APIs are on the local machine.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from .durations import to_millis

__all__ = ["AdminClient", "AdminError", "IngressClient", "IngressError", "RestateHTTPError"]

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"


class RestateHTTPError(Exception):
    """A non-2xx answer from a Restate HTTP API.

    ``status`` is the HTTP status, ``message`` the ``message`` field of the JSON error body when
    there is one (else the body as text), ``body`` the raw response body.
    """

    def __init__(self, status: int, message: str, body: bytes, *, code: Any = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.body = body
        self.code = code

    @classmethod
    def from_response(cls, status: int, body: bytes) -> RestateHTTPError:
        message = body.decode("utf-8", errors="replace").strip()
        code: Any = None
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            message = parsed["message"]
            code = parsed.get("code", parsed.get("restate_code"))
        return cls(status, message, body, code=code)

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"


class IngressError(RestateHTTPError):
    """A non-2xx answer from the ingress (``{"code": ..., "message": ...}`` bodies are parsed)."""


class AdminError(RestateHTTPError):
    """A non-2xx answer from the admin API (``{"message": ..., "restate_code": ...}`` bodies)."""


class HTTPTransport:
    """Blocking request/response over a fresh ``http.client`` connection per request."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s)://host[:port] URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; return the status and the body."""
        status, _headers, data = self.exchange(method, path, body, headers, timeout)
        return status, data

    def exchange(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return the status, the lower-cased response headers and the body."""
        conn: http.client.HTTPConnection
        t = self.timeout if timeout is None else timeout
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=t)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=t)
        try:
            conn.request(method, self._prefix + path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def health(self, path: str) -> bool:
        try:
            status, _ = self.request("GET", path)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200


def quote_segment(value: str) -> str:
    """One URL path segment, every reserved character escaped."""
    return quote(value, safe="")


def target_path(service: str, handler: str, key: str | None = None) -> str:
    """Ingress path of a handler: ``/S/h``, or ``/O/{key}/h`` for objects and workflows (key URL-encoded)."""
    path = "/" + quote_segment(service)
    if key is not None:
        path += "/" + quote_segment(key)
    return path + "/" + quote_segment(handler)


def _decode_json(body: bytes) -> Any:
    return json.loads(body) if body else None


class IngressClient:
    """Blocking client for the Restate ingress (the user-facing entry point, port 8080 by default)."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        """``base_url`` like ``http://127.0.0.1:8080``; ``timeout`` (seconds) applies per socket operation."""
        self._http = HTTPTransport(base_url, timeout)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> bytes:
        status, data = self._http.request(method, path, body, headers, timeout)
        if not 200 <= status < 300:
            raise IngressError.from_response(status, data)
        return data

    @staticmethod
    def _target(service: str, handler: str, key: str | None) -> str:
        return target_path(service, handler, key)

    @staticmethod
    def _encode(
        payload: Any, raw: bool, idempotency_key: str | None, headers: Mapping[str, str] | None
    ) -> tuple[bytes | None, dict[str, str]]:
        out: dict[str, str] = {}
        body: bytes | None
        if payload is None:
            body = None
        elif raw and isinstance(payload, (bytes, bytearray, memoryview)):
            body = bytes(payload)
            out["content-type"] = OCTET_STREAM
        else:
            body = json.dumps(payload).encode()
            out["content-type"] = JSON
        if idempotency_key is not None:
            out["idempotency-key"] = idempotency_key
        for name, value in (headers or {}).items():
            out[name.lower()] = value
        return body, out

    def call(
        self,
        service: str,
        handler: str,
        payload: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Invoke ``service/handler`` (``service/key/handler`` for objects and workflows) and wait.

        ``payload`` is sent as JSON (no body when None); with ``raw=True`` a bytes payload is sent
        as-is (``application/octet-stream`` unless ``headers`` sets a content-type) and the
        response body comes back as bytes. Otherwise returns the decoded JSON response, or None
        for an empty body. Raises :class:`IngressError` on a non-2xx answer.
        """
        body, hdrs = self._encode(payload, raw, idempotency_key, headers)
        data = self._request("POST", self._target(service, handler, key), body, hdrs, timeout)
        return data if raw else _decode_json(data)

    def send(
        self,
        service: str,
        handler: str,
        payload: Any = None,
        *,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bool = False,
        delay: float | timedelta | None = None,
    ) -> dict[str, Any]:
        """Enqueue ``service/handler`` without waiting for it (``POST .../{handler}/send``).

        ``delay`` (seconds or a timedelta) schedules it for later (``?delay=<N>ms``). Returns the
        ingress answer, e.g. ``{"invocationId": "inv_...", "status": "Accepted"}``.
        """
        body, hdrs = self._encode(payload, raw, idempotency_key, headers)
        path = self._target(service, handler, key) + "/send"
        if delay is not None:
            path += "?" + urlencode({"delay": f"{to_millis(delay, 'delay')}ms"})
        result = _decode_json(self._request("POST", path, body, hdrs))
        assert isinstance(result, dict), result
        return result

    def resolve_awakeable(self, awakeable_id: str, payload: Any = None, *, raw: bool = False) -> None:
        """Complete awakeable ``awakeable_id`` successfully with ``payload`` (JSON, or bytes if raw)."""
        body, hdrs = self._encode(payload, raw, None, None)
        self._request("POST", f"/restate/awakeables/{quote_segment(awakeable_id)}/resolve", body, hdrs)

    def reject_awakeable(self, awakeable_id: str, message: str) -> None:
        """Fail awakeable ``awakeable_id``; the awaiting handler sees a terminal error with ``message``."""
        self._request(
            "POST",
            f"/restate/awakeables/{quote_segment(awakeable_id)}/reject",
            message.encode(),
            {"content-type": "text/plain; charset=utf-8"},
        )

    def attach(self, invocation_id: str, *, raw: bool = False, timeout: float | None = None) -> Any:
        """Wait for invocation ``invocation_id`` to finish and return its result (``GET .../attach``)."""
        data = self._request(
            "GET", f"/restate/invocation/{quote_segment(invocation_id)}/attach", timeout=timeout
        )
        return data if raw else _decode_json(data)

    def output(self, invocation_id: str, *, raw: bool = False) -> Any:
        """The result of a finished invocation (``GET .../output``); HTTP 470 if not finished yet."""
        data = self._request("GET", f"/restate/invocation/{quote_segment(invocation_id)}/output")
        return data if raw else _decode_json(data)

    def health(self) -> bool:
        """Whether ``GET /restate/health`` answers 200 (False on connection errors too)."""
        return self._http.health("/restate/health")


class AdminClient:
    """Blocking client for the Restate admin API (port 9070 by default)."""

    def __init__(self, base_url: str, timeout: float = 30) -> None:
        """``base_url`` like ``http://127.0.0.1:9070``; ``timeout`` (seconds) applies per socket operation."""
        self._http = HTTPTransport(base_url, timeout)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def _request(self, method: str, path: str, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"accept": JSON}
        if body is not None:
            headers["content-type"] = JSON
        status, data = self._http.request(method, path, body, headers)
        if not 200 <= status < 300:
            raise AdminError.from_response(status, data)
        try:
            return _decode_json(data)
        except ValueError:
            return data.decode("utf-8", errors="replace")

    def register_deployment(self, uri: str, use_http_11: bool = False, force: bool = True) -> dict[str, Any]:
        """Register (``POST /deployments``) the deployment at ``uri``; returns its id and services.

        ``use_http_11=True`` registers a request-response (HTTP/1.1) deployment; ``force`` overwrites
        an existing deployment with the same URI. Raises :class:`AdminError` with the body on failure.
        """
        request: dict[str, Any] = {"uri": uri, "force": force}
        if use_http_11:
            request["use_http_11"] = True
        result = self._request("POST", "/deployments", request)
        assert isinstance(result, dict), result
        return result

    def deployments(self) -> list[dict[str, Any]]:
        """All registered deployments (``GET /deployments``)."""
        return list(self._request("GET", "/deployments")["deployments"])

    def services(self) -> list[dict[str, Any]]:
        """All registered services (``GET /services``); empty on a fresh server."""
        return list(self._request("GET", "/services")["services"])

    def service(self, name: str) -> dict[str, Any]:
        """One service's metadata (``GET /services/{name}``); AdminError 404 if unknown."""
        result = self._request("GET", f"/services/{quote_segment(name)}")
        assert isinstance(result, dict), result
        return result

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL over the introspection tables (``POST /query``), e.g. ``sys_invocation``; returns rows."""
        return list(self._request("POST", "/query", {"query": sql})["rows"])

    def cancel_invocation(self, invocation_id: str) -> None:
        """Gracefully cancel an invocation (``PATCH /invocations/{id}/cancel``)."""
        self._request("PATCH", f"/invocations/{quote_segment(invocation_id)}/cancel")

    def kill_invocation(self, invocation_id: str) -> None:
        """Forcefully stop an invocation, without running compensations (``PATCH /invocations/{id}/kill``)."""
        self._request("PATCH", f"/invocations/{quote_segment(invocation_id)}/kill")

    def purge_invocation(self, invocation_id: str) -> None:
        """Remove a completed invocation's retained result/journal (``PATCH /invocations/{id}/purge``)."""
        self._request("PATCH", f"/invocations/{quote_segment(invocation_id)}/purge")

    def health(self) -> bool:
        """Whether ``GET /health`` answers 200 (False on connection errors too)."""
        return self._http.health("/health")
