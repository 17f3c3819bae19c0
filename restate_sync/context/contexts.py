"""The context classes handlers are annotated with, one a handler kind, and the operations each has.

Each is a runtime-checkable protocol with its implementation, so that a type checker accepts it as
the first parameter of a handler in a class body; the endpoint instantiates the concrete classes
of :mod:`.accessors`. The operations come from :mod:`.base`, :mod:`.state` and :mod:`.promises`;
the typed call and send signatures, which name these classes, are :class:`Context`'s own.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Unpack, overload, runtime_checkable

from ..durations import Duration
from ..futures import DurableCallFuture, SendHandle
from ..serde import Serde
from ..service import ServiceKind
from .base import ContextBase
from .calls import CallOptions, SendOptions, call, send
from .promises import Promises
from .state import StateReads, StateWrites
from .unavailable import (
    NOT_A_WORKFLOW,
    PROMISES,
    READ_ONLY,
    STATE_READS,
    STATE_WRITES,
    STATELESS,
    unavailable,
)

__all__ = ["Context", "ObjectContext", "ObjectSharedContext", "WorkflowContext", "WorkflowSharedContext"]

I = TypeVar("I")  # noqa: E741 - a call target's input type
R = TypeVar("R")  # a call target's output type


@runtime_checkable
class Context(ContextBase, Protocol):
    """Context of a ``Service`` handler; the base of every context."""

    __slots__ = ()

    if not TYPE_CHECKING:  # invisible to type checkers, for which a missing operation is an error
        locals().update(unavailable((*STATE_READS, *STATE_WRITES), STATELESS))
        locals().update(unavailable(PROMISES, NOT_A_WORKFLOW))

    # ------------------------------------------------------------------ calls

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
        return call(
            self._driver,
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
        return call(
            self._driver,
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
        return call(
            self._driver,
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
        return send(
            self._driver,
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
        return send(
            self._driver,
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
        return send(
            self._driver,
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


# Each class lists its operations before the context it extends, so that they come before that
# context's run-time stand-ins for them in the method resolution order.
@runtime_checkable
class ObjectSharedContext(StateReads, Context, Protocol):
    """Context of a ``VirtualObject`` shared handler: its key and read-only state."""

    __slots__ = ()

    if not TYPE_CHECKING:  # read-only state: writing is unavailable (until ObjectContext)
        locals().update(unavailable(STATE_WRITES, READ_ONLY))


@runtime_checkable
class ObjectContext(StateWrites, ObjectSharedContext, Protocol):
    """Context of a ``VirtualObject`` exclusive handler: full read/write state."""

    __slots__ = ()


@runtime_checkable
class WorkflowSharedContext(Promises, ObjectSharedContext, Protocol):
    """Context of a workflow's shared handlers: read-only state and durable promises."""

    __slots__ = ()


@runtime_checkable
class WorkflowContext(WorkflowSharedContext, ObjectContext, Protocol):
    """Context of a workflow's ``@main`` handler: full state and durable promises."""

    __slots__ = ()
