"""Durable futures: results the Restate journal will deliver, awaited by blocking the greenlet."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import TerminalError
from .protocol.vm import VOID, Failure, Handle, Progress

if TYPE_CHECKING:
    from .context import Context

__all__ = ["DurableCallFuture", "DurableFuture", "SendHandle"]

T = TypeVar("T")

_PENDING = object()


def cancelled_error() -> TerminalError:
    return TerminalError("cancelled", status_code=409)


def failure_to_error(failure: Failure) -> TerminalError:
    return TerminalError(failure.message, status_code=failure.code, metadata=dict(failure.metadata))


class DurableFuture(Generic[T]):
    """A result Restate will deliver; ``result()`` blocks this greenlet until it arrives.

    A failed result (a terminal error recorded in the journal) is raised as
    :class:`~restate_sync.TerminalError`.
    """

    __slots__ = ("_ctx", "_decode", "_error", "_handle", "_value")

    def __init__(self, ctx: Context, handle: Handle, decode: Callable[[Any], T]) -> None:
        self._ctx = ctx
        self._handle = handle
        self._decode = decode
        self._value: Any = _PENDING
        self._error: BaseException | None = None

    def result(self) -> T:
        """Block until the result is available; return it or raise its terminal error."""
        if self._value is _PENDING and self._error is None:
            attempt = self._ctx._attempt_for_call()
            if (
                not attempt.vm.is_completed(self._handle)
                and attempt.block_on(self._handle) is Progress.CANCELLED
            ):
                raise cancelled_error()
            self._settle(attempt.vm.take(self._handle))
        if self._error is not None:
            raise self._error
        return self._value

    def done(self) -> bool:
        """Whether ``result()`` would return (or raise) without blocking."""
        if self._value is not _PENDING or self._error is not None:
            return True
        return self._ctx._attempt.vm.is_completed(self._handle)

    def _settle(self, raw: Any) -> None:
        if isinstance(raw, Failure):
            self._error = failure_to_error(raw)
        else:
            try:
                self._value = self._decode(raw)
            except TerminalError as exc:
                self._error = exc

    def __repr__(self) -> str:
        state = "pending" if not self.done() else "done"
        return f"<{type(self).__name__} {self._handle!r} {state}>"


class DurableCallFuture(DurableFuture[T]):
    """The result of a call to another handler, plus the callee's invocation id."""

    __slots__ = ("_invocation_id",)

    def __init__(
        self, ctx: Context, handle: Handle, decode: Callable[[Any], T], invocation_id: DurableFuture[str]
    ):
        super().__init__(ctx, handle, decode)
        self._invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        """The callee's invocation id (blocks until Restate has assigned it)."""
        return self._invocation_id.result()

    def cancel(self) -> None:
        """Cancel the callee's invocation."""
        self._ctx.cancel_invocation(self.invocation_id)


class SendHandle:
    """Handle of a one-way call."""

    __slots__ = ("_ctx", "_invocation_id")

    def __init__(self, ctx: Context, invocation_id: DurableFuture[str]) -> None:
        self._ctx = ctx
        self._invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        """The callee's invocation id (blocks until Restate has assigned it)."""
        return self._invocation_id.result()

    def cancel(self) -> None:
        """Cancel the invocation this send started."""
        self._ctx.cancel_invocation(self.invocation_id)


def identity(raw: Any) -> Any:
    return raw


def void_to_none(raw: Any) -> Any:
    return None if raw is VOID else raw
