"""The discovery manifest (``GET /discover``), versions v2–v4 negotiated per request.

Only fields that are set are written (restate-server rejects unknown keys and treats absent ones
as "use the default"). Each option field needs the manifest version that introduced it
(docs/protocol.md, "Discovery manifest"); when the negotiated version is too old for a declared option,
:func:`build_manifest` raises :class:`ManifestError` naming the option, and the endpoint answers
500 with that message instead of silently dropping it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .durations import optional_millis
from .protocol.vm import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from .service import HandlerDefinition, HandlerKind, Options, ServiceDefinition

__all__ = ["MANIFEST_CONTENT_TYPE", "ManifestError", "build_manifest", "negotiate_manifest_version"]

MANIFEST_CONTENT_TYPE = "application/vnd.restate.endpointmanifest.v{}+json"
SUPPORTED_MANIFEST_VERSIONS = (4, 3, 2)
_MANIFEST_PREFIX = "application/vnd.restate.endpointmanifest.v"
# a version number: ASCII digits only (str.isdigit also accepts "²"), and a handful of them
_VERSION_NUMBER = re.compile(r"[0-9]{1,4}")
_JSON = "application/json"

# the manifest version that introduced each option field, and the Python option that sets it
_FIELD_VERSIONS = {
    "documentation": 2,
    "metadata": 2,
    "inactivityTimeout": 3,
    "abortTimeout": 3,
    "journalRetention": 3,
    "idempotencyRetention": 3,
    "enableLazyState": 3,
    "ingressPrivate": 3,
    "workflowCompletionRetention": 3,
    "retryPolicyInitialInterval": 4,
    "retryPolicyMaxInterval": 4,
    "retryPolicyMaxAttempts": 4,
    "retryPolicyExponentiationFactor": 4,
    "retryPolicyOnMaxAttempts": 4,
}
_OPTION_NAMES = {
    "documentation": "description",
    "metadata": "metadata",
    "inactivityTimeout": "inactivity_timeout",
    "abortTimeout": "abort_timeout",
    "journalRetention": "journal_retention",
    "idempotencyRetention": "idempotency_retention",
    "enableLazyState": "enable_lazy_state",
    "ingressPrivate": "ingress_private",
    "workflowCompletionRetention": "workflow_completion_retention",
    "retryPolicyInitialInterval": "invocation_retry_policy.initial_interval",
    "retryPolicyMaxInterval": "invocation_retry_policy.max_interval",
    "retryPolicyMaxAttempts": "invocation_retry_policy.max_attempts",
    "retryPolicyExponentiationFactor": "invocation_retry_policy.exponentiation_factor",
    "retryPolicyOnMaxAttempts": "invocation_retry_policy.on_max_attempts",
}
_RESTATE_VERSION_FOR = {4: " (restate-server >= 1.5)"}


class ManifestError(Exception):
    """The services cannot be described in the negotiated manifest version."""


def negotiate_manifest_version(accept: str | None) -> int | None:
    """Highest supported manifest version named in ``Accept``; v2 when no header; None if none."""
    if not accept:
        return 2
    offered: set[int] = set()
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media.startswith(_MANIFEST_PREFIX) and media.endswith("+json"):
            number = media[len(_MANIFEST_PREFIX) : -len("+json")]
            if _VERSION_NUMBER.fullmatch(number):
                offered.add(int(number))
    for version in SUPPORTED_MANIFEST_VERSIONS:
        if version in offered:
            return version
    return None


def _option_fields(options: Options) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if options.description is not None:
        out["documentation"] = options.description
    if options.metadata is not None:
        out["metadata"] = dict(options.metadata)
    for name, key in (
        ("inactivity_timeout", "inactivityTimeout"),
        ("abort_timeout", "abortTimeout"),
        ("journal_retention", "journalRetention"),
        ("idempotency_retention", "idempotencyRetention"),
    ):
        value = optional_millis(getattr(options, name), name)
        if value is not None:
            out[key] = value
    if options.enable_lazy_state is not None:
        out["enableLazyState"] = options.enable_lazy_state
    if options.ingress_private is not None:
        out["ingressPrivate"] = options.ingress_private
    policy = options.invocation_retry_policy
    if policy is not None:
        if policy.initial_interval is not None:
            out["retryPolicyInitialInterval"] = optional_millis(policy.initial_interval, "initial_interval")
        if policy.max_interval is not None:
            out["retryPolicyMaxInterval"] = optional_millis(policy.max_interval, "max_interval")
        if policy.max_attempts is not None:
            out["retryPolicyMaxAttempts"] = policy.max_attempts
        if policy.exponentiation_factor is not None:
            out["retryPolicyExponentiationFactor"] = float(policy.exponentiation_factor)
        if policy.on_max_attempts is not None:
            out["retryPolicyOnMaxAttempts"] = str(policy.on_max_attempts).upper()
    return out


def _check_version(fields: dict[str, Any], version: int, where: str) -> None:
    for key in fields:
        needed = _FIELD_VERSIONS.get(key)
        if needed is not None and needed > version:
            raise ManifestError(
                f"{where}: option {_OPTION_NAMES[key]} (manifest field {key!r}) needs discovery manifest "
                f"v{needed}{_RESTATE_VERSION_FOR.get(needed, '')}, but the runtime "
                f"negotiated v{version}; upgrade restate-server or remove the option"
            )


def _schema(serde: Any) -> Any:
    schema_of = getattr(serde, "json_schema", None)
    return schema_of() if callable(schema_of) else None


def _input(handler: HandlerDefinition) -> dict[str, Any]:
    if not handler.has_input:
        # an optional JSON body: the handler runs with an empty body or ``null`` (any other body is
        # refused with 400 by the invocation driver), so ``curl -d 'null'`` works like no body
        return {"required": False, "contentType": handler.accept or _JSON}
    content_type = handler.accept or getattr(handler.input_serde, "content_type", None) or _JSON
    entry: dict[str, Any] = {"required": handler.input_required, "contentType": content_type}
    schema = _schema(handler.input_serde)
    if schema is not None:
        entry["jsonSchema"] = schema
    return entry


def _output(handler: HandlerDefinition) -> dict[str, Any]:
    entry: dict[str, Any] = {"setContentTypeIfEmpty": False}
    if not handler.has_output:
        if handler.content_type is not None:
            entry["contentType"] = handler.content_type
        return entry  # void: the response has no body and no content type
    entry["contentType"] = (
        handler.content_type or getattr(handler.output_serde, "content_type", None) or _JSON
    )
    schema = _schema(handler.output_serde)
    if schema is not None:
        entry["jsonSchema"] = schema
    return entry


def _handler_manifest(service: ServiceDefinition, handler: HandlerDefinition, version: int) -> dict[str, Any]:
    where = f"{service.name}/{handler.name}"
    entry: dict[str, Any] = {"name": handler.name}
    if handler.kind is not None:
        entry["ty"] = handler.kind.value
    entry["input"] = _input(handler)
    entry["output"] = _output(handler)
    fields = _option_fields(handler.options)
    if "idempotencyRetention" in fields and handler.kind is HandlerKind.WORKFLOW:
        raise ManifestError(f"{where}: idempotency_retention is not allowed on a workflow's main handler")
    retention = optional_millis(handler.workflow_completion_retention, "workflow_completion_retention")
    if retention is not None:
        if handler.kind is not HandlerKind.WORKFLOW:
            raise ManifestError(f"{where}: workflow_completion_retention is only allowed on @restate.main")
        fields["workflowCompletionRetention"] = retention
    _check_version(fields, version, where)
    entry.update(fields)
    return entry


def build_manifest(
    services: Iterable[ServiceDefinition], version: int, protocol_mode: str = "BIDI_STREAM"
) -> dict[str, Any]:
    """The manifest document for ``services`` in manifest ``version`` (2–4)."""
    if version not in SUPPORTED_MANIFEST_VERSIONS:
        raise ManifestError(f"unsupported discovery manifest version v{version}")
    described = []
    for service in services:
        entry: dict[str, Any] = {
            "name": service.name,
            "ty": service.kind.value,
            "handlers": [_handler_manifest(service, h, version) for h in service.handlers.values()],
        }
        fields = _option_fields(service.options)
        if service.options.ingress_private is True:
            for handler in service.handlers.values():
                if handler.options.ingress_private is False:
                    raise ManifestError(
                        f"{service.name}/{handler.name}: the service is ingress_private, so the handler "
                        "cannot be ingress_private=False"
                    )
        _check_version(fields, version, service.name)
        entry.update(fields)
        described.append(entry)
    return {
        "protocolMode": protocol_mode,
        "minProtocolVersion": MIN_PROTOCOL_VERSION,
        "maxProtocolVersion": MAX_PROTOCOL_VERSION,
        "services": described,
    }
