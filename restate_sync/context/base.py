"""The operations every context has (:class:`ContextBase`): the invocation's metadata, durable
side effects (``run``), timers, awakeables, signals and other invocations."""

from __future__ import annotations

import builtins
import random as _rnd
import time as _time
import uuid as _uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

from ..durations import Duration
from ..errors import MisuseError
from ..futures import DurableFuture, HandleFuture, timer, wait_any
from ..logs import ReplayAwareLogger, context_logger
from ..protocol.vm import Failure
from ..retry import RunRetryPolicy
from ..serde import Serde
from ..values import ANY, return_serde, serde_of
from .codec import decoder, encode, value_serde
from .driver import AttemptFinishedEvent, ContextDriver, Request

__all__ = ["ContextBase"]

T = TypeVar("T")


class ContextBase(Protocol):
    """What every context has (a protocol with its implementation, like the contexts built on it)."""

    __slots__ = ("__weakref__", "_driver", "_random", "_request")
    _driver: ContextDriver
    _random: _rnd.Random | None
    _request: Request | None

    def __init__(self, driver: ContextDriver) -> None:
        self._driver = driver
        self._random: _rnd.Random | None = None
        self._request = None  # built when first asked for: most handlers never do

    # ------------------------------------------------------------------ invocation metadata

    @property
    def request(self) -> Request:
        """The invocation's id, headers and raw input body."""
        request = self._request
        if request is None:
            driver = self._driver
            invocation = driver.input
            request = self._request = Request(
                invocation.invocation_id,
                dict(invocation.headers),
                invocation.input,
                AttemptFinishedEvent(driver.finished),
                invocation.idempotency_key,
                invocation.scope,
                invocation.limit_key,
            )
        return request

    @property
    def invocation_id(self) -> str:
        return self._driver.input.invocation_id

    @property
    def logger(self) -> ReplayAwareLogger:
        """A logger (the handler module's) whose records are dropped while the handler replays.

        Records carry the ``restate_*`` attributes of :mod:`restate_sync.logs`.
        """
        return context_logger(self._driver)

    def random(self) -> _rnd.Random:
        """A deterministic PRNG seeded by the invocation; the same sequence on every replay."""
        if self._random is None:
            self._random = _rnd.Random(self._driver.input.random_seed)
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
        type: Any = None,
        serde: Serde[T] | None = None,
        retry_policy: RunRetryPolicy | None = None,
        background: bool = False,
    ) -> DurableFuture[T]:
        """Run ``fn(*args)`` once and record its result; on replay return the recorded result.

        The result is encoded with ``serde``, else the serde of ``type``, else of ``fn``'s return
        annotation, else as plain JSON; a result that cannot be encoded fails the step terminally
        (``fn`` is not run again). The block starts lazily, when its result (or a combinator over
        it) is awaited. ``TerminalError`` raised by ``fn`` is recorded as the step's failure; any
        other exception retries the step according to ``retry_policy`` (``RetryableError``'s
        ``retry_after`` sets the delay). With ``background=True`` the block runs in gevent's thread
        pool (for CPU-bound native code).
        """
        future = self._run(name, fn, args, type, serde, retry_policy, background)
        self._driver.track(future, "run", name)
        return future

    def run_sync(
        self,
        name: str,
        fn: Callable[..., T],
        *args: Any,
        type: Any = None,
        serde: Serde[T] | None = None,
        retry_policy: RunRetryPolicy | None = None,
        background: bool = False,
    ) -> T:
        """``run(...)`` and wait for its result."""
        # awaited at once: no need to remember it for the never-awaited warning
        return self._run(name, fn, args, type, serde, retry_policy, background).result()

    def _run(
        self,
        name: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        type: Any,
        serde: Serde[T] | None,
        retry_policy: RunRetryPolicy | None,
        background: bool,
    ) -> HandleFuture[T]:
        driver = self._driver
        vm = driver.usable_vm()
        if serde is None:
            serde = serde_of(type, f"ctx.run({name!r})") if type is not None else return_serde(fn, name)
        elif type is not None:
            raise MisuseError(f"ctx.run({name!r}): pass type= or serde=, not both")
        handle = vm.sys_run(name)
        bound: Callable[[], Any] = (lambda: fn(*args)) if args else fn
        driver.register_run(
            handle,
            bound,
            retry_policy.to_vm() if retry_policy is not None else None,
            background,
            serde.serialize,
        )
        return HandleFuture(driver, handle, decoder(serde, "run", name))

    def sleep(self, duration: Duration, name: str = "") -> DurableFuture[None]:
        """A durable timer; ``.result()`` returns once ``duration`` has passed."""
        future = timer(self._driver, duration, "sleep duration", name)
        self._driver.track(future, "sleep", name or duration)
        return future

    # ------------------------------------------------------------------ awakeables

    @overload
    def awakeable(self) -> tuple[str, DurableFuture[Any]]: ...
    @overload
    def awakeable(self, *, type: builtins.type[T]) -> tuple[str, DurableFuture[T]]: ...
    @overload
    def awakeable(self, serde: Serde[T]) -> tuple[str, DurableFuture[T]]: ...
    @overload
    def awakeable(self, *, type: object) -> tuple[str, DurableFuture[Any]]: ...
    def awakeable(
        self, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> tuple[str, DurableFuture[Any]]:
        """An id an outside system can resolve, and the future of its payload (decoded to ``type``)."""
        vm = self._driver.usable_vm()
        decode = decoder(
            ANY if serde is None and type is None else value_serde(serde, type, "ctx.awakeable()"),
            "the payload of",
            "an awakeable",
        )
        awakeable_id, handle = vm.sys_awakeable()
        return awakeable_id, HandleFuture(self._driver, handle, decode)

    def resolve_awakeable(
        self, awakeable_id: str, payload: Any, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> None:
        what = "ctx.resolve_awakeable(): the payload"
        data = encode(
            ANY if serde is None and type is None else value_serde(serde, type, what), payload, what
        )
        self._driver.usable_vm().sys_complete_awakeable(awakeable_id, data)

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        self._driver.usable_vm().sys_complete_awakeable(awakeable_id, Failure(code, message))

    # ------------------------------------------------------------------ combinators

    def wait_any(
        self, *futures: DurableFuture[Any]
    ) -> tuple[list[DurableFuture[Any]], list[DurableFuture[Any]]]:
        """Wait until at least one future is done; return ``(done, pending)`` in argument order."""
        return wait_any(futures)

    # ------------------------------------------------------------------ signals, invocations

    @overload
    def signal(self, name: str) -> DurableFuture[Any]: ...
    @overload
    def signal(self, name: str, *, type: builtins.type[T]) -> DurableFuture[T]: ...
    @overload
    def signal(self, name: str, serde: Serde[T]) -> DurableFuture[T]: ...
    @overload
    def signal(self, name: str, *, type: object) -> DurableFuture[Any]: ...
    def signal(self, name: str, serde: Serde[Any] | None = None, *, type: Any = None) -> DurableFuture[Any]:
        """The future of the named signal ``name`` sent to this invocation (see ``resolve_signal``)."""
        vm = self._driver.usable_vm()
        decode = decoder(
            ANY if serde is None and type is None else value_serde(serde, type, f"ctx.signal({name!r})"),
            "signal",
            name,
        )
        return HandleFuture(self._driver, vm.sys_signal(name), decode)

    def resolve_signal(
        self,
        invocation_id: str,
        name: str,
        payload: Any,
        serde: Serde[Any] | None = None,
        *,
        type: Any = None,
    ) -> None:
        """Resolve the named signal ``name`` of another invocation with ``payload``."""
        what = f"ctx.resolve_signal({name!r}): the payload"
        data = encode(
            ANY if serde is None and type is None else value_serde(serde, type, what), payload, what
        )
        self._driver.usable_vm().sys_complete_signal(invocation_id, name, data)

    def reject_signal(self, invocation_id: str, name: str, message: str, code: int = 500) -> None:
        """Reject the named signal ``name`` of another invocation with a terminal error."""
        self._driver.usable_vm().sys_complete_signal(invocation_id, name, Failure(code, message))

    @overload
    def attach_invocation(self, invocation_id: str) -> DurableFuture[Any]: ...
    @overload
    def attach_invocation(self, invocation_id: str, *, type: builtins.type[T]) -> DurableFuture[T]: ...
    @overload
    def attach_invocation(self, invocation_id: str, serde: Serde[T]) -> DurableFuture[T]: ...
    @overload
    def attach_invocation(self, invocation_id: str, *, type: object) -> DurableFuture[Any]: ...
    def attach_invocation(
        self, invocation_id: str, serde: Serde[Any] | None = None, *, type: Any = None
    ) -> DurableFuture[Any]:
        """Wait for another invocation to finish and get its result (decoded to ``type``)."""
        vm = self._driver.usable_vm()
        decode = decoder(value_serde(serde, type, "ctx.attach_invocation()"), "the result of", invocation_id)
        return HandleFuture(self._driver, vm.sys_attach_invocation(invocation_id), decode)
