"""The operations a handler kind lacks, as run-time stand-ins that say where they are available.

A context class only has the operations its handler kind may use. For type checkers a missing
operation is simply absent (an error); at run time the context classes carry an
:class:`Unavailable` descriptor under its name instead, and reading it raises
:class:`~restate_sync.errors.UnavailableOperationError` (terminal) with the reason, so the
invocation ends at once with the message instead of retrying.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from ..errors import UnavailableOperationError

STATE_READS = ("key", "get", "get_async", "state_keys", "state_keys_async")
STATE_WRITES = ("set", "clear", "clear_all")
PROMISES = ("promise", "promise_async", "peek_promise", "resolve_promise", "reject_promise")

# The reasons, formatted with the operation's ``name`` and the ``kind`` of handler reaching for it.
STATELESS = (
    "ctx.{name} is not available in {kind}: a Service is stateless (state belongs to a "
    "VirtualObject or Workflow key)"
)
NOT_A_WORKFLOW = (
    "ctx.{name}() is only available in a Workflow's handlers (durable promises belong to "
    "a workflow), not in {kind}"
)
READ_ONLY = (
    "ctx.{name}() is not available in a shared handler: shared handlers have read-only "
    "state (use an exclusive @restate.handler to modify state)"
)


def kind_name(cls: type) -> str:
    """The handler kind a context class serves, as messages say it: the ``_handler_kind_name`` of
    the classes the endpoint instantiates, else the class name."""
    name = getattr(cls, "_handler_kind_name", None)
    return name if isinstance(name, str) else cls.__name__


class Unavailable:
    """Stands (at run time only) for an operation the context's handler kind does not have:
    reading it raises :class:`UnavailableOperationError` with a message saying where it is."""

    __slots__ = ("name", "reason")

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def __get__(self, ctx: Any, owner: Any = None) -> Any:
        if ctx is None:
            return self
        kind = kind_name(builtins.type(ctx))
        raise UnavailableOperationError(self.reason.format(name=self.name, kind=kind))


def unavailable(names: Iterable[str], reason: str) -> dict[str, Unavailable]:
    """Stand-ins for the operations ``names``, to put in a context class's namespace."""
    return {name: Unavailable(name, reason) for name in names}
