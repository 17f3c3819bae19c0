"""Calls and sends to other handlers: the commands they record, and their keyword options.

The typed signatures (``ctx.service_call`` and the rest) are :class:`~.contexts.Context`'s; they
hand over to :func:`call` and :func:`send` here.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from typing import Any, TypedDict

from ..durations import Duration
from ..futures import DurableCallFuture, HandleFuture, SendHandle, identity
from ..serde import Serde
from ..service import ServiceKind
from .codec import decoder, encode
from .driver import ContextDriver
from .targets import call_arguments, check_call_keys, checked_duration, resolve_target

__all__ = ["CallOptions", "SendOptions", "call", "send"]


class CallOptions(TypedDict, total=False):
    """Keyword options of ``service_call`` / ``object_call`` / ``workflow_call``."""

    idempotency_key: str | None
    headers: Mapping[str, str] | None
    input_serde: Serde[Any] | None
    output_serde: Serde[Any] | None
    scope: str | None
    limit_key: str | None


class SendOptions(TypedDict, total=False):
    """Keyword options of ``service_send`` / ``object_send`` / ``workflow_send``."""

    delay: Duration | None
    idempotency_key: str | None
    headers: Mapping[str, str] | None
    input_serde: Serde[Any] | None
    scope: str | None
    limit_key: str | None


def call(
    driver: ContextDriver,
    kind: ServiceKind,
    what: str,
    target: Any,
    rest: tuple[Any, ...],
    idempotency_key: str | None,
    headers: Mapping[str, str] | None,
    input_serde: Serde[Any] | None,
    output_serde: Serde[Any] | None,
    scope: str | None = None,
    limit_key: str | None = None,
) -> DurableCallFuture[Any]:
    """Record the call of a ``kind`` handler; the future of its result (and invocation id)."""
    check_call_keys(what, idempotency_key, scope, limit_key)
    vm = driver.usable_vm()
    service, handler, key, arg = call_arguments(kind, what, target, rest)
    service_name, handler_name, in_serde, out_serde = resolve_target(
        kind, service, handler, input_serde, output_serde
    )
    invocation_id_handle, result_handle = vm.sys_call(
        service_name,
        handler_name,
        encode(in_serde, arg, f"ctx.{what}() to {service_name}/{handler_name}: the argument"),
        key=key,
        idempotency_key=idempotency_key,
        headers=list(headers.items()) if headers else (),
        scope=scope,
        limit_key=limit_key,
    )
    return DurableCallFuture(
        driver,
        result_handle,
        decoder(out_serde, "the result of", f"{service_name}/{handler_name}"),
        HandleFuture(driver, invocation_id_handle, identity),
    )


def send(
    driver: ContextDriver,
    kind: ServiceKind,
    what: str,
    target: Any,
    rest: tuple[Any, ...],
    delay: Duration | None,
    idempotency_key: str | None,
    headers: Mapping[str, str] | None,
    input_serde: Serde[Any] | None,
    scope: str | None = None,
    limit_key: str | None = None,
) -> SendHandle:
    """Record the one-way send to a ``kind`` handler; the handle of its invocation id."""
    check_call_keys(what, idempotency_key, scope, limit_key)
    vm = driver.usable_vm()
    service, handler, key, arg = call_arguments(kind, what, target, rest)
    service_name, handler_name, in_serde, _ = resolve_target(kind, service, handler, input_serde, None)
    invoke_time = 0
    if delay is not None:
        delay_ms = checked_duration(delay, "delay")
        if delay_ms > 0:
            invoke_time = int(_time.time() * 1000) + delay_ms
    handle = vm.sys_send(
        service_name,
        handler_name,
        encode(in_serde, arg, f"ctx.{what}() to {service_name}/{handler_name}: the argument"),
        key=key,
        idempotency_key=idempotency_key,
        headers=list(headers.items()) if headers else (),
        invoke_time_ms=invoke_time,
        scope=scope,
        limit_key=limit_key,
    )
    return SendHandle(driver, HandleFuture(driver, handle, identity))
