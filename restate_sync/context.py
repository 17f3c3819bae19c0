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
"""

from __future__ import annotations

import random as _random
import time as _time
import uuid as _uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ._current import current as _current
from .durations import Duration, to_millis
from .errors import TerminalError
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
from .protocol.vm import VOID, Failure, InvocationInput, RetryPolicy
from .retry import RunRetryPolicy
from .serde import DEFAULT_SERDE, Serde
from .service import service_definition

__all__ = [
    "AttemptFinishedEvent",
    "Context",
    "ContextDriver",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "WorkflowContext",
    "WorkflowSharedContext",
    "current_context",
    "current_object_context",
    "current_shared_context",
    "current_shared_workflow_context",
    "current_workflow_context",
]

T = TypeVar("T")


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


class Context:
    """Context of a ``Service`` handler; the base of every context."""

    __slots__ = ("__weakref__", "_driver", "_random", "_request")

    def __init__(self, driver: ContextDriver) -> None:
        self._driver = driver
        invocation = driver.input
        self._random: _random.Random | None = None
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

    def random(self) -> _random.Random:
        """A deterministic PRNG seeded by the invocation; the same sequence on every replay."""
        if self._random is None:
            self._random = _random.Random(self._driver.input.random_seed)
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
        serde: Serde[T] = DEFAULT_SERDE,
        retry_policy: RunRetryPolicy | None = None,
        background: bool = False,
    ) -> DurableFuture[T]:
        """Run ``fn(*args)`` once and record its result; on replay return the recorded result.

        The block starts lazily, when its result (or a combinator over it) is awaited.
        ``TerminalError`` raised by ``fn`` is recorded as the step's failure; any other
        exception retries the step according to ``retry_policy``. With ``background=True`` the
        block runs in gevent's thread pool (for CPU-bound native code).
        """
        driver = self._driver
        handle = driver.usable_vm().sys_run(name)
        bound: Callable[[], Any] = (lambda: fn(*args)) if args else fn
        driver.register_run(
            handle,
            bound,
            retry_policy.to_vm() if retry_policy is not None else None,
            background,
            serde.serialize,
        )
        return HandleFuture(driver, handle, _decoder(serde))

    def run_sync(
        self,
        name: str,
        fn: Callable[..., T],
        *args: Any,
        serde: Serde[T] = DEFAULT_SERDE,
        retry_policy: RunRetryPolicy | None = None,
        background: bool = False,
    ) -> T:
        """``run(...)`` and wait for its result."""
        return self.run(
            name, fn, *args, serde=serde, retry_policy=retry_policy, background=background
        ).result()

    def sleep(self, duration: Duration, name: str = "") -> DurableFuture[None]:
        """A durable timer; ``.result()`` returns once ``duration`` has passed."""
        return timer(self._driver, duration, "sleep duration", name)

    # ------------------------------------------------------------------ calls

    def _target(
        self, service: Any, handler: Any, input_serde: Serde[Any] | None, output_serde: Serde[Any] | None
    ) -> tuple[str, str, Serde[Any], Serde[Any]]:
        handler_name = handler if isinstance(handler, str) else getattr(handler, "__name__", None)
        if not isinstance(handler_name, str):
            raise TypeError(f"handler must be a name or a handler function, not {handler!r}")
        if isinstance(service, str):
            return service, handler_name, input_serde or DEFAULT_SERDE, output_serde or DEFAULT_SERDE
        definition = service_definition(service)
        target = definition.handlers.get(handler_name)
        if target is None:
            # the function's wire name may differ from its Python name
            target = next((h for h in definition.handlers.values() if h.fn is handler), None)
        if target is None:
            raise ValueError(f"{definition.name} has no handler {handler_name!r}")
        return (
            definition.name,
            target.name,
            input_serde or target.input_serde,
            output_serde or target.output_serde,
        )

    def _call(
        self,
        service: Any,
        handler: Any,
        key: str,
        arg: Any,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
        input_serde: Serde[Any] | None,
        output_serde: Serde[Any] | None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> DurableCallFuture[Any]:
        _check_call_keys(idempotency_key, scope, limit_key)
        vm = self._driver.usable_vm()
        service_name, handler_name, in_serde, out_serde = self._target(
            service, handler, input_serde, output_serde
        )
        invocation_id_handle, result_handle = vm.sys_call(
            service_name,
            handler_name,
            in_serde.serialize(arg),
            key=key,
            idempotency_key=idempotency_key,
            headers=list(headers.items()) if headers else (),
            scope=scope,
            limit_key=limit_key,
        )
        return DurableCallFuture(
            self._driver,
            result_handle,
            _decoder(out_serde),
            HandleFuture(self._driver, invocation_id_handle, identity),
        )

    def _send(
        self,
        service: Any,
        handler: Any,
        key: str,
        arg: Any,
        delay: Duration | None,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
        input_serde: Serde[Any] | None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        _check_call_keys(idempotency_key, scope, limit_key)
        vm = self._driver.usable_vm()
        service_name, handler_name, in_serde, _ = self._target(service, handler, input_serde, None)
        invoke_time = 0
        if delay is not None:
            delay_ms = to_millis(delay, "delay")
            if delay_ms > 0:
                invoke_time = int(_time.time() * 1000) + delay_ms
        handle = vm.sys_send(
            service_name,
            handler_name,
            in_serde.serialize(arg),
            key=key,
            idempotency_key=idempotency_key,
            headers=list(headers.items()) if headers else (),
            invoke_time_ms=invoke_time,
            scope=scope,
            limit_key=limit_key,
        )
        return SendHandle(self._driver, HandleFuture(self._driver, handle, identity))

    def service_call(
        self,
        service: Any,
        handler: Any,
        arg: Any = None,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a ``Service`` handler; ``.result()`` waits for its response.

        ``scope`` and ``limit_key`` (service protocol V7) place the callee in a flow-control
        scope, and a limit key within it, which restate-server's concurrency rules apply to.
        """
        return self._call(
            service, handler, "", arg, idempotency_key, headers, input_serde, output_serde, scope, limit_key
        )

    def object_call(
        self,
        service: Any,
        handler: Any,
        key: str,
        arg: Any = None,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a ``VirtualObject`` handler on ``key`` (``scope``/``limit_key``: see ``service_call``)."""
        return self._call(
            service, handler, key, arg, idempotency_key, headers, input_serde, output_serde, scope, limit_key
        )

    def workflow_call(
        self,
        service: Any,
        handler: Any,
        key: str,
        arg: Any = None,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        output_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> DurableCallFuture[Any]:
        """Call a ``Workflow`` handler on ``key`` (``scope``/``limit_key``: see ``service_call``)."""
        return self._call(
            service, handler, key, arg, idempotency_key, headers, input_serde, output_serde, scope, limit_key
        )

    def service_send(
        self,
        service: Any,
        handler: Any,
        arg: Any = None,
        *,
        delay: Duration | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        """Invoke a ``Service`` handler without waiting (optionally after ``delay``) (``scope``/``limit_key``: see ``service_call``)."""
        return self._send(
            service, handler, "", arg, delay, idempotency_key, headers, input_serde, scope, limit_key
        )

    def object_send(
        self,
        service: Any,
        handler: Any,
        key: str,
        arg: Any = None,
        *,
        delay: Duration | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        """Invoke a ``VirtualObject`` handler on ``key`` without waiting (``scope``/``limit_key``: see ``service_call``)."""
        return self._send(
            service, handler, key, arg, delay, idempotency_key, headers, input_serde, scope, limit_key
        )

    def workflow_send(
        self,
        service: Any,
        handler: Any,
        key: str,
        arg: Any = None,
        *,
        delay: Duration | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        input_serde: Serde[Any] | None = None,
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> SendHandle:
        """Invoke a ``Workflow`` handler on ``key`` without waiting (``scope``/``limit_key``: see ``service_call``)."""
        return self._send(
            service, handler, key, arg, delay, idempotency_key, headers, input_serde, scope, limit_key
        )

    def cancel_invocation(self, invocation_id: str) -> None:
        """Cancel another invocation."""
        self._driver.usable_vm().sys_cancel_invocation(invocation_id)

    # ------------------------------------------------------------------ awakeables

    def awakeable(self, serde: Serde[T] = DEFAULT_SERDE) -> tuple[str, DurableFuture[T]]:
        """An id an outside system can resolve, and the future of its payload."""
        vm = self._driver.usable_vm()
        awakeable_id, handle = vm.sys_awakeable()
        return awakeable_id, HandleFuture(self._driver, handle, _decoder(serde))

    def resolve_awakeable(self, awakeable_id: str, payload: Any, serde: Serde[Any] = DEFAULT_SERDE) -> None:
        self._driver.usable_vm().sys_complete_awakeable(awakeable_id, serde.serialize(payload))

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        self._driver.usable_vm().sys_complete_awakeable(awakeable_id, Failure(code, message))

    # ------------------------------------------------------------------ combinators

    def wait_any(
        self, *futures: DurableFuture[Any]
    ) -> tuple[list[DurableFuture[Any]], list[DurableFuture[Any]]]:
        """Wait until at least one future is done; return ``(done, pending)`` in argument order."""
        return wait_any(futures)

    # ------------------------------------------------------------------ signals, invocations

    def signal(self, name: str, serde: Serde[T] = DEFAULT_SERDE) -> DurableFuture[T]:
        """The future of the named signal ``name`` sent to this invocation (see ``resolve_signal``)."""
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_signal(name), _decoder(serde))

    def resolve_signal(
        self, invocation_id: str, name: str, payload: Any, serde: Serde[Any] = DEFAULT_SERDE
    ) -> None:
        """Resolve the named signal ``name`` of another invocation with ``payload``."""
        self._driver.usable_vm().sys_complete_signal(invocation_id, name, serde.serialize(payload))

    def reject_signal(self, invocation_id: str, name: str, message: str, code: int = 500) -> None:
        """Reject the named signal ``name`` of another invocation with a terminal error."""
        self._driver.usable_vm().sys_complete_signal(invocation_id, name, Failure(code, message))

    def attach_invocation(self, invocation_id: str, serde: Serde[T] = DEFAULT_SERDE) -> DurableFuture[T]:
        """Wait for another invocation to finish and get its result."""
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_attach_invocation(invocation_id), _decoder(serde))


class ObjectSharedContext(Context):
    """Context of a ``VirtualObject`` shared handler: its key and read-only state."""

    __slots__ = ()

    @property
    def key(self) -> str:
        """The object's (or workflow's) key."""
        return self._driver.input.key

    def get(self, name: str, serde: Serde[T] = DEFAULT_SERDE) -> T | None:
        """The value of state entry ``name``, or ``None`` when absent."""
        return self.get_async(name, serde).result()

    def get_async(self, name: str, serde: Serde[T] = DEFAULT_SERDE) -> DurableFuture[T | None]:
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_get_state(name), _state_decoder(serde))

    def state_keys(self) -> list[str]:
        """Names of all state entries."""
        return self.state_keys_async().result()

    def state_keys_async(self) -> DurableFuture[list[str]]:
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_get_state_keys(), identity)

    def __getattr__(self, name: str) -> Any:
        if name in ("set", "clear", "clear_all"):
            raise AttributeError(
                f"ctx.{name}() is not available in a shared handler: shared handlers have read-only "
                "state (use an exclusive @restate.handler to modify state)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ObjectContext(ObjectSharedContext):
    """Context of a ``VirtualObject`` exclusive handler: full read/write state."""

    __slots__ = ()

    def set(self, name: str, value: Any, serde: Serde[Any] = DEFAULT_SERDE) -> None:
        """Set state entry ``name``."""
        self._driver.usable_vm().sys_set_state(name, serde.serialize(value))

    def clear(self, name: str) -> None:
        """Delete state entry ``name``."""
        self._driver.usable_vm().sys_clear_state(name)

    def clear_all(self) -> None:
        """Delete every state entry."""
        self._driver.usable_vm().sys_clear_all_state()


class WorkflowSharedContext(ObjectSharedContext):
    """Context of a workflow's shared handlers: read-only state and durable promises."""

    __slots__ = ()

    def promise(self, name: str, serde: Serde[T] = DEFAULT_SERDE) -> T:
        """Block until the durable promise ``name`` is resolved; return its value."""
        return self.promise_async(name, serde).result()

    def promise_async(self, name: str, serde: Serde[T] = DEFAULT_SERDE) -> DurableFuture[T]:
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_get_promise(name), _decoder(serde))

    def peek_promise(self, name: str, serde: Serde[T] = DEFAULT_SERDE) -> T | None:
        """The promise's value if it is resolved, else ``None``."""
        vm = self._driver.usable_vm()
        return HandleFuture(self._driver, vm.sys_peek_promise(name), _state_decoder(serde)).result()

    def resolve_promise(self, name: str, payload: Any, serde: Serde[Any] = DEFAULT_SERDE) -> None:
        """Resolve the durable promise ``name``; raises ``TerminalError`` if already completed."""
        vm = self._driver.usable_vm()
        HandleFuture(
            self._driver, vm.sys_complete_promise(name, serde.serialize(payload)), void_to_none
        ).result()

    def reject_promise(self, name: str, message: str, code: int = 500) -> None:
        """Reject the durable promise ``name``."""
        vm = self._driver.usable_vm()
        HandleFuture(
            self._driver, vm.sys_complete_promise(name, Failure(code, message)), void_to_none
        ).result()


