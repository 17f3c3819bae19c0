"""The invocation driver: runs one attempt of a handler on its own greenlet.

Everything that happens to an attempt arrives on one :class:`Inbox` — request body bytes from
the connection, end of input, disconnection, results of ``run`` blocks — and is consumed only
by the handler greenlet, which is the only code that touches the :class:`~..protocol.vm.VM`.
Before the greenlet blocks, it flushes whatever the VM wrote.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent import GreenletExit
from gevent.event import Event
from gevent.threadpool import ThreadPool
from greenlet import getcurrent

from ._current import attempt as _current_attempt
from ._current import current as _current_context
from .errors import (
    ContextUsageError,
    DisconnectedError,
    InvocationFailedError,
    RetryableError,
    SuspendedError,
    TerminalError,
)
from .exchange import DISCONNECTED, EOF, Inbox
from .protocol.vm import VM, Failure, FutureTree, InvocationInput, Progress, RetryPolicy

if TYPE_CHECKING:
    from .service import HandlerDefinition, ServiceDefinition

__all__ = ["Attempt", "ResponseSink", "RunOutcome"]

logger = logging.getLogger("restate_sync.invocation")


class RunOutcome:
    """Inbox item: a ``run`` block finished (``error`` set when it raised)."""

    __slots__ = ("duration_ms", "error", "handle", "value")

    def __init__(self, handle: int, value: Any, error: BaseException | None, duration_ms: int) -> None:
        self.handle = handle
        self.value = value
        self.error = error
        self.duration_ms = duration_ms


class ResponseSink(Protocol):
    """Where an attempt writes its response body (an HTTP/2 stream or HTTP/1.1 response)."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


# Ceiling on how long a finished attempt waits for the runtime to close the request half.
END_OF_INPUT_GRACE = 5.0


