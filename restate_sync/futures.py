"""Durable futures: results the Restate journal will deliver, awaited by blocking the greenlet.

A :class:`DurableFuture` wraps one journal notification. Combinators (:func:`all`, :func:`any`,
:func:`race`, :func:`all_settled`, and ``future.or_timeout``) build futures over futures; they
nest freely, and awaiting one hands the whole remaining tree to the state machine, so a
suspension waits on exactly the set of results that can still decide it.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from .durations import Duration, to_millis
from .errors import MisuseError, TerminalError, TimeoutError
from .protocol.vm import VM, VOID, Combinator, CombinatorKind, Failure, FutureTree, Handle, Progress

__all__ = [
    "Driver",
    "DurableCallFuture",
    "DurableFuture",
    "HandleFuture",
    "SendHandle",
    "all",
    "all_settled",
    "any",
    "race",
    "timer",
]

T = TypeVar("T")

_PENDING: Any = object()


class Driver(Protocol):
    """What a future needs of the invocation it belongs to (implemented by the invocation driver).

    ``vm`` is read without checks (polling a future never changes the journal); every operation
    that records a command or blocks goes through :meth:`usable_vm`, which raises a clear
    ``RuntimeError`` when called from the wrong greenlet, inside a ``run`` block, or after the
    handler returned.
    """

    @property
    def vm(self) -> VM: ...

    def usable_vm(self) -> VM:
        """The VM, after checking that the caller may use the invocation now."""
        ...

    def block_on(self, future: FutureTree) -> Progress:
        """Park the handler greenlet until ``future`` can make progress (or is cancelled)."""
        ...

    def track(self, future: DurableFuture[Any], kind: str, detail: Any) -> None:
        """Remember a future that does nothing unless awaited (``kind`` "run" or "sleep", ``detail``
        its name or duration), to warn if the handler returns without awaiting it."""
        ...


def cancelled_error() -> TerminalError:
    return TerminalError("cancelled", status_code=409)


def failure_to_error(failure: Failure) -> TerminalError:
    return TerminalError(failure.message, status_code=failure.code, metadata=dict(failure.metadata))


class DurableFuture(Generic[T]):
    """A result Restate will deliver; ``result()`` blocks this greenlet until it arrives.

    A failed result (a terminal error recorded in the journal) is raised as
    :class:`~restate_sync.TerminalError`.
    """

    __slots__ = ("_awaited", "_driver", "_error", "_value")

    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._value: Any = _PENDING
        self._error: TerminalError | None = None
        self._awaited = False  # result()/done() was asked of it (or of a combinator over it)

    # -- what subclasses provide

    def _poll(self) -> bool:
        """Settle from results already delivered, without blocking; True once settled."""
        raise NotImplementedError

    def _tree(self) -> FutureTree:
        """The still-undecided part of this future, for the state machine to wait on."""
        raise NotImplementedError

    # -- public API

    def result(self) -> T:
        """Block until the result is available; return it or raise its terminal error."""
        if not self._awaited:
            self._mark_awaited()
        if self._value is _PENDING and self._error is None:
            driver = self._driver
            driver.usable_vm()
            while not self._poll():
                _block(driver, self._tree())
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value

    def done(self) -> bool:
        """Whether ``result()`` would return (or raise) without blocking."""
        if not self._awaited:
            self._mark_awaited()
        return self._settled or self._poll()

    def _mark_awaited(self) -> None:
        self._awaited = True

    def exception(self) -> TerminalError | None:
        """The terminal error of a done future (``None`` if it succeeded); blocks like ``result()``."""
        try:
            self.result()
        except TerminalError as exc:
            return exc
        return None

    def or_timeout(self, timeout: Duration) -> DurableFuture[T]:
        """This future, or ``restate.TimeoutError`` (408) if ``timeout`` passes first (durable timer)."""
        return _Timeout(self._driver, self, timer(self._driver, timeout, "timeout"))

    @property
    def _settled(self) -> bool:
        return self._value is not _PENDING or self._error is not None

    def _set(self, value: Any) -> None:
        self._value = value

    def _fail(self, error: TerminalError) -> None:
        self._error = error

    def __repr__(self) -> str:
        state = "done" if self._settled else "pending"
        return f"<{type(self).__name__} {state}>"


def _block(driver: Driver, tree: FutureTree) -> None:
    if driver.block_on(tree) is Progress.CANCELLED:
        raise cancelled_error()


class HandleFuture(DurableFuture[T]):
    """A future over one notification handle."""

    __slots__ = ("_decode", "_handle")

    def __init__(self, driver: Driver, handle: Handle, decode: Callable[[Any], T]) -> None:
        super().__init__(driver)
        self._handle = handle
        self._decode = decode

    def _poll(self) -> bool:
        if self._settled:
            return True
        vm = self._driver.vm
        if not vm.is_completed(self._handle):
            return False
        raw = vm.take(self._handle)
        if isinstance(raw, Failure):
            self._fail(failure_to_error(raw))
        else:
            try:
                self._set(self._decode(raw))
            except TerminalError as exc:
                self._fail(exc)
        return True

    def _tree(self) -> FutureTree:
        return self._handle

    def __repr__(self) -> str:
        return f"<DurableFuture {self._handle!r} {'done' if self._settled else 'pending'}>"


class DurableCallFuture(HandleFuture[T]):
    """The result of a call to another handler, plus the callee's invocation id."""

    __slots__ = ("_invocation_id",)

    def __init__(
        self, driver: Driver, handle: Handle, decode: Callable[[Any], T], invocation_id: DurableFuture[str]
    ) -> None:
        super().__init__(driver, handle, decode)
        self._invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        """The callee's invocation id (blocks until Restate has assigned it)."""
        return self._invocation_id.result()

    def cancel(self) -> None:
        """Cancel the callee's invocation."""
        self._driver.usable_vm().sys_cancel_invocation(self.invocation_id)


