"""The context handlers receive: Restate's durable operations as ordinary blocking calls.

Each operation records a command in the invocation's journal; operations that wait for a
result park the handler greenlet until Restate delivers it (or the invocation suspends).
The class a handler receives depends on its kind:

=====================  =======================  ==============================================
Context                Handler                   Adds
=====================  =======================  ==============================================
Context                Service                   run, sleep, calls, awakeables, request, ...
ObjectSharedContext    VirtualObject @shared     key, get, state_keys (read-only state)
ObjectContext          VirtualObject @handler    set, clear, clear_all
WorkflowSharedContext  Workflow @handler         promises
WorkflowContext        Workflow @main            promises and full state
=====================  =======================  ==============================================

A context class only has the operations its handler kind may use, for type checkers and at run
time alike; reaching for another kind's operation (``ctx.set`` in a shared handler, ``ctx.promise``
outside a workflow) raises :class:`~restate_sync.errors.UnavailableOperationError`, a terminal
error, so the invocation ends at once with the message instead of retrying.

Values: every operation that stores or receives a value takes ``type=T`` (decode to ``T``, see
:mod:`.values`) or an explicit ``serde=``; calls through a handler reference use the target
handler's declared input and output types, and type checkers infer the result type from it.
"""

from __future__ import annotations

import builtins
import random as _rnd
import time as _time
import uuid as _uuid
from collections.abc import Callable, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    NoReturn,
    Protocol,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    overload,
    runtime_checkable,
)

from ._current import current as _current
from .durations import Duration, to_millis
from .errors import ContextUsageError, MisuseError, TerminalError, UnavailableOperationError
from .futures import (
    Driver,
    DurableCallFuture,
    DurableFuture,
    HandleFuture,
    SendHandle,
    identity,
    timer,
    void_to_none,
    wait_any,
)
from .logs import ReplayAwareLogger, context_logger
from .protocol.vm import VOID, Failure, InvocationInput, RetryPolicy
from .retry import RunRetryPolicy
from .serde import Serde
from .service import (
    HandlerDefinition,
    HandlerKind,
    ServiceDefinition,
    ServiceKind,
    handler_target,
    service_definition,
)
from .values import ANY, describe_type, return_serde, serde_of

__all__ = [
    "AttemptFinishedEvent",
    "CallOptions",
    "Context",
    "ContextDriver",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "SendOptions",
    "WorkflowContext",
    "WorkflowSharedContext",
    "context_factory",
    "current_context",
    "current_object_context",
    "current_shared_context",
    "current_shared_workflow_context",
    "current_workflow_context",
]

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - a call target's input type
R = TypeVar("R")  # a call target's output type


class ContextDriver(Driver, Protocol):
    """What a context needs of its invocation, beyond what futures need (the invocation driver)."""

    @property
    def input(self) -> InvocationInput:
        """The invocation's input (id, headers, body, key, random seed)."""
        ...

    @property
    def finished(self) -> Any:
        """An event (``is_set()``, ``wait(timeout)``) set when the attempt ends."""
        ...

    def register_run(
        self,
        handle: int,
        fn: Callable[[], Any],
        retry_policy: RetryPolicy | None,
        background: bool,
        serialize: Callable[[Any], bytes],
    ) -> None:
        """Remember how to execute the run ``handle`` when the VM asks for it."""
        ...


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


