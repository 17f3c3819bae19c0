"""Service definitions: ``Service`` / ``VirtualObject`` / ``Workflow`` and the handler decorators.

Handlers are plain functions taking ``(ctx)`` or ``(ctx, input)``; the decorators turn them into
static members of the class and record a :class:`HandlerDefinition`. Defining the class builds
its :class:`ServiceDefinition` (``MyService.__restate_service__``), checking everything that can
be checked before the first request.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from enum import Enum
from typing import Any, ClassVar, TypeVar

from .serde import DEFAULT_SERDE, Serde

__all__ = [
    "HandlerDefinition",
    "HandlerKind",
    "InvocationRetryPolicy",
    "Service",
    "ServiceDefinition",
    "ServiceKind",
    "VirtualObject",
    "Workflow",
    "handler",
    "main",
    "shared",
]

F = TypeVar("F", bound=Callable[..., Any])
Duration = float | int | timedelta


class ServiceKind(Enum):
    SERVICE = "SERVICE"
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"
    WORKFLOW = "WORKFLOW"


class HandlerKind(Enum):
    EXCLUSIVE = "EXCLUSIVE"
    SHARED = "SHARED"
    WORKFLOW = "WORKFLOW"


def duration_ms(value: Duration | None, option: str) -> int | None:
    """Seconds (int/float) or ``timedelta`` → whole milliseconds; ``None`` stays unset."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{option} must be seconds (int/float) or a timedelta, not {type(value).__name__}")
    if seconds < 0:
        raise ValueError(f"{option} must not be negative, got {value!r}")
    return round(seconds * 1000)


