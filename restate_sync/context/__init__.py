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
:mod:`restate_sync.values`) or an explicit ``serde=``; calls through a handler reference use the target
handler's declared input and output types, and type checkers infer the result type from it.

The modules, each importing only those before it: :mod:`.driver` (what a context needs of its
invocation; the request), :mod:`.codec` (values), :mod:`.unavailable` (the run-time stand-ins for
missing operations), :mod:`.targets` (what a call addresses), :mod:`.calls` (calls and sends),
:mod:`.base`, :mod:`.state`, :mod:`.promises` (the operations), :mod:`.contexts` (the classes
above), :mod:`.accessors` (``context_factory``, ``current_*_context()``).
"""

from .accessors import (
    context_factory,
    current_context,
    current_object_context,
    current_shared_context,
    current_shared_workflow_context,
    current_workflow_context,
)
from .calls import CallOptions, SendOptions
from .contexts import Context, ObjectContext, ObjectSharedContext, WorkflowContext, WorkflowSharedContext
from .driver import AttemptFinishedEvent, ContextDriver, Request

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

# The public names present themselves as members of this package, where users import them from
# (reprs, docs, pickling); service.py recognises a handler's context annotation by this module.
for _public in (
    AttemptFinishedEvent,
    CallOptions,
    Context,
    ContextDriver,
    ObjectContext,
    ObjectSharedContext,
    Request,
    SendOptions,
    WorkflowContext,
    WorkflowSharedContext,
    context_factory,
    current_context,
    current_object_context,
    current_shared_context,
    current_shared_workflow_context,
    current_workflow_context,
):
    _public.__module__ = __name__
del _public
