"""Service definitions: ``Service`` / ``VirtualObject`` / ``Workflow`` and the handler decorators.

Handlers are plain functions taking ``(ctx)`` or ``(ctx, input)``; the decorators turn them into
static members of the class and record a :class:`HandlerDefinition`. Defining the class builds
its :class:`ServiceDefinition` (``MyService.__restate_service__``), checking everything that can
be checked before the first request.

Input and output types come from the handler's annotations (``def h(ctx, req: Request) ->
Response``), or from ``input=`` / ``output=`` on the decorator (a type or a serde object), which
win. They are resolved when the class is defined, with :func:`restate_sync.typed.serde_for`:

* no input parameter, or an input typed ``None`` → no input (``input: {}`` in the manifest);
* ``-> None`` → empty output; no annotation / ``Any`` → plain JSON without a schema;
* ``bytes`` → raw ``application/octet-stream``; dataclasses, TypedDicts, pydantic models, msgspec
  Structs, primitives and generic aliases → validated JSON with a published JSON Schema.

An input type that JSON cannot be decoded into (a plain class that is no struct, primitive,
enum or generic alias and has no ``json_schema()`` classmethod) is a ``TypeError`` when the class
is defined, as are unresolvable annotations, wrong arities, duplicate handler names, ``@shared``
in a ``Service``, a second ``@main`` and option combinations restate-server would reject.
"""

from __future__ import annotations

import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any, ClassVar, ParamSpec, TypedDict, TypeVar, Unpack, overload

from .durations import Duration, optional_millis
from .retry import InvocationRetryPolicy
from .serde import DEFAULT_SERDE, Serde, SerdeError
from .typed import EmptySerde, MsgspecSerde, PydanticSerde, TypedJsonSerde, is_empty_type, serde_for

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
    "handler_target",
    "main",
    "shared",
]

P = ParamSpec("P")
R = TypeVar("R")


class HandlerOptions(TypedDict, total=False):
    """Keyword options of ``@restate.handler`` / ``@restate.shared`` (see :func:`handler`)."""

    name: str
    input: Any
    output: Any
    accept: str
    content_type: str
    description: str
    metadata: Mapping[str, str]
    inactivity_timeout: Duration
    abort_timeout: Duration
    journal_retention: Duration
    idempotency_retention: Duration
    ingress_private: bool
    enable_lazy_state: bool
    invocation_retry_policy: InvocationRetryPolicy | Mapping[str, Any]


class MainOptions(HandlerOptions, total=False):
    """Keyword options of ``@restate.main``: the handler options plus the completion retention."""

    workflow_completion_retention: Duration


class ServiceKind(Enum):
    SERVICE = "SERVICE"
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"
    WORKFLOW = "WORKFLOW"


class HandlerKind(Enum):
    EXCLUSIVE = "EXCLUSIVE"
    SHARED = "SHARED"
    WORKFLOW = "WORKFLOW"