class Attempt:
    """One attempt of one invocation: feeds the VM, runs the handler, writes the response."""

    def __init__(
        self,
        service: ServiceDefinition,
        handler: HandlerDefinition,
        vm: VM,
        inbox: Inbox,
        sink: ResponseSink,
        *,
        context_factory: Callable[[Attempt], Any],
    ) -> None:
        self.service = service
        self.handler = handler
        self.vm = vm
        self.inbox = inbox
        self.sink = sink
        self.greenlet: Any = None
        self._context_factory = context_factory
        self._disconnected = False
        self.in_run = False
        self.finished = Event()
        self._runs: dict[int, Any] = {}
        self._run_specs: dict[
            int, tuple[Callable[[], Any], RetryPolicy | None, bool, Callable[[Any], bytes]]
        ] = {}
        self.invocation_id = ""
        self.input: Any = None
        self._returned = False  # the handler returned: its context may no longer be used
        # futures that do nothing unless awaited (runs, sleeps): (future, kind, name or duration)
        self._tracked: list[tuple[Any, str, Any]] = []

    # ------------------------------------------------------------------ input

    def _handle_item(self, item: Any) -> None:
        vm = self.vm
        if isinstance(item, (bytes, bytearray, memoryview)):
            vm.notify_input(bytes(item))
        elif item is EOF:
            vm.notify_input_closed()
        elif item is DISCONNECTED:
            self._disconnected = True
            self.finished.set()
            raise DisconnectedError()
        elif isinstance(item, RunOutcome):
            self._runs.pop(item.handle, None)
            self._propose(item)
        else:  # pragma: no cover - programming error
            raise AssertionError(f"unexpected inbox item {item!r}")

    def _pump(self) -> None:
        """Block for one inbox item, then take whatever else is already queued."""
        self._handle_item(self.inbox.get())
        while True:
            item = self.inbox.get_nowait()
            if item is None:
                return
            self._handle_item(item)

    def flush(self) -> None:
        data = self.vm.take_output()
        if data and not self._disconnected:
            self.sink.write(data)

    # ------------------------------------------------------------------ what contexts and futures use

    def usable_vm(self) -> VM:
        """The VM, if the caller is this attempt's handler (not a run block, not after it returned)."""
        if getcurrent() is not self.greenlet or self.in_run:
            raise ContextUsageError(
                "Restate context used outside its handler greenlet (for example inside a run block, "
                "or from a greenlet/thread the handler spawned); side effects must not call the context"
            )
        if self._returned:
            raise ContextUsageError("this Restate context belongs to an invocation that has already returned")
        return self.vm

    def track(self, future: Any, kind: str, detail: Any) -> None:
        """Remember a run or sleep future, to warn if the handler returns without awaiting it."""
        self._tracked.append((future, kind, detail))

    def _warn_unawaited(self) -> None:
        """One warning naming the runs/sleeps the handler created but never awaited."""
        vm = self.vm
        missed: list[str] = []
        for future, kind, detail in self._tracked:
            if kind == "run":
                # a run executes only when awaited; one replayed from the journal did run before
                if not future._awaited and not future._settled and not vm.is_completed(future._handle):
                    missed.append(f"run {detail!r} (never ran)")
            elif not future._awaited:
                missed.append(f"sleep {detail!r}" if isinstance(detail, str) else f"sleep({detail!r})")
        if missed:
            logger.warning(
                "invocation %s: %s/%s returned without awaiting %d durable future(s) it created: %s; "
                "a run block only executes when its future is awaited (.result(), run_sync or a "
                "combinator), and a sleep only waits when awaited",
                self.invocation_id,
                self.service.name,
                self.handler.name,
                len(missed),
                ", ".join(missed),
            )

    # ------------------------------------------------------------------ awaiting

    def block_on(self, future: FutureTree) -> Progress:
        """Park the handler greenlet until ``future`` can make progress (or is cancelled)."""
        vm = self.vm
        while True:
            progress = vm.do_progress(future)
            if progress is Progress.ANY_COMPLETED or progress is Progress.CANCELLED:
                return progress
            if progress is Progress.EXECUTE_RUN:
                handle = vm.run_to_execute
                assert handle is not None
                if future == handle and not self._run_specs[handle][2]:
                    # awaiting exactly this run (run_sync): nothing else can happen meanwhile,
                    # so run it right here instead of on a child greenlet
                    self._propose(self._execute_inline(handle))
                else:
                    self._start_run(handle)
                continue
            self.flush()
            self._pump()

    # ------------------------------------------------------------------ runs

    def register_run(
        self,
        handle: int,
        fn: Callable[[], Any],
        retry_policy: RetryPolicy | None,
        background: bool,
        serialize: Callable[[Any], bytes],
    ) -> None:
        """Remember how to execute a run the VM may ask for later."""
        self._run_specs[handle] = (fn, retry_policy, background, serialize)

    def _execute_inline(self, handle: int) -> RunOutcome:
        fn, _policy, _background, serialize = self._run_specs[handle]
        token = _current_context.set(None)  # the block must not see the handler's context
        self.in_run = True
        self.inbox.on_disconnect = self._interrupt_inline_run
        started = _now_ms()
        try:
            value = fn()
        except Exception as exc:
            return RunOutcome(handle, None, exc, _now_ms() - started)
        except GreenletExit:
            if self._disconnected:  # interrupted by _interrupt_inline_run
                raise DisconnectedError() from None
            raise
        finally:
            self.in_run = False
            self.inbox.on_disconnect = None
            _current_context.reset(token)
        return self._encoded(handle, value, serialize, started)

    def _encoded(
        self, handle: int, value: Any, serialize: Callable[[Any], bytes], started: int
    ) -> RunOutcome:
        """The outcome of a run that returned ``value``: its encoding, or a terminal failure of the
        step when it cannot be encoded (retrying would run the side effect again for nothing)."""
        try:
            payload = serialize(value)
        except Exception as exc:
            error = TerminalError(
                f"run {self.vm.run_name(handle)!r} returned a value of type {type(value).__qualname__} "
                f"that cannot be encoded: {exc}; declare the function's return type or pass type= "
                "(or serde=) to ctx.run"
            )
            return RunOutcome(handle, None, error, _now_ms() - started)
        return RunOutcome(handle, payload, None, _now_ms() - started)

    def _interrupt_inline_run(self) -> None:
        """The runtime went away while a run block executes inline: abandon the block.

        The block sees ``GreenletExit``, as a run on its own greenlet does when it is killed.
        """
        if self.in_run and not self.greenlet.dead:
            self._disconnected = True
            self.greenlet.throw(GreenletExit())

    def _start_run(self, handle: int) -> None:
        fn, _policy, background, serialize = self._run_specs[handle]
        inbox = self.inbox

        def execute() -> None:
            started = _now_ms()
            try:
                if background:
                    value = background_pool().apply(fn)
                else:
                    value = fn()
            except Exception as exc:
                inbox.put(RunOutcome(handle, None, exc, _now_ms() - started))
            else:
                inbox.put(self._encoded(handle, value, serialize, started))

        self._runs[handle] = gevent.spawn(execute)

    def _propose(self, outcome: RunOutcome) -> None:
        vm = self.vm
        error = outcome.error
        if error is None:
            vm.propose_run_completion(outcome.handle, outcome.value)
            return
        terminal = _terminal_cause(error)
        if terminal is not None:
            vm.propose_run_completion(
                outcome.handle,
                Failure(terminal.status_code, terminal.message, tuple(terminal.metadata.items())),
            )
            return
        policy = self._run_specs[outcome.handle][1]
        logger.warning(
            "invocation %s: run %r failed: %r", self.invocation_id, vm.run_name(outcome.handle), error
        )
        vm.propose_run_retryable_failure(
            outcome.handle,
            _describe(error),
            stacktrace=_stacktrace(error),
            policy=policy,
            attempt_duration_ms=outcome.duration_ms,
            next_retry_delay_ms=error.retry_after_ms if isinstance(error, RetryableError) else None,
        )

    # ------------------------------------------------------------------ the attempt

    def run(self) -> None:
        """Drive the whole attempt. Runs on the handler greenlet."""
        self.greenlet = getcurrent()
        vm = self.vm
        attempt_token = _current_attempt.set(self)
        try:
            while not vm.is_ready and not vm.is_closed:
                self._pump()
            if vm.is_closed:
                if vm.failure is not None:
                    logger.error("invocation attempt failed before start: %s", vm.failure)
                return
            self._invoke_handler()
        except DisconnectedError:
            logger.info("invocation %s: the runtime disconnected", self.invocation_id or "?")
        finally:
            self._kill_runs()
            self._finish()
            self.finished.set()
            # futures and run closures refer back to this attempt: drop them so the attempt is
            # freed by reference counting, not left to the cycle collector
            self._tracked.clear()
            self._run_specs.clear()
            _current_attempt.reset(attempt_token)

    def _invoke_handler(self) -> None:
        vm = self.vm
        handler = self.handler
        try:
            invocation = vm.sys_input()
            self.invocation_id = invocation.invocation_id
            self.input = invocation
            ctx = self._context_factory(self)
            token = _current_context.set(ctx)
            try:
                result = self.call_handler(ctx, invocation)
                if self._tracked:
                    self._warn_unawaited()
                try:
                    payload = handler.output_serde.serialize(result)
                except Exception as exc:
                    raise TerminalError(
                        f"cannot encode the output of {self.service.name}/{handler.name}: {exc}"
                    ) from exc
            finally:
                self._returned = True
                _current_context.reset(token)
            vm.sys_write_output(payload)
            vm.sys_end()
        except SuspendedError:
            logger.debug("invocation %s suspended", self.invocation_id)
        except InvocationFailedError as exc:
            logger.error("invocation %s failed: %s", self.invocation_id, exc.error)
        except DisconnectedError:
            raise
        except Exception as exc:
            terminal = _terminal_cause(exc)
            if terminal is not None:
                self._end_with_terminal_error(terminal)
                return
            logger.warning(
                "invocation %s: %s/%s raised %r; Restate will retry it",
                self.invocation_id,
                self.service.name,
                handler.name,
                exc,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            vm.notify_error(
                _describe(exc),
                stacktrace=_stacktrace(exc),
                next_retry_delay_ms=exc.retry_after_ms if isinstance(exc, RetryableError) else None,
            )

    def call_handler(self, ctx: Any, invocation: InvocationInput) -> Any:
        """Decode the input and call the handler; what inbound middleware wraps (``middleware.py``)."""
        handler = self.handler
        if handler.empty_input and not _is_empty_input(invocation.input):
            raise TerminalError(
                f"{self.service.name}/{handler.name} takes no input; send an empty body or JSON null",
                status_code=400,
            )
        if handler.takes_input:
            try:
                argument = handler.input_serde.deserialize(invocation.input)
            except Exception as exc:
                raise TerminalError(
                    f"cannot decode the input of {self.service.name}/{handler.name}: {exc}",
                    status_code=400,
                ) from exc
            return handler.fn(ctx, argument)
        return handler.fn(ctx)

    def _end_with_terminal_error(self, error: TerminalError) -> None:
        try:
            self.vm.sys_write_output(Failure(error.status_code, error.message, tuple(error.metadata.items())))
            self.vm.sys_end()
        except (SuspendedError, InvocationFailedError):
            pass

    def _kill_runs(self) -> None:
        runs = [g for g in self._runs.values() if not g.dead]
        self._runs.clear()
        if runs:
            gevent.killall(runs, block=False)

    def _finish(self) -> None:
        """Flush the terminal message, wait (bounded) for the request half to end, end the response."""
        if self._disconnected:
            return
        self.flush()
        if not self.vm.input_closed:
            deadline = time.monotonic() + END_OF_INPUT_GRACE
            while True:
                remaining = deadline - time.monotonic()
                item = self.inbox.get(timeout=remaining) if remaining > 0 else None
                if item is None or item is EOF:
                    break
                if item is DISCONNECTED:
                    self._disconnected = True
                    return
        self.sink.close()


_background_pool: ThreadPool | None = None


def background_pool() -> ThreadPool:
    """The thread pool for ``run(..., background=True)`` (``RESTATE_BACKGROUND_POOL_SIZE``, default 8)."""
    global _background_pool
    if _background_pool is None:
        size = int(os.environ.get("RESTATE_BACKGROUND_POOL_SIZE", "8"))
        if size < 1:
            raise ValueError(f"RESTATE_BACKGROUND_POOL_SIZE must be at least 1, got {size}")
        _background_pool = ThreadPool(size)
    return _background_pool


def _is_empty_input(body: bytes) -> bool:
    """Whether a request body means "no input": empty, or JSON ``null``."""
    return not body or body.strip() == b"null"


def _terminal_cause(error: BaseException) -> TerminalError | None:
    """A TerminalError, or one that user code wrapped (``raise X from terminal``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, TerminalError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _stacktrace(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def _now_ms() -> int:
    return int(time.monotonic() * 1000)
