"""Errors users raise and catch, and the internal control flow that must never be caught.

User-facing:

* :class:`TerminalError` ends an invocation (or a ``run`` step) for good: no retry, and the
  caller sees the status code and message.
* :class:`TimeoutError` is the terminal error a ``future.or_timeout(...)`` raises (status 408).
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

__all__ = [
    "DisconnectedError",
    "InternalControlFlow",
    "InvocationFailedError",
    "ProtocolError",
    "SuspendedError",
    "TerminalError",
    "TimeoutError",
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
