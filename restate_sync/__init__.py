"""restate_sync: Restate durable execution for plain, blocking Python handlers.

Handlers are ordinary ``def`` functions; each invocation runs on its own greenlet, and every
blocking context call parks that greenlet on the gevent hub until Restate delivers the result.
"""

from ._version import __version__
from .context import (
    AttemptFinishedEvent,
    Context,
    ObjectContext,
    ObjectSharedContext,
    Request,
    WorkflowContext,
    WorkflowSharedContext,
    current_context,
    current_object_context,
    current_shared_context,
    current_shared_workflow_context,
    current_workflow_context,
)
from .endpoint import Endpoint, endpoint
from .errors import MisuseError, RetryableError, TerminalError, TimeoutError
from .futures import DurableCallFuture, DurableFuture, SendHandle, all, all_settled, any, race
from .logs import getLogger
from .middleware import Middleware
from .retry import InvocationRetryPolicy, RunRetryPolicy
from .serde import BytesSerde, JsonSerde, Serde, SerdeError
from .service import Service, VirtualObject, Workflow, handler, main, shared
from .transport.h2limits import H2Limits
from .transport.http1limits import Http1Limits
from .typed import schema_for, serde_for

__all__ = [
    "AttemptFinishedEvent",
    "BytesSerde",
    "Context",
    "DurableCallFuture",
    "DurableFuture",
    "Endpoint",
    "H2Limits",
    "Http1Limits",
    "InvocationRetryPolicy",
    "JsonSerde",
    "Middleware",
    "MisuseError",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "RetryableError",
    "RunRetryPolicy",
    "SendHandle",
    "Serde",
    "SerdeError",
    "Service",
    "TerminalError",
    "TimeoutError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "__version__",
    "all",
    "all_settled",
    "any",
    "current_context",
    "current_object_context",
    "current_shared_context",
    "current_shared_workflow_context",
    "current_workflow_context",
    "endpoint",
    "getLogger",
    "handler",
    "main",
    "race",
    "schema_for",
    "serde_for",
    "shared",
]
