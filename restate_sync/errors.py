"""Errors users raise and catch, and the internal control flow that must never be caught.

User-facing:

* :class:`TerminalError` ends an invocation (or a ``run`` step) for good: no retry, and the
  caller sees the status code and message.
* :class:`TimeoutError` is the terminal error a ``future.or_timeout(...)`` raises (status 408).
* :class:`MisuseError` is the terminal error the SDK raises when it is used in a way no retry can
  fix (state mutation in a shared handler, the wrong ``current_*_context()`` accessor, the context
  used inside a ``run`` block, a workflow-only operation outside a workflow, a value that cannot be
  encoded). Its concrete classes are also a ``RuntimeError`` / ``AttributeError``.
* :class:`RetryableError` is retried, after ``retry_after`` when given.
* Any other ``Exception`` escaping a handler is retried by Restate.

Internal (all derive from :class:`BaseException`, so ``except Exception:`` in handler code cannot
swallow them and break durability):

* :class:`SuspendedError` unwinds the handler after the invocation suspended.
* :class:`InvocationFailedError` unwinds the handler after the state machine wrote an
  ``ErrorMessage`` (protocol violation, non-determinism, ...).
* :class:`DisconnectedError` unwinds the handler after the runtime went away.
"""

from __future__ import annotations

from collections.abc import Mapping

from .durations import Duration, optional_millis

__all__ = [
    "ContextUsageError",
    "DisconnectedError",
    "InternalControlFlow",
    "InvocationFailedError",
    "MisuseError",
    "ProtocolError",
    "RetryableError",
    "SuspendedError",
    "TerminalError",
    "TimeoutError",
    "UnavailableOperationError",
]


class TerminalError(Exception):
    """A failure that must not be retried.

    Raised from a handler it completes the invocation with this failure; raised inside a
    ``run`` block it is recorded in the journal as the step's result. Calls to a handler that
    failed this way raise a ``TerminalError`` with the same ``status_code`` and ``message``.
    """

    def __init__(
        self,
        message: str = "",
        status_code: int = 500,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = int(status_code)
        self.metadata: dict[str, str] = dict(metadata or {})

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class TimeoutError(TerminalError):
    """A durable future did not complete within the time given to ``or_timeout``."""

    def __init__(self, message: str = "Timeout occurred", status_code: int = 408) -> None:
        super().__init__(message, status_code)


class MisuseError(TerminalError):
    """The SDK was used in a way that can never work; terminal, because no retry could fix it.

    The invocation ends on its first attempt with the message (status 500), unless the handler
    catches it.
    """


class ContextUsageError(MisuseError, RuntimeError):
    """The context used where it may not be: from a ``run`` block or another greenlet, after the
    handler returned, or through the accessor of another handler kind."""


class UnavailableOperationError(MisuseError, AttributeError):
    """An operation the handler's kind does not have, e.g. ``ctx.set`` in a shared handler."""


class RetryableError(Exception):
    """A failure Restate should retry, optionally not before ``retry_after`` (seconds or ``timedelta``).

    Raised from a handler, the invocation is retried after ``retry_after`` instead of the delay of
    its retry policy (for that retry only). Raised inside a ``run`` block, the step is retried
    after ``retry_after``; its ``RunRetryPolicy`` still bounds the attempts.
    """

    def __init__(self, message: str = "", retry_after: Duration | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.retry_after_ms: int | None = optional_millis(retry_after, "retry_after")

    def __repr__(self) -> str:
        return f"RetryableError({self.message!r}, retry_after={self.retry_after!r})"


class InternalControlFlow(BaseException):
    """Base of the SDK's internal unwinding signals; never catch it in handler code."""


class SuspendedError(InternalControlFlow):
    """The invocation suspended; the handler greenlet unwinds and the attempt ends."""


class InvocationFailedError(InternalControlFlow):
    """The state machine failed the attempt and already wrote the ``ErrorMessage``."""

    def __init__(self, error: ProtocolError) -> None:
        super().__init__(str(error))
        self.error = error


class DisconnectedError(InternalControlFlow):
    """The runtime closed the stream or the connection; nothing more can be written."""


class ProtocolError(Exception):
    """A protocol-level failure of one attempt, as the state machine reports it.

    ``code`` is the Restate error code written in the ``ErrorMessage`` (500, 570
    JOURNAL_MISMATCH, 571 PROTOCOL_VIOLATION, 573 UNSUPPORTED_FEATURE, ...).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        related_command_index: int | None = None,
        related_command_name: str | None = None,
        related_command_type: int | None = None,
    ) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.related_command_index = related_command_index
        self.related_command_name = related_command_name
        self.related_command_type = related_command_type