@dataclass(frozen=True)
class InvocationRetryPolicy:
    """How Restate retries a failing invocation (durations in seconds or ``timedelta``)."""

    initial_interval: Duration | None = None
    max_interval: Duration | None = None
    max_attempts: int | None = None
    exponentiation_factor: float | None = None
    on_max_attempts: str | None = None  # "pause" | "kill"

    def __post_init__(self) -> None:
        duration_ms(self.initial_interval, "initial_interval")
        duration_ms(self.max_interval, "max_interval")
        if self.max_attempts is not None and (
            not isinstance(self.max_attempts, int) or self.max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be a positive int, got {self.max_attempts!r}")
        if self.on_max_attempts is not None and str(self.on_max_attempts).lower() not in ("pause", "kill"):
            raise ValueError(f"on_max_attempts must be 'pause' or 'kill', got {self.on_max_attempts!r}")

    @classmethod
    def coerce(cls, value: InvocationRetryPolicy | Mapping[str, Any] | None) -> InvocationRetryPolicy | None:
        if value is None or isinstance(value, InvocationRetryPolicy):
            return value
        if isinstance(value, Mapping):
            return cls(**value)
        raise TypeError(f"invocation_retry_policy must be an InvocationRetryPolicy or a dict, not {value!r}")


@dataclass(frozen=True)
class Options:
    """Options shared by services (class keywords) and handlers (decorator keywords)."""

    description: str | None = None
    metadata: Mapping[str, str] | None = None
    inactivity_timeout: Duration | None = None
    abort_timeout: Duration | None = None
    journal_retention: Duration | None = None
    idempotency_retention: Duration | None = None
    ingress_private: bool | None = None
    enable_lazy_state: bool | None = None
    invocation_retry_policy: InvocationRetryPolicy | None = None

    def __post_init__(self) -> None:
        for name in ("inactivity_timeout", "abort_timeout", "journal_retention", "idempotency_retention"):
            duration_ms(getattr(self, name), name)
        if self.metadata is not None:
            for key, value in self.metadata.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise TypeError(f"metadata must map str to str, got {key!r}: {value!r}")
        object.__setattr__(
            self, "invocation_retry_policy", InvocationRetryPolicy.coerce(self.invocation_retry_policy)
        )

    def merged_over(self, defaults: Options) -> Options:
        """These options, with unset ones taken from ``defaults``."""
        return replace(
            defaults,
            **{f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None},
        )


OPTION_NAMES = frozenset(f.name for f in fields(Options))


@dataclass
class HandlerDefinition:
    """One handler as Restate sees it."""

    name: str
    fn: Callable[..., Any]
    kind: HandlerKind | None  # None: the service kind's default (set when the class is built)
    takes_input: bool
    input_serde: Serde[Any] = DEFAULT_SERDE
    output_serde: Serde[Any] = DEFAULT_SERDE
    accept: str | None = None
    content_type: str | None = None
    options: Options = field(default_factory=Options)
    workflow_completion_retention: Duration | None = None
    decorator: str = "handler"

    @property
    def is_shared(self) -> bool:
        return self.kind is HandlerKind.SHARED


@dataclass
class ServiceDefinition:
    """A service, virtual object or workflow with its handlers."""

    name: str
    kind: ServiceKind
    handlers: dict[str, HandlerDefinition]
    options: Options
    cls: type | None = None

    def handler(self, name: str) -> HandlerDefinition | None:
        return self.handlers.get(name)


_MARK = "__restate_handler__"


def _positional_arity(fn: Callable[..., Any]) -> int:
    signature = inspect.signature(fn)
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if parameter.default is parameter.empty:
                count += 1
        elif parameter.kind is parameter.VAR_POSITIONAL:
            raise TypeError(f"handler {fn.__qualname__} must take (ctx) or (ctx, input), not *args")
    return count


def _decorate(
    decorator: str,
    kind: HandlerKind | None,
    fn: Callable[..., Any] | None,
    kwargs: dict[str, Any],
) -> Any:
    name = kwargs.pop("name", None)
    input_serde = kwargs.pop("input", None)
    output_serde = kwargs.pop("output", None)
    accept = kwargs.pop("accept", None)
    content_type = kwargs.pop("content_type", None)
    retention = kwargs.pop("workflow_completion_retention", None)
    if retention is not None and decorator != "main":
        raise TypeError("workflow_completion_retention is only allowed on @restate.main")
    unknown = set(kwargs) - OPTION_NAMES
    if unknown:
        raise TypeError(f"@restate.{decorator} got unknown option(s): {', '.join(sorted(unknown))}")
    options = Options(**kwargs)
    duration_ms(retention, "workflow_completion_retention")

    def wrap(func: Callable[..., Any]) -> Any:
        if isinstance(func, staticmethod):
            func = func.__func__
        if not callable(func):
            raise TypeError(f"@restate.{decorator} decorates functions, not {func!r}")
        arity = _positional_arity(func)
        if arity not in (1, 2):
            raise TypeError(
                f"handler {func.__qualname__} must take (ctx) or (ctx, input); it takes {arity} "
                "required positional parameters"
            )
        description = options.description
        if description is None and func.__doc__:
            description = inspect.cleandoc(func.__doc__)
        definition = HandlerDefinition(
            name=name or func.__name__,
            fn=func,
            kind=kind,
            takes_input=arity == 2,
            input_serde=input_serde if input_serde is not None else DEFAULT_SERDE,
            output_serde=output_serde if output_serde is not None else DEFAULT_SERDE,
            accept=accept,
            content_type=content_type,
            options=replace(options, description=description),
            workflow_completion_retention=retention,
            decorator=decorator,
        )
        setattr(func, _MARK, definition)
        return staticmethod(func)

    return wrap(fn) if fn is not None else wrap


def handler(fn: F | None = None, /, **options: Any) -> Any:
    """Declare a handler: exclusive in a ``VirtualObject``, shared in a ``Workflow``.

    Options: ``name=``, ``input=`` / ``output=`` (serde), ``accept=``, ``content_type=``,
    ``description=``, ``metadata=``, ``inactivity_timeout=``, ``abort_timeout=``,
    ``journal_retention=``, ``idempotency_retention=``, ``ingress_private=``,
    ``enable_lazy_state=``, ``invocation_retry_policy=``.
    """
    return _decorate("handler", None, fn, options)


def shared(fn: F | None = None, /, **options: Any) -> Any:
    """Declare a shared (concurrent, read-only state) handler of a ``VirtualObject``/``Workflow``."""
    return _decorate("shared", HandlerKind.SHARED, fn, options)


def main(fn: F | None = None, /, **options: Any) -> Any:
    """Declare the main handler of a ``Workflow`` (runs once per key)."""
    return _decorate("main", HandlerKind.WORKFLOW, fn, options)


class _ServiceBase:
    """Common machinery of the three service kinds; subclass one of them, not this."""

    __restate_kind__: ClassVar[ServiceKind]
    __restate_service__: ClassVar[ServiceDefinition]

    def __init_subclass__(cls, name: str | None = None, **options: Any) -> None:
        super().__init_subclass__()
        if "__restate_kind__" in cls.__dict__:
            return  # the three kinds themselves
        unknown = set(options) - OPTION_NAMES
        if unknown:
            raise TypeError(f"service {cls.__name__} got unknown option(s): {', '.join(sorted(unknown))}")
        service_options = Options(**options)
        if service_options.description is None and cls.__doc__:
            service_options = replace(service_options, description=inspect.cleandoc(cls.__doc__))
        kind = cls.__restate_kind__
        handlers: dict[str, HandlerDefinition] = {}
        for klass in reversed(cls.__mro__):
            for attribute in vars(klass).values():
                fn = attribute.__func__ if isinstance(attribute, staticmethod) else attribute
                definition = getattr(fn, _MARK, None)
                if definition is None:
                    continue
                definition = _bind_kind(cls.__name__, kind, definition)
                existing = handlers.get(definition.name)
                if existing is not None and existing.fn is not definition.fn and klass is cls:
                    raise TypeError(f"service {cls.__name__} defines handler {definition.name!r} twice")
                handlers[definition.name] = definition
        if kind is ServiceKind.WORKFLOW:
            mains = [h.name for h in handlers.values() if h.kind is HandlerKind.WORKFLOW]
            if len(mains) > 1:
                raise TypeError(
                    f"workflow {cls.__name__} has more than one @main handler: {', '.join(mains)}"
                )
        cls.__restate_service__ = ServiceDefinition(
            name=name or cls.__name__,
            kind=kind,
            handlers=handlers,
            options=service_options,
            cls=cls,
        )


def _bind_kind(service: str, kind: ServiceKind, definition: HandlerDefinition) -> HandlerDefinition:
    decorator = definition.decorator
    if kind is ServiceKind.SERVICE:
        if decorator != "handler":
            raise TypeError(f"@restate.{decorator} is not allowed in Service {service}; use @restate.handler")
        return replace(definition, kind=None)
    if kind is ServiceKind.VIRTUAL_OBJECT:
        if decorator == "main":
            raise TypeError(f"@restate.main is only allowed in a Workflow, not in VirtualObject {service}")
        return replace(
            definition, kind=HandlerKind.SHARED if decorator == "shared" else HandlerKind.EXCLUSIVE
        )
    # workflow: @main is the workflow handler, everything else is shared
    return replace(definition, kind=HandlerKind.WORKFLOW if decorator == "main" else HandlerKind.SHARED)


class Service(_ServiceBase):
    """A stateless service: independent invocations of its handlers."""

    __restate_kind__ = ServiceKind.SERVICE


class VirtualObject(_ServiceBase):
    """A keyed object with durable state; exclusive handlers run one at a time per key."""

    __restate_kind__ = ServiceKind.VIRTUAL_OBJECT


class Workflow(_ServiceBase):
    """A keyed workflow: the ``@main`` handler runs once per key; other handlers are shared."""

    __restate_kind__ = ServiceKind.WORKFLOW


def service_definition(service: Any) -> ServiceDefinition:
    """The definition of a service class (or a definition passed through)."""
    if isinstance(service, ServiceDefinition):
        return service
    definition = getattr(service, "__restate_service__", None)
    if not isinstance(definition, ServiceDefinition):
        raise TypeError(
            f"{service!r} is not a Restate service: subclass restate.Service, VirtualObject or Workflow"
        )
    return definition