class SendHandle:
    """Handle of a one-way call."""

    __slots__ = ("_driver", "_invocation_id")

    def __init__(self, driver: Driver, invocation_id: DurableFuture[str]) -> None:
        self._driver = driver
        self._invocation_id = invocation_id

    @property
    def invocation_id(self) -> str:
        """The callee's invocation id (blocks until Restate has assigned it)."""
        return self._invocation_id.result()

    def cancel(self) -> None:
        """Cancel the invocation this send started."""
        self._driver.usable_vm().sys_cancel_invocation(self.invocation_id)


# ---------------------------------------------------------------------- combinators


class _Combinator(DurableFuture[T]):
    """A future over child futures; subclasses decide when it is settled."""

    __slots__ = ("_children",)
    _kind: CombinatorKind

    def __init__(self, driver: Driver, children: Sequence[DurableFuture[Any]]) -> None:
        super().__init__(driver)
        self._children = tuple(children)

    def _poll(self) -> bool:
        if self._settled:
            return True
        for child in self._children:
            child._poll()
        return self._decide()

    def _mark_awaited(self) -> None:
        self._awaited = True
        for child in self._children:
            if not child._awaited:
                child._mark_awaited()

    def _decide(self) -> bool:
        raise NotImplementedError

    def _tree(self) -> FutureTree:
        pending = tuple(child._tree() for child in self._children if not child._settled)
        return pending[0] if len(pending) == 1 else Combinator(self._kind, pending)


class _Race(_Combinator[T]):
    """Settles like the first child to settle (success or failure)."""

    __slots__ = ()
    _kind = CombinatorKind.FIRST_COMPLETED

    def _decide(self) -> bool:
        for child in self._children:
            if child._settled:
                if child._error is not None:
                    self._fail(child._error)
                else:
                    self._set(child._value)
                return True
        return False


class _Any(_Combinator[T]):
    """The first child to succeed; fails only when every child failed (with the last error)."""

    __slots__ = ()
    _kind = CombinatorKind.FIRST_SUCCEEDED_OR_ALL_FAILED

    def _decide(self) -> bool:
        for child in self._children:
            if child._settled and child._error is None:
                self._set(child._value)
                return True
        if builtins.all(child._settled for child in self._children):
            error = self._children[-1]._error
            assert error is not None
            self._fail(error)
            return True
        return False