class AttemptFinishedEvent:
    """Set when the current attempt ends (the handler returned, suspended, failed, or the
    runtime went away). Long-running work spawned by a handler can watch it to stop early."""

    __slots__ = ("_event",)

    def __init__(self, event: Any) -> None:
        self._event = event

    def is_set(self) -> bool:
        """Whether the attempt has finished (non-blocking)."""
        return bool(self._event.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        """Block this greenlet until the attempt finishes (or ``timeout``); return ``is_set()``."""
        return bool(self._event.wait(timeout))


class Request:
    """The invocation's request: id, headers, raw body, and the attempt-finished event.

    ``idempotency_key``, ``scope`` and ``limit_key`` are this invocation's own (``None`` when it
    has none, and always with service protocol V5/V6, which do not carry them).
    """

    __slots__ = ("attempt_finished_event", "body", "headers", "id", "idempotency_key", "limit_key", "scope")

    def __init__(
        self,
        invocation_id: str,
        headers: dict[str, str],
        body: bytes,
        attempt_finished_event: AttemptFinishedEvent,
        idempotency_key: str | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> None:
        self.id = invocation_id
        self.headers = headers
        self.body = body
        self.attempt_finished_event = attempt_finished_event
        self.idempotency_key = idempotency_key
        self.scope = scope
        self.limit_key = limit_key

    def __repr__(self) -> str:
        return f"Request(id={self.id!r})"


# Operations some handler kinds lack, and where they are available (for the run-time message).
_STATE_READS = ("key", "get", "get_async", "state_keys", "state_keys_async")
_STATE_WRITES = ("set", "clear", "clear_all")
_PROMISES = ("promise", "promise_async", "peek_promise", "resolve_promise", "reject_promise")


def _unavailable(ctx: Context, name: str) -> NoReturn:
    kind = _KIND_NAMES.get(builtins.type(ctx), builtins.type(ctx).__name__)
    # nominal check: isinstance() on these runtime-checkable protocols may probe attributes
    if name in _STATE_WRITES and ObjectSharedContext in builtins.type(ctx).__mro__:
        raise UnavailableOperationError(
            f"ctx.{name}() is not available in a shared handler: shared handlers have read-only "
            "state (use an exclusive @restate.handler to modify state)"
        )
    if name in _PROMISES:
        raise UnavailableOperationError(
            f"ctx.{name}() is only available in a Workflow's handlers (durable promises belong to "
            f"a workflow), not in {kind}"
        )
    if name in _STATE_READS or name in _STATE_WRITES:
        raise UnavailableOperationError(
            f"ctx.{name} is not available in {kind}: a Service is stateless (state belongs to a "
            "VirtualObject or Workflow key)"
        )
    raise AttributeError(f"{builtins.type(ctx).__name__!r} object has no attribute {name!r}")


class _Unavailable:
    """Stands (at run time only) for an operation the context's handler kind does not have:
    reading it raises :class:`UnavailableOperationError` with a message saying where it is."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, ctx: Any, owner: Any = None) -> Any:
        if ctx is None:
            return self
        _unavailable(ctx, self.name)


# The public context classes are protocols (with their implementation), so that a type checker
# accepts them as the first parameter of a handler in a class body; the endpoint instantiates the
# concrete classes at the end of this module.
@runtime_checkable
class Context(Protocol):
    """Context of a ``Service`` handler; the base of every context."""

    __slots__ = ("__weakref__", "_driver", "_random", "_request")
    _driver: ContextDriver
    _random: _rnd.Random | None
    _request: Request

    if not TYPE_CHECKING:  # invisible to type checkers, for which a missing operation is an error
        for _name in (*_STATE_READS, *_STATE_WRITES, *_PROMISES):
            locals()[_name] = _Unavailable(_name)
        del _name

    def __init__(self, driver: ContextDriver) -> None:
        self._driver = driver
        invocation = driver.input
        self._random: _rnd.Random | None = None
        self._request = Request(
            invocation.invocation_id,
            dict(invocation.headers),
            invocation.input,
            AttemptFinishedEvent(driver.finished),
            invocation.idempotency_key,
            invocation.scope,
            invocation.limit_key,
        )

    # ------------------------------------------------------------------ invocation metadata

    @property
    def request(self) -> Request:
        """The invocation's id, headers and raw input body."""
        return self._request

    @property
    def invocation_id(self) -> str:
        return self._request.id

    @property
    def logger(self) -> ReplayAwareLogger:
        """A logger (the handler module's) whose records are dropped while the handler replays.

        Records carry the ``restate_*`` attributes of :mod:`restate_sync.logs`.
        """
        return context_logger(self._driver)

    def random(self) -> _rnd.Random:
        """A deterministic PRNG seeded by the invocation; the same sequence on every replay."""
        if self._random is None:
            self._random = _rnd.Random(self._driver.input.random_seed)
        return self._random

    def uuid(self) -> _uuid.UUID:
        """A deterministic UUID v4 (stable across replays)."""
        return _uuid.UUID(int=self.random().getrandbits(128), version=4)

    def time(self) -> float:
        """The current wall-clock time (epoch seconds), recorded durably on first execution."""
        return self.run_sync("restate_sync.time", _time.time)

    # ------------------------------------------------------------------ side effects

    def run(
        self,
        name: str,
        fn: Callable[..., T],
        *args: Any,
        type: Any = None,
        serde: Serde[T] | None = None,
        retry_policy: RunRetryPolicy | None = None,
        background: bool = False,
    ) -> DurableFuture[T]:
        """Run ``fn(*args)`` once and record its result; on replay return the recorded result.

        The result is encoded with ``serde``, else the serde of ``type``, else of ``fn``'s return
        annotation, else as plain JSON; a result that cannot be encoded fails the step terminally
        (``fn`` is not run again). The block starts lazily, when its result (or a combinator over
        it) is awaited. ``TerminalError`` raised by ``fn`` is recorded as the step's failure; any
        other exception retries the step according to ``retry_policy`` (``RetryableError``'s
        ``retry_after`` sets the delay). With ``background=True`` the block runs in gevent's thread
        pool (for CPU-bound native code).
        """
        driver = self._driver
        vm = driver.usable_vm()
        if serde is None:
            serde = serde_of(type, f"ctx.run({name!r})") if type is not None else return_serde(fn, name)
        elif type is not None:
            raise MisuseError(f"ctx.run({name!r}): pass type= or serde=, not both")
        handle = vm.sys_run(name)
        bound: Callable[[], Any] = (lambda: fn(*args)) if args else fn
        driver.register_run(
            handle,
            bound,
            retry_policy.to_vm() if retry_policy is not None else None,
            background,
            serde.serialize,
        )
        future: HandleFuture[T] = HandleFuture(driver, handle, _decoder(serde, "run", name))
        driver.track(future, "run", name)
        return future

    def run_sync(
        self,
        name: str,
        fn: Callable[..., T],
        *args: Any,
        type: Any = None,
        serde: Serde[T] | None = None,
        retry_policy: RunRetryPolicy | None = None,
        background: bool = False,
    ) -> T:
        """``run(...)`` and wait for its result."""
        return self.run(
            name, fn, *args, type=type, serde=serde, retry_policy=retry_policy, background=background
        ).result()

    def sleep(self, duration: Duration, name: str = "") -> DurableFuture[None]:
        """A durable timer; ``.result()`` returns once ``duration`` has passed."""
        future = timer(self._driver, duration, "sleep duration", name)
        self._driver.track(future, "sleep", name or duration)
        return future

    # ------------------------------------------------------------------ calls

    def _target(
        self,
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

    def _call(
        self,
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
        _check_call_keys(what, idempotency_key, scope, limit_key)
        vm = self._driver.usable_vm()
        service, handler, key, arg = _call_arguments(kind, what, target, rest)
        service_name, handler_name, in_serde, out_serde = self._target(
            kind, service, handler, input_serde, output_serde
        )
        invocation_id_handle, result_handle = vm.sys_call(
            service_name,
            handler_name,
            _encode(in_serde, arg, f"ctx.{what}() to {service_name}/{handler_name}: the argument"),
            key=key,
            idempotency_key=idempotency_key,
            headers=list(headers.items()) if headers else (),
            scope=scope,
            limit_key=limit_key,
        )
        return DurableCallFuture(
            self._driver,
            result_handle,
            _decoder(out_serde, "the result of", f"{service_name}/{handler_name}"),
            HandleFuture(self._driver, invocation_id_handle, identity),
        )

    def _send(
        self,
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
        _check_call_keys(what, idempotency_key, scope, limit_key)
        vm = self._driver.usable_vm()
        service, handler, key, arg = _call_arguments(kind, what, target, rest)
        service_name, handler_name, in_serde, _ = self._target(kind, service, handler, input_serde, None)
        invoke_time = 0
        if delay is not None:
            delay_ms = _checked_duration(delay, "delay")
            if delay_ms > 0:
                invoke_time = int(_time.time() * 1000) + delay_ms
        handle = vm.sys_send(
            service_name,
            handler_name,
            _encode(in_serde, arg, f"ctx.{what}() to {service_name}/{handler_name}: the argument"),
            key=key,
            idempotency_key=idempotency_key,
            headers=list(headers.items()) if headers else (),
            invoke_time_ms=invoke_time,
            scope=scope,
            limit_key=limit_key,
        )
        return SendHandle(self._driver, HandleFuture(self._driver, handle, identity))

    # service_call(Greeter.greet, arg) / service_call("Greeter", "greet", arg) / (Greeter, "greet", arg)
    @overload
    def service_call(
        self, handler: Callable[[Context, I], R], arg: I, /, **options: Unpack[CallOptions]
    ) -> DurableCallFuture[R]: ...
    @overload
    def service_call(
        self, handler: Callable[[Context], R], /, **options: Unpack[CallOptions]
    ) -> DurableCallFuture[R]: ...
    @overload
    def service_call(
        self,
        service: builtins.type[Any],
        handler: Callable[[Context, I], R],
        arg: I,
        /,
        **options: Unpack[CallOptions],
    ) -> DurableCallFuture[R]: ...
    @overload
    def service_call(
        self,
        service: str | builtins.type[Any],
        handler: str | Callable[..., Any],
        arg: Any = None,
        /,
        **options: Unpack[CallOptions],
    ) -> DurableCallFuture[Any]: ...
    def service_call(
        self,
        target: Any,
        /,
        *rest: Any,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a ``Service`` handler; ``.result()`` waits for its response.

        ``scope`` and ``limit_key`` (service protocol V7) place the callee in a flow-control scope,
        and a limit key within it, which restate-server's concurrency rules apply to (the same on
        every call and send).

        The target is a handler reference (``service_call(Greeter.greet, "World")``, input and
        output types from the handler), or a service (class or name) and a handler (function or
        name): ``service_call("Greeter", "greet", "World")`` (plain JSON, ``Any``).
        """
        return self._call(
            ServiceKind.SERVICE,
            "service_call",
            target,
            rest,
            idempotency_key,
            headers,
            input_serde,
            output_serde,
            scope,
            limit_key,
        )

    @overload
    def object_call(
        self, handler: Callable[[ObjectContext], R], key: str, /, **options: Unpack[CallOptions]
    ) -> DurableCallFuture[R]: ...
    @overload
    def object_call(
        self, handler: Callable[[ObjectContext, I], R], key: str, arg: I, /, **options: Unpack[CallOptions]
    ) -> DurableCallFuture[R]: ...
    @overload
    def object_call(
        self,
        service: builtins.type[Any],
        handler: Callable[[ObjectContext, I], R],
        key: str,
        arg: I,
        /,
        **options: Unpack[CallOptions],
    ) -> DurableCallFuture[R]: ...
    @overload
    def object_call(
        self,
        service: str | builtins.type[Any],
        handler: str | Callable[..., Any],
        key: str,
        arg: Any = None,
        /,
        **options: Unpack[CallOptions],
    ) -> DurableCallFuture[Any]: ...
    def object_call(
        self,
        target: Any,
        /,
        *rest: Any,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a ``VirtualObject`` handler on ``key``: ``object_call(Counter.add, key, 5)`` or
        ``object_call("Counter", "add", key, 5)``."""
        return self._call(
            ServiceKind.VIRTUAL_OBJECT,
            "object_call",
            target,
            rest,
            idempotency_key,
            headers,
            input_serde,
            output_serde,
            scope,
            limit_key,
        )

    @overload
    def workflow_call(
        self, handler: Callable[[WorkflowContext], R], key: str, /, **options: Unpack[CallOptions]
    ) -> DurableCallFuture[R]: ...
    @overload
    def workflow_call(
        self, handler: Callable[[WorkflowContext, I], R], key: str, arg: I, /, **options: Unpack[CallOptions]
    ) -> DurableCallFuture[R]: ...
    @overload
    def workflow_call(
        self,
        service: builtins.type[Any],
        handler: Callable[[WorkflowContext, I], R],
        key: str,
        arg: I,
        /,
        **options: Unpack[CallOptions],
    ) -> DurableCallFuture[R]: ...
    @overload
    def workflow_call(
        self,
        service: str | builtins.type[Any],
        handler: str | Callable[..., Any],
        key: str,
        arg: Any = None,
        /,
        **options: Unpack[CallOptions],
    ) -> DurableCallFuture[Any]: ...
    def workflow_call(
        self,
        target: Any,
        /,
        *rest: Any,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a ``Workflow`` handler on ``key``: ``workflow_call(UserSignup.run, key, email)``."""
        return self._call(
            ServiceKind.WORKFLOW,
            "workflow_call",
            target,
            rest,
            idempotency_key,
            headers,
            input_serde,
            output_serde,
            scope,
            limit_key,
        )

    @overload
    def service_send(
        self, handler: Callable[[Context, I], Any], arg: I, /, **options: Unpack[SendOptions]
    ) -> SendHandle: ...
    @overload
    def service_send(
        self, handler: Callable[[Context], Any], /, **options: Unpack[SendOptions]
    ) -> SendHandle: ...
    @overload
    def service_send(
        self,
        service: str | builtins.type[Any],
        handler: str | Callable[..., Any],
        arg: Any = None,
        /,
        **options: Unpack[SendOptions],
    ) -> SendHandle: ...
    def service_send(
        self,
        target: Any,
        /,
        *rest: Any,
        delay: Duration | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        """Invoke a ``Service`` handler without waiting (optionally after ``delay``)."""
        return self._send(
            ServiceKind.SERVICE,
            "service_send",
            target,
            rest,
            delay,
            idempotency_key,
            headers,
            input_serde,
            scope,
            limit_key,
        )

    @overload
    def object_send(
        self, handler: Callable[[ObjectContext], Any], key: str, /, **options: Unpack[SendOptions]
    ) -> SendHandle: ...
    @overload
    def object_send(
        self, handler: Callable[[ObjectContext, I], Any], key: str, arg: I, /, **options: Unpack[SendOptions]
    ) -> SendHandle: ...
    @overload
    def object_send(
        self,
        service: str | builtins.type[Any],
        handler: str | Callable[..., Any],
        key: str,
        arg: Any = None,
        /,
        **options: Unpack[SendOptions],
    ) -> SendHandle: ...
    def object_send(
        self,
        target: Any,
        /,
        *rest: Any,
        delay: Duration | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        """Invoke a ``VirtualObject`` handler on ``key`` without waiting."""
        return self._send(
            ServiceKind.VIRTUAL_OBJECT,
            "object_send",
            target,
            rest,
            delay,
            idempotency_key,
            headers,
            input_serde,
            scope,
            limit_key,
        )

    @overload
    def workflow_send(
        self, handler: Callable[[WorkflowContext], Any], key: str, /, **options: Unpack[SendOptions]
    ) -> SendHandle: ...
    @overload
    def workflow_send(
        self,
        handler: Callable[[WorkflowContext, I], Any],
        key: str,
        arg: I,
        /,
        **options: Unpack[SendOptions],
    ) -> SendHandle: ...
    @overload
    def workflow_send(
        self,
        service: str | builtins.type[Any],
        handler: str | Callable[..., Any],
        key: str,
        arg: Any = None,
        /,
        **options: Unpack[SendOptions],
    ) -> SendHandle: ...
    def workflow_send(
        self,
        target: Any,
        /,
        *rest: Any,
        delay: Duration | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        """Invoke a ``Workflow`` handler on ``key`` without waiting."""
        return self._send(
            ServiceKind.WORKFLOW,
            "workflow_send",
            target,
            rest,
            delay,
            idempotency_key,
            headers,
            input_serde,
            scope,
            limit_key,
        )

    def cancel_invocation(self, invocation_id: str) -> None:
        """Cancel another invocation."""
        self._driver.usable_vm().sys_cancel_invocation(invocation_id)

    # ------------------------------------------------------------------ awakeables

    @overload
    def awakeable(self) -> tuple[str, DurableFuture[Any]]: ...
    @overload
    def awakeable(self, *, type: builtins.type[T]) -> tuple[str, DurableFuture[T]]: ...
    @overload
    def awakeable(self, serde: Serde[T]) -> tuple[str, DurableFuture[T]]: ...
    @overload
    def awakeable(self, *, type: object) -> tuple[str, DurableFuture[Any]]: ...
    def awakeable(
        self, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> tuple[str, DurableFuture[Any]]:
        """An id an outside system can resolve, and the future of its payload (decoded to ``type``)."""
        vm = self._driver.usable_vm()
        decode = _decoder(
            ANY if serde is None and type is None else _value_serde(serde, type, "ctx.awakeable()"),
            "the payload of",
            "an awakeable",
        )
        awakeable_id, handle = vm.sys_awakeable()
        return awakeable_id, HandleFuture(self._driver, handle, decode)

    def resolve_awakeable(
        self, awakeable_id: str, payload: Any, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> None:
        what = "ctx.resolve_awakeable(): the payload"
        data = _encode(
            ANY if serde is None and type is None else _value_serde(serde, type, what), payload, what
        )
        self._driver.usable_vm().sys_complete_awakeable(awakeable_id, data)

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        self._driver.usable_vm().sys_complete_awakeable(awakeable_id, Failure(code, message))

    # ------------------------------------------------------------------ combinators

    def wait_any(
        self, *futures: DurableFuture[Any]
    ) -> tuple[list[DurableFuture[Any]], list[DurableFuture[Any]]]:
        """Wait until at least one future is done; return ``(done, pending)`` in argument order."""
        return wait_any(futures)

    # ------------------------------------------------------------------ signals, invocations

    @overload
    def signal(self, name: str) -> DurableFuture[Any]: ...
    @overload
    def signal(self, name: str, *, type: builtins.type[T]) -> DurableFuture[T]: ...
    @overload
    def signal(self, name: str, serde: Serde[T]) -> DurableFuture[T]: ...
    @overload
    def signal(self, name: str, *, type: object) -> DurableFuture[Any]: ...
    def signal(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> DurableFuture[Any]:
        """The future of the named signal ``name`` sent to this invocation (see ``resolve_signal``)."""
        vm = self._driver.usable_vm()
        decode = _decoder(
            ANY if serde is None and type is None else _value_serde(serde, type, f"ctx.signal({name!r})"),
            "signal",
            name,
        )
        return HandleFuture(self._driver, vm.sys_signal(name), decode)

    def resolve_signal(
        self,
        invocation_id: str,
        name: str,
        payload: Any,
        serde: Serde[Any] | None = None,
        *,
        type: Any = None,
    ) -> None:
        """Resolve the named signal ``name`` of another invocation with ``payload``."""
        what = f"ctx.resolve_signal({name!r}): the payload"
        data = _encode(
            ANY if serde is None and type is None else _value_serde(serde, type, what), payload, what
        )
        self._driver.usable_vm().sys_complete_signal(invocation_id, name, data)

    def reject_signal(self, invocation_id: str, name: str, message: str, code: int = 500) -> None:
        """Reject the named signal ``name`` of another invocation with a terminal error."""
        self._driver.usable_vm().sys_complete_signal(invocation_id, name, Failure(code, message))

    @overload
    def attach_invocation(self, invocation_id: str) -> DurableFuture[Any]: ...
    @overload
    def attach_invocation(self, invocation_id: str, *, type: builtins.type[T]) -> DurableFuture[T]: ...
    @overload
    def attach_invocation(self, invocation_id: str, serde: Serde[T]) -> DurableFuture[T]: ...
    @overload
    def attach_invocation(self, invocation_id: str, *, type: object) -> DurableFuture[Any]: ...
    def attach_invocation(
        self, invocation_id: str, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> DurableFuture[Any]:
        """Wait for another invocation to finish and get its result (decoded to ``type``)."""
        vm = self._driver.usable_vm()
        decode = _decoder(
            _value_serde(serde, type, "ctx.attach_invocation()"), "the result of", invocation_id
        )
        return HandleFuture(self._driver, vm.sys_attach_invocation(invocation_id), decode)


@runtime_checkable
class ObjectSharedContext(Context, Protocol):
    """Context of a ``VirtualObject`` shared handler: its key and read-only state."""

    __slots__ = ()

    @property
    def key(self) -> str:
        """The object's (or workflow's) key."""
        return self._driver.input.key

    @overload
    def get(self, name: str) -> Any: ...
    @overload
    def get(self, name: str, *, type: builtins.type[T]) -> T | None: ...
    @overload
    def get(self, name: str, serde: Serde[T]) -> T | None: ...
    @overload
    def get(self, name: str, *, type: object) -> Any: ...
    def get(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> Any:
        """The value of state entry ``name`` (decoded to ``type``), or ``None`` when absent."""
        return self._get_async(name, serde, type).result()

    @overload
    def get_async(self, name: str) -> DurableFuture[Any]: ...
    @overload
    def get_async(self, name: str, *, type: builtins.type[T]) -> DurableFuture[T | None]: ...
    @overload
    def get_async(self, name: str, serde: Serde[T]) -> DurableFuture[T | None]: ...
    @overload
    def get_async(self, name: str, *, type: object) -> DurableFuture[Any]: ...
    def get_async(
        self, name: str, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> DurableFuture[Any]:
        """The future of state entry ``name`` (``None`` when absent)."""
        return self._get_async(name, serde, type)

    def _get_async(self, name: str, serde: Serde[Any] | None, type: Any) -> DurableFuture[Any]:
        vm = self._driver.usable_vm()
        decode = _decoder(
            ANY if serde is None and type is None else _value_serde(serde, type, f"ctx.get({name!r})"),
            "state entry",
            name,
        )
        return HandleFuture(self._driver, vm.sys_get_state(name), decode)

    def state_keys(self) -> list[str]:
        """Names of all state entries."""
        return self.state_keys_async().result()

    def state_keys_async(self) -> DurableFuture[list[str]]:
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_get_state_keys(), identity)


@runtime_checkable
class ObjectContext(ObjectSharedContext, Protocol):
    """Context of a ``VirtualObject`` exclusive handler: full read/write state."""

    __slots__ = ()

    def set(self, name: str, value: Any, serde: Serde[Any] | None = None, *, type: Any = None) -> None:
        """Set state entry ``name`` (dataclasses, pydantic and msgspec models, TypedDicts, ... are
        encoded as JSON; ``type=`` / ``serde=`` choose the encoding)."""
        vm = self._driver.usable_vm()
        if serde is None and type is None:
            try:
                data = ANY.serialize(value)
            except Exception as exc:
                raise _encode_error(f"ctx.set({name!r})", value, exc) from exc
        else:
            what = f"ctx.set({name!r})"
            data = _encode(_value_serde(serde, type, what), value, what)
        vm.sys_set_state(name, data)

    def clear(self, name: str) -> None:
        """Delete state entry ``name``."""
        self._driver.usable_vm().sys_clear_state(name)

    def clear_all(self) -> None:
        """Delete every state entry."""
        self._driver.usable_vm().sys_clear_all_state()


@runtime_checkable
class WorkflowSharedContext(ObjectSharedContext, Protocol):
    """Context of a workflow's shared handlers: read-only state and durable promises."""

    __slots__ = ()

    @overload
    def promise(self, name: str) -> Any: ...
    @overload
    def promise(self, name: str, *, type: builtins.type[T]) -> T: ...
    @overload
    def promise(self, name: str, serde: Serde[T]) -> T: ...
    @overload
    def promise(self, name: str, *, type: object) -> Any: ...
    def promise(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> Any:
        """Block until the durable promise ``name`` is resolved; return its value (decoded to ``type``)."""
        return self._promise_async(name, serde, type).result()

    @overload
    def promise_async(self, name: str) -> DurableFuture[Any]: ...
    @overload
    def promise_async(self, name: str, *, type: builtins.type[T]) -> DurableFuture[T]: ...
    @overload
    def promise_async(self, name: str, serde: Serde[T]) -> DurableFuture[T]: ...
    @overload
    def promise_async(self, name: str, *, type: object) -> DurableFuture[Any]: ...
    def promise_async(
        self, name: str, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> DurableFuture[Any]:
        """The future of the durable promise ``name``."""
        return self._promise_async(name, serde, type)

    def _promise_async(self, name: str, serde: Serde[Any] | None, type: Any) -> DurableFuture[Any]:
        vm = self._driver.usable_vm()
        decode = _decoder(
            ANY if serde is None and type is None else _value_serde(serde, type, f"ctx.promise({name!r})"),
            "promise",
            name,
        )
        return HandleFuture(self._driver, vm.sys_get_promise(name), decode)

    @overload
    def peek_promise(self, name: str) -> Any: ...
    @overload
    def peek_promise(self, name: str, *, type: builtins.type[T]) -> T | None: ...
    @overload
    def peek_promise(self, name: str, serde: Serde[T]) -> T | None: ...
    @overload
    def peek_promise(self, name: str, *, type: object) -> Any: ...
    def peek_promise(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> Any:
        """The promise's value if it is resolved, else ``None``."""
        vm = self._driver.usable_vm()
        decode = _decoder(
            ANY
            if serde is None and type is None
            else _value_serde(serde, type, f"ctx.peek_promise({name!r})"),
            "promise",
            name,
        )
        return HandleFuture(self._driver, vm.sys_peek_promise(name), decode).result()

    def resolve_promise(
        self, name: str, payload: Any, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> None:
        """Resolve the durable promise ``name``; raises ``TerminalError`` if already completed."""
        vm = self._driver.usable_vm()
        what = f"ctx.resolve_promise({name!r}): the payload"
        data = _encode(
            ANY if serde is None and type is None else _value_serde(serde, type, what), payload, what
        )
        HandleFuture(self._driver, vm.sys_complete_promise(name, data), void_to_none).result()

    def reject_promise(self, name: str, message: str, code: int = 500) -> None:
        """Reject the durable promise ``name``."""
        vm = self._driver.usable_vm()
        HandleFuture(
            self._driver, vm.sys_complete_promise(name, Failure(code, message)), void_to_none
        ).result()


@runtime_checkable
class WorkflowContext(WorkflowSharedContext, ObjectContext, Protocol):
    """Context of a workflow's ``@main`` handler: full state and durable promises."""

    __slots__ = ()


# the classes handlers really receive
class _ServiceContext(Context):
    __slots__ = ()


class _ObjectSharedContext(ObjectSharedContext):
    __slots__ = ()


class _ObjectContext(ObjectContext):
    __slots__ = ()


class _WorkflowSharedContext(WorkflowSharedContext):
    __slots__ = ()


class _WorkflowContext(WorkflowContext):
    __slots__ = ()


# ---------------------------------------------------------------------- helpers


def _value_serde(serde: Serde[Any] | None, tp: Any, what: str) -> Serde[Any]:
    if serde is None:
        return ANY if tp is None else serde_of(tp, what)
    if tp is not None:
        raise MisuseError(f"{what}: pass type= or serde=, not both")
    return serde


def _encode(serde: Serde[Any], value: Any, what: str) -> bytes:
    try:
        return serde.serialize(value)
    except Exception as exc:
        raise _encode_error(what, value, exc) from exc


def _check_call_keys(
    what: str, idempotency_key: str | None, scope: str | None, limit_key: str | None
) -> None:
    for name, value in (("idempotency_key", idempotency_key), ("scope", scope), ("limit_key", limit_key)):
        if value is not None and (not isinstance(value, str) or not value):
            raise MisuseError(f"ctx.{what}(): {name} must be a non-empty string, got {value!r}")
    if limit_key is not None and scope is None:
        raise MisuseError(
            f"ctx.{what}(): limit_key needs a scope (restate-server applies limit keys within a scope)"
        )


def _encode_error(what: str, value: Any, exc: Exception) -> MisuseError:
    return MisuseError(f"{what}: cannot encode a value of type {builtins.type(value).__qualname__}: {exc}")


def _decoder(serde: Serde[Any], what: str, name: str) -> Callable[[Any], Any]:
    """Decode a delivered value with ``serde``; VOID (absent) is ``None``; a value that cannot be
    decoded fails the future terminally, naming ``what`` and ``name`` and the expected type."""
    deserialize = serde.deserialize

    def decode(raw: Any) -> Any:
        if raw is VOID:
            return None
        try:
            return deserialize(raw)
        except Exception as exc:
            expected = getattr(serde, "type", None)
            as_type = f" as {describe_type(expected)}" if expected is not None else ""
            raise TerminalError(f"cannot decode {what} {name!r}{as_type}: {exc}") from exc

    return decode


def _checked_duration(value: Duration, what: str) -> int:
    try:
        return to_millis(value, what)
    except (TypeError, ValueError) as exc:
        raise MisuseError(str(exc)) from None


def _call_arguments(
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

_KIND_NAMES: dict[type, str] = {
    _ServiceContext: "a Service handler",
    _ObjectContext: "an exclusive VirtualObject handler",
    _ObjectSharedContext: "a shared VirtualObject handler",
    _WorkflowContext: "a Workflow @main handler",
    _WorkflowSharedContext: "a shared Workflow handler",
}

_CONTEXT_CLASSES: dict[tuple[ServiceKind, HandlerKind | None], Callable[[ContextDriver], Context]] = {
    (ServiceKind.SERVICE, None): _ServiceContext,
    (ServiceKind.VIRTUAL_OBJECT, HandlerKind.EXCLUSIVE): _ObjectContext,
    (ServiceKind.VIRTUAL_OBJECT, HandlerKind.SHARED): _ObjectSharedContext,
    (ServiceKind.WORKFLOW, HandlerKind.WORKFLOW): _WorkflowContext,
    (ServiceKind.WORKFLOW, HandlerKind.SHARED): _WorkflowSharedContext,
}


def context_factory(service: ServiceKind, handler: HandlerKind | None) -> Callable[[ContextDriver], Context]:
    """The constructor of the context a handler of this kind receives."""
    return _CONTEXT_CLASSES[(service, None if service is ServiceKind.SERVICE else handler)]


C = TypeVar("C", bound=Context)


def _current_of(cls: type[C] | None, accessor: str) -> C:
    ctx = _current.get()
    if ctx is None:
        raise ContextUsageError(
            f"restate.{accessor}() called outside a Restate handler (or inside a run block, a "
            "greenlet or a thread the handler started)"
        )
    if cls is not None and builtins.type(ctx) is not cls:
        raise ContextUsageError(
            f"restate.{accessor}() is for {_KIND_NAMES[cls]}, but the current handler is "
            f"{_KIND_NAMES.get(builtins.type(ctx), builtins.type(ctx).__name__)}"
        )
    return cast(C, ctx)


def current_context() -> Context:
    """The context of the handler running on this greenlet (any handler kind)."""
    return _current_of(None, "current_context")


def current_object_context() -> ObjectContext:
    """The context of the exclusive VirtualObject handler running on this greenlet."""
    return _current_of(_ObjectContext, "current_object_context")


def current_shared_context() -> ObjectSharedContext:
    """The context of the shared VirtualObject handler running on this greenlet."""
    return _current_of(_ObjectSharedContext, "current_shared_context")


def current_workflow_context() -> WorkflowContext:
    """The context of the Workflow ``@main`` handler running on this greenlet."""
    return _current_of(_WorkflowContext, "current_workflow_context")


def current_shared_workflow_context() -> WorkflowSharedContext:
    """The context of the shared Workflow handler running on this greenlet."""
    return _current_of(_WorkflowSharedContext, "current_shared_workflow_context")