class WorkflowContext(WorkflowSharedContext, ObjectContext):
    """Context of a workflow's ``@main`` handler: full state and durable promises."""

    __slots__ = ()


def _check_call_keys(idempotency_key: str | None, scope: str | None, limit_key: str | None) -> None:
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
        raise ValueError(f"idempotency_key must be a non-empty string, got {idempotency_key!r}")
    if scope is not None and (not isinstance(scope, str) or not scope):
        raise ValueError(f"scope must be a non-empty string, got {scope!r}")
    if limit_key is not None:
        if not isinstance(limit_key, str) or not limit_key:
            raise ValueError(f"limit_key must be a non-empty string, got {limit_key!r}")
        if scope is None:
            raise ValueError("limit_key needs a scope: restate-server applies limit keys within a scope")


def _decoder(serde: Serde[T]) -> Callable[[Any], T]:
    deserialize = serde.deserialize

    def decode(raw: Any) -> T:
        if raw is VOID:
            return None  # type: ignore[return-value]
        return deserialize(raw)

    return decode


def _state_decoder(serde: Serde[Any]) -> Callable[[Any], Any]:
    deserialize = serde.deserialize

    def decode(raw: Any) -> Any:
        if raw is VOID:
            return None
        try:
            return deserialize(raw)
        except Exception as exc:
            raise TerminalError(f"cannot decode a stored value: {exc}") from exc

    return decode