class _All(_Combinator[list[Any]]):
    """Every child's value, in argument order; fails as soon as one child fails."""

    __slots__ = ()
    _kind = CombinatorKind.ALL_SUCCEEDED_OR_FIRST_FAILED

    def _decide(self) -> bool:
        for child in self._children:
            if child._error is not None:
                self._fail(child._error)
                return True
        if builtins.all(child._settled for child in self._children):
            self._set([child._value for child in self._children])
            return True
        return False


class _AllSettled(_Combinator[list[DurableFuture[Any]]]):
    """Waits until every child settled; the result is the list of (done) child futures."""

    __slots__ = ()
    _kind = CombinatorKind.ALL_COMPLETED

    def _decide(self) -> bool:
        if builtins.all(child._settled for child in self._children):
            self._set(list(self._children))
            return True
        return False


class _Timeout(_Combinator[T]):
    """The first child, unless the timer (second child) fires first."""

    __slots__ = ()
    _kind = CombinatorKind.FIRST_COMPLETED

    def __init__(self, driver: Driver, future: DurableFuture[T], timer: DurableFuture[None]) -> None:
        super().__init__(driver, (future, timer))

    def _decide(self) -> bool:
        future, timer = self._children
        if future._settled:
            if future._error is not None:
                self._fail(future._error)
            else:
                self._set(future._value)
            return True
        if timer._settled:
            self._fail(TimeoutError())
            return True
        return False


def _driver_of(futures: Sequence[DurableFuture[Any]], what: str) -> Driver:
    if not futures:
        raise ValueError(f"restate.{what}() needs at least one future")
    for future in futures:
        if not isinstance(future, DurableFuture):
            raise TypeError(f"restate.{what}() takes durable futures, got {future!r}")
    driver = futures[0]._driver
    if builtins.any(f._driver is not driver for f in futures):
        raise ValueError(f"restate.{what}() futures must belong to the same invocation")
    return driver


def all(*futures: DurableFuture[Any]) -> DurableFuture[list[Any]]:
    """Every future's value (in argument order); raises the first terminal error."""
    return _All(_driver_of(futures, "all"), futures)


def any(*futures: DurableFuture[T]) -> DurableFuture[T]:
    """The first successful value; raises the last error only if every future failed."""
    return _Any(_driver_of(futures, "any"), futures)


def race(*futures: DurableFuture[T]) -> DurableFuture[T]:
    """Settles like the first future to settle, success or failure."""
    return _Race(_driver_of(futures, "race"), futures)


def all_settled(*futures: DurableFuture[Any]) -> DurableFuture[list[DurableFuture[Any]]]:
    """Waits for every future; returns them (all done) so each ``.result()``/``.exception()`` is ready."""
    return _AllSettled(_driver_of(futures, "all_settled"), futures)


def wait_any(
    futures: Sequence[DurableFuture[Any]],
) -> tuple[list[DurableFuture[Any]], list[DurableFuture[Any]]]:
    """Block until at least one future is done; return ``(done, pending)`` in argument order."""
    driver = _driver_of(futures, "wait_any")
    driver.usable_vm()
    race_: _Race[Any] = _Race(driver, futures)
    race_._mark_awaited()
    while not race_._poll():
        _block(driver, race_._tree())
    return [f for f in futures if f._settled], [f for f in futures if not f._settled]


def timer(driver: Driver, duration: Duration, what: str, name: str = "") -> DurableFuture[None]:
    """A durable timer of ``duration`` from now (``what`` names the duration in errors)."""
    try:
        delay_ms = to_millis(duration, what)
    except (TypeError, ValueError) as exc:
        raise MisuseError(str(exc)) from None
    vm = driver.usable_vm()
    return HandleFuture(driver, vm.sys_sleep(int(time.time() * 1000) + delay_ms, name), void_to_none)


def identity(raw: Any) -> Any:
    return raw


def void_to_none(raw: Any) -> Any:
    return None if raw is VOID else raw
