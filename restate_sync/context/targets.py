"""What a call or send addresses: its positional arguments, its target handler and serdes, and
the checks of its options (keys, delay). Plain functions, shared by every call and send."""

from __future__ import annotations

import builtins
from typing import Any

from ..durations import Duration, to_millis
from ..errors import MisuseError
from ..serde import Serde
from ..service import HandlerDefinition, ServiceDefinition, ServiceKind, handler_target, service_definition
from ..values import ANY


def check_call_keys(what: str, idempotency_key: str | None, scope: str | None, limit_key: str | None) -> None:
    for name, value in (("idempotency_key", idempotency_key), ("scope", scope), ("limit_key", limit_key)):
        if value is not None and (not isinstance(value, str) or not value):
            raise MisuseError(f"ctx.{what}(): {name} must be a non-empty string, got {value!r}")
    if limit_key is not None and scope is None:
        raise MisuseError(
            f"ctx.{what}(): limit_key needs a scope (restate-server applies limit keys within a scope)"
        )


def call_arguments(
    kind: ServiceKind, what: str, target: Any, rest: tuple[Any, ...]
) -> tuple[Any, Any, str, Any]:
    """``(service, handler, key, arg)`` from a call's positional arguments (``handler`` None: a
    handler reference)."""
    keyed = kind is not ServiceKind.SERVICE
    if isinstance(target, (str, builtins.type, ServiceDefinition)):
        service, handler, rest = target, rest[0] if rest else None, rest[1:]
        if handler is None:
            raise MisuseError(f"ctx.{what}({target!r}, ...) needs a handler (a name or a function)")
    else:
        service, handler = target, None
    if keyed:
        if not rest or not isinstance(rest[0], str):
            raise MisuseError(f"ctx.{what}() needs the key (a str) after the target")
        key, rest = rest[0], rest[1:]
    else:
        key = ""
    if len(rest) > 1:
        raise MisuseError(f"ctx.{what}() takes one argument for the handler, got {len(rest)}")
    return service, handler, key, rest[0] if rest else None


def resolve_target(
    kind: ServiceKind,
    service: Any,
    handler: Any,
    input_serde: Serde[Any] | None,
    output_serde: Serde[Any] | None,
) -> tuple[str, str, Serde[Any], Serde[Any]]:
    """Service and handler names and the input/output serdes of a call or send target."""
    if handler is None:  # a handler reference alone
        found = handler_target(service)
        if found is None:
            raise MisuseError(
                f"{service!r} is not a handler of a Restate service class; pass a handler "
                "(MyService.my_handler) or the service and handler names"
            )
        definition_kind, service_name, target = found
    elif isinstance(service, str):
        if not isinstance(handler, str):
            raise MisuseError(
                f"the handler must be a name when the service is a name ({service!r}), not {handler!r}"
            )
        return service, handler, input_serde or ANY, output_serde or ANY
    else:
        try:
            definition = service_definition(service)
        except TypeError as exc:
            raise MisuseError(str(exc)) from None
        target_or_none: HandlerDefinition | None
        if isinstance(handler, str):
            target_or_none = definition.handlers.get(handler)
        else:
            target_or_none = next((h for h in definition.handlers.values() if h.fn is handler), None)
        if target_or_none is None:
            raise MisuseError(f"{definition.name} has no handler {handler!r}")
        definition_kind, service_name, target = definition.kind, definition.name, target_or_none
    if definition_kind is not kind:
        raise MisuseError(
            f"{service_name}/{target.name} is a {_SERVICE_KIND_NAMES[definition_kind]} handler; "
            f"call it with ctx.{_CALL_NAMES[definition_kind]}"
        )
    return (
        service_name,
        target.name,
        input_serde or target.input_serde,
        output_serde or target.output_serde,
    )


def checked_duration(value: Duration, what: str) -> int:
    try:
        return to_millis(value, what)
    except (TypeError, ValueError) as exc:
        raise MisuseError(str(exc)) from None


_SERVICE_KIND_NAMES = {
    ServiceKind.SERVICE: "Service",
    ServiceKind.VIRTUAL_OBJECT: "VirtualObject",
    ServiceKind.WORKFLOW: "Workflow",
}
_CALL_NAMES = {
    ServiceKind.SERVICE: "service_call / service_send",
    ServiceKind.VIRTUAL_OBJECT: "object_call / object_send",
    ServiceKind.WORKFLOW: "workflow_call / workflow_send",
}