@dataclass(frozen=True)
class Options:
    """Options shared by services (class keywords) and handlers (decorator keywords).

    ``None`` means unset (restate-server's default, or the service's for a handler); every other
    value, including ``0`` and ``False``, is sent to the server.
    """

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
        if self.description is not None and not isinstance(self.description, str):
            raise TypeError(f"description must be a str, not {type(self.description).__name__}")
        for name in ("inactivity_timeout", "abort_timeout", "journal_retention", "idempotency_retention"):
            optional_millis(getattr(self, name), name)
        for name in ("ingress_private", "enable_lazy_state"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, not {value!r}")
        if self.metadata is not None:
            if not isinstance(self.metadata, Mapping):
                raise TypeError(f"metadata must be a dict of str to str, not {type(self.metadata).__name__}")
            for key, value in self.metadata.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise TypeError(f"metadata must map str to str, got {key!r}: {value!r}")
            object.__setattr__(self, "metadata", types.MappingProxyType(dict(self.metadata)))
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
    """One handler as Restate sees it.

    ``input_type`` / ``output_type`` are the declared types (annotation or ``input=`` /
    ``output=``; ``Any`` when undeclared); ``input_serde`` / ``output_serde`` the serdes used on
    the wire. ``input_required``: an empty body can never be decoded (the manifest's
    ``input.required``, so restate-server rejects an empty body at the ingress).
    """

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
    input_type: Any = Any
    output_type: Any = Any
    input_required: bool = False
    # set by the decorator, consumed when the class is built
    explicit_name: str | None = field(default=None, repr=False, compare=False)
    explicit_input: Any = field(default=None, repr=False, compare=False)
    explicit_output: Any = field(default=None, repr=False, compare=False)
    namespace: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    resolved: bool = field(default=False, repr=False, compare=False)
    # no input (``not has_input``), computed once for the invocation driver
    empty_input: bool = field(default=False, repr=False, compare=False)

    @property
    def has_input(self) -> bool:
        """Whether the handler reads a request body (``input: {}`` in the manifest when not)."""
        return self.takes_input and not _is_empty_serde(self.input_serde)

    @property
    def has_output(self) -> bool:
        """Whether the handler writes a response body (``-> None`` does not)."""
        return not _is_empty_serde(self.output_serde)


@dataclass
class ServiceDefinition:
    """A service, virtual object or workflow with its handlers."""

    name: str
    kind: ServiceKind
    handlers: dict[str, HandlerDefinition]
    options: Options
    cls: type | None = None


_MARK = "__restate_handler__"
_TARGET = "__restate_target__"
_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()


def _is_empty_serde(serde: Any) -> bool:
    return isinstance(serde, EmptySerde) or getattr(serde, "empty", False) is True


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"{what} name must be a non-empty str, not {name!r}")
    if "/" in name or any(c.isspace() for c in name):
        raise ValueError(f"{what} name {name!r} must not contain '/' or whitespace")
    return name


def _check_media_type(value: Any, option: str, wildcards: bool) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise TypeError(f"{option} must be a media type string like 'application/json', not {value!r}")
    kind, slash, sub = value.split(";", 1)[0].strip().partition("/")
    if not slash or not kind or not sub or "/" in sub:
        raise ValueError(f"{option} must look like 'type/subtype', got {value!r}")
    if kind == "*" and (sub != "*" or not wildcards):
        raise ValueError(
            f"{option} {value!r}: only {'*/* and type/*' if wildcards else 'concrete'} media types are allowed"
        )
    if sub == "*" and not wildcards:
        raise ValueError(f"{option} {value!r} must be a concrete media type (no wildcard)")
    return value


def _signature(fn: Callable[..., Any]) -> tuple[list[inspect.Parameter], bool]:
    """The positional parameters of a handler function and whether it takes an input."""
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot inspect the signature of handler {name}: {exc}") from exc
    positional: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional.append(parameter)
        elif parameter.kind is parameter.VAR_POSITIONAL:
            raise TypeError(f"handler {name} must take (ctx) or (ctx, input), not *{parameter.name}")
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            raise TypeError(
                f"handler {name} must take (ctx) or (ctx, input); keyword-only parameter "
                f"{parameter.name!r} has no default and would never be passed"
            )
    required = sum(1 for p in positional if p.default is p.empty)
    if not positional or required > 2:
        shown = ", ".join(p.name for p in positional)
        raise TypeError(
            f"handler {name} must take (ctx) or (ctx, input); it takes ({shown}), "
            f"{required} required positional parameters"
        )
    if positional[0].name in ("self", "cls"):
        raise TypeError(
            f"handler {name} takes {positional[0].name!r}: handlers are static functions taking "
            "(ctx) or (ctx, input), not methods"
        )
    return positional, len(positional) >= 2