_KIND_NAMES = {
    Context: "a Service handler",
    ObjectContext: "an exclusive VirtualObject handler",
    ObjectSharedContext: "a shared VirtualObject handler",
    WorkflowContext: "a Workflow @main handler",
    WorkflowSharedContext: "a shared Workflow handler",
}

C = TypeVar("C", bound=Context)


def _current_of(cls: type[C], accessor: str) -> C:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError(
            f"restate.{accessor}() called outside a Restate handler (or inside a run block, a "
            "greenlet or a thread the handler started)"
        )
    if cls is not Context and type(ctx) is not cls:
        raise RuntimeError(
            f"restate.{accessor}() is for {_KIND_NAMES[cls]}, but the current handler is "
            f"{_KIND_NAMES.get(type(ctx), type(ctx).__name__)}"
        )
    return ctx


def current_context() -> Context:
    """The context of the handler running on this greenlet (any handler kind)."""
    return _current_of(Context, "current_context")


def current_object_context() -> ObjectContext:
    """The context of the exclusive VirtualObject handler running on this greenlet."""
    return _current_of(ObjectContext, "current_object_context")


def current_shared_context() -> ObjectSharedContext:
    """The context of the shared VirtualObject handler running on this greenlet."""
    return _current_of(ObjectSharedContext, "current_shared_context")


def current_workflow_context() -> WorkflowContext:
    """The context of the Workflow ``@main`` handler running on this greenlet."""
    return _current_of(WorkflowContext, "current_workflow_context")


def current_shared_workflow_context() -> WorkflowSharedContext:
    """The context of the shared Workflow handler running on this greenlet."""
    return _current_of(WorkflowSharedContext, "current_shared_workflow_context")
