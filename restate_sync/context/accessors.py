"""The context classes handlers really receive, the constructor the endpoint uses for each handler
kind (:func:`context_factory`), and the ``restate.current_*_context()`` accessors."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import TypeVar, cast

from .._current import current as _current
from ..errors import ContextUsageError
from ..service import HandlerKind, ServiceKind
from .contexts import Context, ObjectContext, ObjectSharedContext, WorkflowContext, WorkflowSharedContext
from .driver import ContextDriver
from .unavailable import kind_name

__all__ = [
    "context_factory",
    "current_context",
    "current_object_context",
    "current_shared_context",
    "current_shared_workflow_context",
    "current_workflow_context",
]


# the classes handlers really receive; messages name their handler kind (see .unavailable)
class _ServiceContext(Context):
    __slots__ = ()
    _handler_kind_name = "a Service handler"


class _ObjectSharedContext(ObjectSharedContext):
    __slots__ = ()
    _handler_kind_name = "a shared VirtualObject handler"


class _ObjectContext(ObjectContext):
    __slots__ = ()
    _handler_kind_name = "an exclusive VirtualObject handler"


class _WorkflowSharedContext(WorkflowSharedContext):
    __slots__ = ()
    _handler_kind_name = "a shared Workflow handler"


class _WorkflowContext(WorkflowContext):
    __slots__ = ()
    _handler_kind_name = "a Workflow @main handler"


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
            f"restate.{accessor}() is for {kind_name(cls)}, but the current handler is "
            f"{kind_name(builtins.type(ctx))}"
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