def _caller_namespace(frame: types.FrameType | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The class body namespace a decorator is called from (or None) and the scope around it.

    The enclosing scope's names (a snapshot, for classes defined inside a function) let string
    annotations such as ``"Request"`` under ``from __future__ import annotations`` resolve.
    """
    if frame is None:
        return None, None
    scope = frame.f_locals
    if scope is frame.f_globals or "__qualname__" not in scope or "__module__" not in scope:
        return None, None  # not a class body
    outer = frame.f_back
    enclosing = None
    if outer is not None and outer.f_locals is not outer.f_globals:
        enclosing = dict(outer.f_locals)
    return scope, enclosing


def _decorate(
    decorator: str,
    kind: HandlerKind | None,
    fn: Callable[..., Any] | None,
    kwargs: dict[str, Any],
    frame: types.FrameType | None,
) -> Any:
    name = kwargs.pop("name", None)
    if name is not None:
        _check_name(name, "handler")
    explicit_input = kwargs.pop("input", _UNSET)
    explicit_output = kwargs.pop("output", _UNSET)
    accept = _check_media_type(kwargs.pop("accept", None), "accept", wildcards=True)
    content_type = _check_media_type(kwargs.pop("content_type", None), "content_type", wildcards=False)
    retention = kwargs.pop("workflow_completion_retention", None)
    if retention is not None and decorator != "main":
        raise TypeError(
            "workflow_completion_retention is only allowed on @restate.main (the workflow's main handler)"
        )
    unknown = set(kwargs) - OPTION_NAMES
    if unknown:
        raise TypeError(f"@restate.{decorator} got unknown option(s): {', '.join(sorted(unknown))}")
    options = Options(**kwargs)
    optional_millis(retention, "workflow_completion_retention")
    class_namespace, enclosing = _caller_namespace(frame)
    del frame

    def wrap(func: Callable[..., Any]) -> Any:
        if isinstance(func, staticmethod):
            func = func.__func__
            if getattr(func, _MARK, None) is not None:
                raise TypeError(
                    f"{func.__qualname__} has two handler decorators; use one of "
                    "@restate.handler, @restate.shared or @restate.main"
                )
        if isinstance(func, classmethod):
            raise TypeError(f"@restate.{decorator} decorates plain functions, not classmethods")
        if not callable(func):
            raise TypeError(f"@restate.{decorator} decorates functions, not {func!r}")
        _check_plain_def(func, decorator)
        _, takes_input = _signature(func)
        if not takes_input and explicit_input is not _UNSET and not is_empty_type(explicit_input):
            raise TypeError(
                f"handler {func.__qualname__} has input={explicit_input!r} but no input parameter; "
                "take (ctx, input) or drop input="
            )
        python_name = getattr(func, "__name__", None)
        if class_namespace is not None and python_name is not None:
            previous = class_namespace.get(python_name)
            if isinstance(previous, staticmethod):
                previous = previous.__func__
            if getattr(previous, _MARK, None) is not None:
                raise TypeError(
                    f"{class_namespace.get('__qualname__', '?')} defines handler {python_name!r} twice"
                )
        description = options.description
        if description is None and func.__doc__:
            description = inspect.cleandoc(func.__doc__)
        definition = HandlerDefinition(
            name=name or func.__name__,
            explicit_name=name,
            fn=func,
            kind=kind,
            takes_input=takes_input,
            accept=accept,
            content_type=content_type,
            options=replace(options, description=description),
            workflow_completion_retention=retention,
            decorator=decorator,
            explicit_input=explicit_input,
            explicit_output=explicit_output,
            namespace=enclosing,
        )
        setattr(func, _MARK, definition)
        return staticmethod(func)

    return wrap(fn) if fn is not None else wrap


def _check_plain_def(func: Callable[..., Any], decorator: str) -> None:
    """Refuse ``async def`` and generator functions: handlers are plain ``def`` functions."""
    if inspect.iscoroutinefunction(func):
        what = "an async def function"
    elif inspect.isasyncgenfunction(func):
        what = "an async generator function"
    elif inspect.isgeneratorfunction(func):
        what = "a generator function"
    else:
        return
    raise TypeError(
        f"handler {getattr(func, '__qualname__', func)!r} (@restate.{decorator}) is {what}: restate_sync "
        "handlers are plain def functions that return their result (each invocation runs on its own "
        "greenlet and blocking ctx calls park it; no async/await or yield needed)"
    )


@overload
def handler(fn: Callable[P, R], /) -> staticmethod[P, R]: ...
@overload
def handler(**options: Unpack[HandlerOptions]) -> Callable[[Callable[P, R]], staticmethod[P, R]]: ...
def handler(fn: Any = None, /, **options: Any) -> Any:
    """Declare a handler: exclusive in a ``VirtualObject``, shared in a ``Workflow``.

    Options: ``name=``, ``input=`` / ``output=`` (a type or a serde object; default: the
    annotations), ``accept=`` (input content type, may be ``type/*``), ``content_type=`` (output
    content type), ``description=`` (default: the docstring), ``metadata=``,
    ``inactivity_timeout=``, ``abort_timeout=``, ``journal_retention=``,
    ``idempotency_retention=`` (seconds or ``timedelta``), ``ingress_private=``,
    ``enable_lazy_state=``, ``invocation_retry_policy=`` (:class:`InvocationRetryPolicy` or dict).
    Handler options override the service's.
    """
    return _decorate("handler", None, fn, options, sys._getframe(1))


@overload
def shared(fn: Callable[P, R], /) -> staticmethod[P, R]: ...
@overload
def shared(**options: Unpack[HandlerOptions]) -> Callable[[Callable[P, R]], staticmethod[P, R]]: ...
def shared(fn: Any = None, /, **options: Any) -> Any:
    """Declare a shared (concurrent, read-only state) handler of a ``VirtualObject``/``Workflow``."""
    return _decorate("shared", HandlerKind.SHARED, fn, options, sys._getframe(1))


@overload
def main(fn: Callable[P, R], /) -> staticmethod[P, R]: ...
@overload
def main(**options: Unpack[MainOptions]) -> Callable[[Callable[P, R]], staticmethod[P, R]]: ...
def main(fn: Any = None, /, **options: Any) -> Any:
    """Declare the main handler of a ``Workflow`` (runs once per key).

    Takes the :func:`handler` options plus ``workflow_completion_retention=`` (how long Restate
    keeps the workflow's result); ``idempotency_retention`` does not apply to it.
    """
    return _decorate("main", HandlerKind.WORKFLOW, fn, options, sys._getframe(1))


# --------------------------------------------------------------------------------------------
# Types from annotations
# --------------------------------------------------------------------------------------------


def _annotation(definition: HandlerDefinition, key: str, what: str, localns: dict[str, Any]) -> Any:
    """The resolved annotation ``key`` of the handler (``_UNSET`` if absent)."""
    fn = definition.fn
    raw = getattr(fn, "__annotations__", {}).get(key, _UNSET)
    if raw is _UNSET:
        return _UNSET
    holder = types.SimpleNamespace(__annotations__={key: raw})
    try:
        hints = typing.get_type_hints(
            holder, globalns=getattr(fn, "__globals__", {}), localns=localns, include_extras=True
        )
    except Exception as exc:
        raise TypeError(
            f"handler {fn.__qualname__}: cannot resolve the {what} annotation {raw!r}: {exc}; define the "
            "type before the service class (at module level for string annotations), or pass "
            f"{'input' if key != 'return' else 'output'}= explicitly"
        ) from exc
    return hints[key]


def _serde(definition: HandlerDefinition, tp: Any, what: str) -> Serde[Any]:
    try:
        serde = serde_for(tp)
    except Exception as exc:  # TypeError from typed, PydanticSchemaGenerationError, msgspec's TypeError
        raise TypeError(
            f"handler {definition.fn.__qualname__}: cannot serialize its {what} type {_describe(tp)}: {exc}"
        ) from exc
    return serde


def _describe(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _required(serde: Any) -> bool:
    """Whether an empty body can never be decoded by ``serde`` (only asked of the SDK's own serdes)."""
    if not isinstance(serde, (TypedJsonSerde, PydanticSerde, MsgspecSerde)):
        return False
    try:
        serde.deserialize(b"")
    except SerdeError:
        return True
    return False


def _resolve_io(definition: HandlerDefinition, cls: type) -> None:
    """Fill ``definition``'s types and serdes from ``input=`` / ``output=`` or the annotations."""
    if definition.resolved:
        return
    localns = {**(definition.namespace or {}), **dict(vars(cls)), cls.__name__: cls}
    parameters, _ = _signature(definition.fn)
    qualname = definition.fn.__qualname__

    if not definition.takes_input:
        input_type: Any = None
        input_serde: Serde[Any] = EmptySerde()
    else:
        if definition.explicit_input is not _UNSET:
            input_type = definition.explicit_input
        else:
            input_type = _annotation(
                definition, parameters[1].name, f"input parameter {parameters[1].name!r}", localns
            )
        if input_type is _UNSET:
            input_type, input_serde = Any, DEFAULT_SERDE
        else:
            input_serde = _serde(definition, input_type, "input")
            opaque = getattr(input_serde, "opaque", ())
            if opaque:
                names = ", ".join(_describe(tp) for tp in opaque)
                raise TypeError(
                    f"handler {qualname}: its input type {_describe(input_type)} cannot be "
                    f"deserialized: JSON cannot be decoded into {names} (not a dataclass, TypedDict, "
                    "pydantic model, msgspec Struct, enum, primitive or generic alias, and no "
                    "json_schema() classmethod); use a supported type, Any, or input=<serde>"
                )

    if definition.explicit_output is not _UNSET:
        output_type = definition.explicit_output
    else:
        output_type = _annotation(definition, "return", "return", localns)
    output_serde: Serde[Any]
    if output_type is _UNSET:
        output_type, output_serde = Any, DEFAULT_SERDE
    else:
        output_serde = _serde(definition, output_type, "output")

    definition.input_type = input_type
    definition.output_type = output_type
    definition.input_serde = input_serde
    definition.output_serde = output_serde
    definition.input_required = definition.takes_input and _required(input_serde)
    definition.empty_input = not definition.has_input
    definition.namespace = None
    definition.resolved = True


# --------------------------------------------------------------------------------------------
# Service classes
# --------------------------------------------------------------------------------------------


class _ServiceBase:
    """Common machinery of the three service kinds; subclass one of them, not this."""

    __restate_kind__: ClassVar[ServiceKind]
    __restate_service__: ClassVar[ServiceDefinition]

    def __init_subclass__(cls, name: str | None = None, **options: Any) -> None:
        super().__init_subclass__()
        if "__restate_kind__" in cls.__dict__:
            return  # the three kinds themselves
        if name is not None:
            _check_name(name, "service")
        unknown = set(options) - OPTION_NAMES
        if unknown:
            hint = (
                "; workflow_completion_retention goes on the @restate.main handler"
                if "workflow_completion_retention" in unknown
                else ""
            )
            raise TypeError(
                f"service {cls.__name__} got unknown option(s): {', '.join(sorted(unknown))}{hint}"
            )
        service_options = Options(**options)
        if service_options.description is None and cls.__doc__:
            service_options = replace(service_options, description=inspect.cleandoc(cls.__doc__))
        kind = cls.__restate_kind__
        handlers: dict[str, HandlerDefinition] = {}
        owners: dict[str, str] = {}
        for attribute_name in _attribute_names(cls):
            attribute = inspect.getattr_static(cls, attribute_name)
            fn = attribute.__func__ if isinstance(attribute, staticmethod) else attribute
            definition = getattr(fn, _MARK, None)
            if not isinstance(definition, HandlerDefinition):
                continue
            _resolve_io(definition, cls)
            bound = _bind_kind(cls.__name__, kind, definition)
            if definition.explicit_name is None:
                bound.name = attribute_name  # ``greet = restate.handler(_greet)`` is "greet"
            where = f"{cls.__name__}.{attribute_name}"
            if bound.name in handlers:
                raise TypeError(
                    f"service {cls.__name__} has two handlers named {bound.name!r}: "
                    f"{owners[bound.name]} and {where}"
                )
            _check_handler_options(cls.__name__, service_options, bound)
            _check_context_annotation(cls, kind, bound)
            handlers[bound.name] = bound
            owners[bound.name] = where
        if kind is ServiceKind.WORKFLOW:
            mains = [h.name for h in handlers.values() if h.kind is HandlerKind.WORKFLOW]
            if len(mains) > 1:
                raise TypeError(
                    f"workflow {cls.__name__} has more than one @restate.main handler: {', '.join(mains)}"
                )
        cls.__restate_service__ = ServiceDefinition(
            name=name or cls.__name__,
            kind=kind,
            handlers=handlers,
            options=service_options,
            cls=cls,
        )
        for bound in handlers.values():
            # a handler reference (MyService.my_handler) names its target; a function inherited
            # by a subclass keeps naming the class that defined it first
            if _TARGET not in vars(bound.fn):
                setattr(bound.fn, _TARGET, (kind, cls.__restate_service__.name, bound))


def _attribute_names(cls: type) -> list[str]:
    """Attribute names of ``cls`` and its bases, base classes' first, each once."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__):
        for attribute_name in vars(klass):
            names.setdefault(attribute_name, None)
    return list(names)


def _bind_kind(service: str, kind: ServiceKind, definition: HandlerDefinition) -> HandlerDefinition:
    decorator = definition.decorator
    if kind is ServiceKind.SERVICE:
        if decorator != "handler":
            raise TypeError(
                f"@restate.{decorator} is not allowed in Service {service} (handler "
                f"{definition.name!r}); a Service's handlers are all @restate.handler"
            )
        return replace(definition, kind=None)
    if kind is ServiceKind.VIRTUAL_OBJECT:
        if decorator == "main":
            raise TypeError(
                f"@restate.main is only allowed in a Workflow, not in VirtualObject {service} "
                f"(handler {definition.name!r})"
            )
        return replace(
            definition, kind=HandlerKind.SHARED if decorator == "shared" else HandlerKind.EXCLUSIVE
        )
    # workflow: @main is the workflow handler, everything else is shared
    return replace(definition, kind=HandlerKind.WORKFLOW if decorator == "main" else HandlerKind.SHARED)


def _check_handler_options(service: str, service_options: Options, definition: HandlerDefinition) -> None:
    """Option combinations restate-server rejects at registration, refused when the class is defined."""
    where = f"{service}/{definition.name}"
    if definition.kind is HandlerKind.WORKFLOW and definition.options.idempotency_retention is not None:
        raise TypeError(
            f"{where}: idempotency_retention is not allowed on a workflow's @restate.main handler; "
            "use workflow_completion_retention"
        )
    if service_options.ingress_private is True and definition.options.ingress_private is False:
        raise TypeError(
            f"{where}: the service is ingress_private, so its handler cannot be ingress_private=False"
        )


# The context class each handler kind receives (``restate_sync.context``), by name: a handler
# annotated with another one of them is refused when its class is defined.
_CONTEXT_FOR = {
    (ServiceKind.SERVICE, None): "Context",
    (ServiceKind.VIRTUAL_OBJECT, HandlerKind.EXCLUSIVE): "ObjectContext",
    (ServiceKind.VIRTUAL_OBJECT, HandlerKind.SHARED): "ObjectSharedContext",
    (ServiceKind.WORKFLOW, HandlerKind.WORKFLOW): "WorkflowContext",
    (ServiceKind.WORKFLOW, HandlerKind.SHARED): "WorkflowSharedContext",
}
_HANDLER_KIND_NAMES = {
    (ServiceKind.SERVICE, None): "a Service handler",
    (
        ServiceKind.VIRTUAL_OBJECT,
        HandlerKind.EXCLUSIVE,
    ): "an exclusive VirtualObject handler (@restate.handler)",
    (ServiceKind.VIRTUAL_OBJECT, HandlerKind.SHARED): "a shared VirtualObject handler (@restate.shared)",
    (ServiceKind.WORKFLOW, HandlerKind.WORKFLOW): "the Workflow's @restate.main handler",
    (ServiceKind.WORKFLOW, HandlerKind.SHARED): "a shared Workflow handler",
}


def _check_context_annotation(cls: type, kind: ServiceKind, definition: HandlerDefinition) -> None:
    """A context annotation must be the handler kind's context class (or the base ``Context``)."""
    parameters, _ = _signature(definition.fn)
    raw = getattr(definition.fn, "__annotations__", {}).get(parameters[0].name, _UNSET)
    if raw is _UNSET:
        return
    localns = {**(definition.namespace or {}), **dict(vars(cls)), cls.__name__: cls}
    try:
        annotation = _annotation(definition, parameters[0].name, "context", localns)
    except TypeError:
        return  # not resolvable here; nothing to check
    if getattr(annotation, "__module__", None) != "restate_sync.context":
        return
    given = getattr(annotation, "__name__", "")
    expected = _CONTEXT_FOR[(kind, definition.kind)]
    if given in _CONTEXT_FOR.values() and given not in (expected, "Context"):
        raise TypeError(
            f"handler {definition.fn.__qualname__} is {_HANDLER_KIND_NAMES[(kind, definition.kind)]}, "
            f"so its context is restate.{expected}, not restate.{given}"
        )


def handler_target(fn: Any) -> tuple[ServiceKind, str, HandlerDefinition] | None:
    """``(service kind, service name, handler)`` of a handler function of a service class, else None."""
    target = getattr(fn, _TARGET, None)
    return target if isinstance(target, tuple) else None


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
