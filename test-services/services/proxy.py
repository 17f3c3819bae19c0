"""``Proxy`` (contracts §3.10): raw calls and sends described by a ``ProxyRequest``.

``message`` is the callee's request body as a JSON array of byte numbers (kotlinx encodes signed
bytes, so −128..255 is accepted and masked with ``& 0xFF``); ``call`` answers with the callee's raw
response bytes as numbers 0..255.
"""

from __future__ import annotations

from typing import Any

import restate_sync as restate

from ._common import RAW, UNIT, ms


def _message(request: dict[str, Any]) -> bytes:
    return bytes(int(b) & 0xFF for b in request.get("message") or [])


def _flow_control(request: dict[str, Any]) -> dict[str, Any]:
    """``scope``/``limitKey`` when present (contracts §3.10); they need service protocol V7."""
    return {"scope": request.get("scope"), "limit_key": request.get("limitKey")}


def _call(ctx: restate.Context, request: dict[str, Any]) -> restate.DurableCallFuture[Any]:
    key = request.get("virtualObjectKey")
    options: dict[str, Any] = {
        "idempotency_key": request.get("idempotencyKey"),
        "input_serde": RAW,
        "output_serde": RAW,
        **_flow_control(request),
    }
    if key is None:
        return ctx.service_call(request["serviceName"], request["handlerName"], _message(request), **options)
    return ctx.object_call(request["serviceName"], request["handlerName"], key, _message(request), **options)


def _send(ctx: restate.Context, request: dict[str, Any]) -> restate.SendHandle:
    key = request.get("virtualObjectKey")
    delay_millis = request.get("delayMillis")
    options: dict[str, Any] = {
        "idempotency_key": request.get("idempotencyKey"),
        "delay": ms(delay_millis) if delay_millis else None,
        "input_serde": RAW,
        **_flow_control(request),
    }
    if key is None:
        return ctx.service_send(request["serviceName"], request["handlerName"], _message(request), **options)
    return ctx.object_send(request["serviceName"], request["handlerName"], key, _message(request), **options)


class Proxy(restate.Service):
    @restate.handler
    def call(ctx: restate.Context, request: dict[str, Any]) -> list[int]:
        return list(_call(ctx, request).result())

    @restate.handler(name="oneWayCall")
    def one_way_call(ctx: restate.Context, request: dict[str, Any]) -> str:
        return _send(ctx, request).invocation_id

    @restate.handler(name="manyCalls", output=UNIT)
    def many_calls(ctx: restate.Context, requests: list[dict[str, Any]]) -> None:
        to_await = []
        for request in requests:
            if request.get("oneWayCall"):
                _send(ctx, request["proxyRequest"])
            else:
                future = _call(ctx, request["proxyRequest"])
                if request.get("awaitAtTheEnd"):
                    to_await.append(future)
        if to_await:
            restate.all(*to_await).result()
