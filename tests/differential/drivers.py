"""One small, common surface over restate_sync's VM and the shared core's ``PyVM``.

A scenario talks to both VMs through :class:`Driver`. Handles are *symbolic*: every operation
that creates a handle stores it under a name the scenario chose, and each driver maps names to
its own native handles (restate_sync uses completion ids / negative signal ids / signal names,
the core opaque integers), so the two never have to agree on handle numbers, only on behaviour.

Every operation returns a normalised outcome (plain tuples, comparable with ``==``):

* results of ``take``: ``("value", bytes)``, ``("void",)``, ``("failure", code, message,
  metadata)``, ``("invocation_id", str)``, ``("state_keys", (str, ...))``, ``("not_ready",)``
* progress: ``("any_completed",)``, ``("waiting",)``, ``("execute_run", name)``,
  ``("cancelled",)``, ``("suspended",)``
* a failed syscall: ``("error", code)`` (the VM wrote an ``ErrorMessage`` or was closed:
  598 = the attempt already ended, 599 = it is suspended)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from restate_sync.errors import InvocationFailedError, SuspendedError
from restate_sync.protocol.vm import VM, VOID, Combinator, CombinatorKind, Failure, Progress, RetryPolicy

from .oracle import load_core

Tree = tuple[Any, ...]  # ("single", name) | ("first", [Tree, ...]) | ("all", [Tree, ...])
Outcome = tuple[Any, ...]

CLOSED = 598
SUSPENDED = 599
CANCEL = "cancel"  # the symbolic name of the built-in cancel signal handle


@dataclass(frozen=True)
class Policy:
    """A run retry policy as both VMs take it (milliseconds; ``None`` = unset)."""

    initial_interval: int | None = None
    max_attempts: int | None = None
    max_duration: int | None = None
    max_interval: int | None = None
    factor: float | None = None


@dataclass(frozen=True)
class Fail:
    """A terminal failure value (a rejected awakeable, a failed output, ...)."""

    code: int
    message: str
    metadata: tuple[tuple[str, str], ...] = ()


class VMError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Driver:
    """Base: symbolic handle bookkeeping shared by both drivers."""

    version: int
    handles: dict[str, Any] = field(default_factory=dict)

    name = "?"

    def native(self, name: str) -> Any:
        return self.handles[name]

    def symbolic(self, native: Any) -> str:
        for key, value in self.handles.items():
            if value == native:
                return key
        return f"<unknown handle {native!r}>"

    # each driver implements: feed, close, output, ready, input, op(kind, args) ...


# ---------------------------------------------------------------------- restate_sync


class OursDriver(Driver):
    name = "restate_sync"

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.vm = VM(version)
        self.handles[CANCEL] = -1

    def feed(self, data: bytes) -> None:
        self.vm.notify_input(data)

    def close(self) -> None:
        self.vm.notify_input_closed()

    def output(self) -> bytes:
        return self.vm.take_output()

    def ready(self) -> Outcome:
        try:
            return ("ready", self.vm.is_ready_to_execute())
        except InvocationFailedError as exc:
            return ("error", exc.error.code)

    def call(self, op: str, *args: Any) -> Outcome:
        try:
            return getattr(self, "op_" + op)(*args)
        except InvocationFailedError as exc:
            return ("error", exc.error.code)
        except SuspendedError:
            return ("error", SUSPENDED)
        except RuntimeError as exc:
            if "already ended" in str(exc):
                return ("error", CLOSED)
            raise
        except KeyError as exc:
            return ("no_handle", exc.args[0])

    # ops -------------------------------------------------------------
    def op_input(self) -> Outcome:
        inp = self.vm.sys_input()
        return (
            "input",
            inp.invocation_id,
            inp.key,
            tuple(inp.headers),
            inp.input,
            inp.random_seed,
            getattr(inp, "scope", None),
            getattr(inp, "limit_key", None),
            getattr(inp, "idempotency_key", None),
        )

    def _keep(self, name: str, handle: Any) -> Outcome:
        self.handles[name] = handle
        return ("handle", name)

    def op_get_state(self, name: str, key: str) -> Outcome:
        return self._keep(name, self.vm.sys_get_state(key))

    def op_get_state_keys(self, name: str) -> Outcome:
        return self._keep(name, self.vm.sys_get_state_keys())

    def op_set_state(self, key: str, value: bytes) -> Outcome:
        self.vm.sys_set_state(key, value)
        return ("ok",)

    def op_clear_state(self, key: str) -> Outcome:
        self.vm.sys_clear_state(key)
        return ("ok",)

    def op_clear_all_state(self) -> Outcome:
        self.vm.sys_clear_all_state()
        return ("ok",)

    def op_sleep(self, name: str, millis: int, entry_name: str = "") -> Outcome:
        import time

        return self._keep(name, self.vm.sys_sleep(int(time.time() * 1000) + millis, entry_name))

    def op_call(
        self,
        name: str,
        service: str,
        handler: str,
        parameter: bytes,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> Outcome:
        extra = {} if scope is None and limit_key is None else {"scope": scope, "limit_key": limit_key}
        inv, result = self.vm.sys_call(
            service,
            handler,
            parameter,
            key=key or "",
            idempotency_key=idempotency_key,
            headers=headers,
            **extra,
        )
        self.handles[name + ".id"] = inv
        self.handles[name] = result
        return ("handle", name)

    def op_send(
        self,
        name: str,
        service: str,
        handler: str,
        parameter: bytes,
        key: str | None = None,
        delay: int | None = None,
        idempotency_key: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> Outcome:
        import time

        invoke_time = int(time.time() * 1000) + delay if delay else 0
        extra = {} if scope is None and limit_key is None else {"scope": scope, "limit_key": limit_key}
        handle = self.vm.sys_send(
            service,
            handler,
            parameter,
            key=key or "",
            idempotency_key=idempotency_key,
            headers=headers,
            invoke_time_ms=invoke_time,
            **extra,
        )
        return self._keep(name, handle)

    def op_awakeable(self, name: str) -> Outcome:
        awakeable_id, handle = self.vm.sys_awakeable()
        self.handles[name] = handle
        return ("awakeable", name, awakeable_id)

    def op_complete_awakeable(self, awakeable_id: str, result: bytes | Fail) -> Outcome:
        self.vm.sys_complete_awakeable(awakeable_id, _ours_result(result))
        return ("ok",)

    def op_signal(self, name: str, signal_name: str) -> Outcome:
        return self._keep(name, self.vm.sys_signal(signal_name))

    def op_complete_signal(self, target: str, signal_name: str, result: bytes | Fail) -> Outcome:
        self.vm.sys_complete_signal(target, signal_name, _ours_result(result))
        return ("ok",)

    def op_get_promise(self, name: str, key: str) -> Outcome:
        return self._keep(name, self.vm.sys_get_promise(key))

    def op_peek_promise(self, name: str, key: str) -> Outcome:
        return self._keep(name, self.vm.sys_peek_promise(key))

    def op_complete_promise(self, name: str, key: str, result: bytes | Fail) -> Outcome:
        return self._keep(name, self.vm.sys_complete_promise(key, _ours_result(result)))

    def op_run(self, name: str, run_name: str) -> Outcome:
        return self._keep(name, self.vm.sys_run(run_name))

    def op_propose(self, name: str, result: bytes | Fail) -> Outcome:
        self.vm.propose_run_completion(self.handles[name], _ours_result(result))
        return ("ok",)

    def op_propose_transient(
        self, name: str, code: int, message: str, stacktrace: str, duration: int, policy: Policy
    ) -> Outcome:
        vm_policy = RetryPolicy(
            initial_interval_ms=policy.initial_interval,
            exponentiation_factor=policy.factor,
            max_interval_ms=policy.max_interval,
            max_attempts=policy.max_attempts,
            max_duration_ms=policy.max_duration,
        )
        self.vm.propose_run_retryable_failure(
            self.handles[name],
            message,
            stacktrace=stacktrace,
            code=code,
            policy=vm_policy,
            attempt_duration_ms=duration,
        )
        return ("ok",)

    def op_cancel(self, target: str) -> Outcome:
        self.vm.sys_cancel_invocation(target)
        return ("ok",)

    def op_attach(self, name: str, invocation_id: str) -> Outcome:
        return self._keep(name, self.vm.sys_attach_invocation(invocation_id))

    def op_output(self, result: bytes | Fail) -> Outcome:
        self.vm.sys_write_output(_ours_result(result))
        return ("ok",)

    def op_end(self) -> Outcome:
        self.vm.sys_end()
        return ("ok",)

    def op_notify_error(self, message: str, stacktrace: str, delay: int | None = None) -> Outcome:
        self.vm.notify_error(message, stacktrace=stacktrace, next_retry_delay_ms=delay)
        return ("ok",)

    def op_is_completed(self, name: str) -> Outcome:
        return ("completed", self.vm.is_completed(self.handles[name]))

    def op_take(self, name: str) -> Outcome:
        handle = self.handles[name]
        if not self.vm.is_completed(handle):
            return ("not_ready",)
        return _normalise_ours(self.vm.take(handle))

    def op_await(self, tree: Tree) -> Outcome:
        try:
            progress = self.vm.do_progress(self._tree(tree))
        except SuspendedError:
            return ("suspended",)
        if progress is Progress.ANY_COMPLETED:
            return ("any_completed",)
        if progress is Progress.WAITING:
            return ("waiting",)
        if progress is Progress.CANCELLED:
            return ("cancelled",)
        assert progress is Progress.EXECUTE_RUN
        return ("execute_run", self.symbolic(self.vm.run_to_execute))

    def _tree(self, tree: Tree) -> Any:
        kind = tree[0]
        if kind == "single":
            return self.handles[tree[1]]
        children = tuple(self._tree(child) for child in tree[1])
        if kind == "first":
            return Combinator(CombinatorKind.FIRST_COMPLETED, children)
        return Combinator(CombinatorKind.ALL_COMPLETED, children)


def _ours_result(result: bytes | Fail) -> bytes | Failure:
    if isinstance(result, Fail):
        return Failure(result.code, result.message, result.metadata)
    return result


def _normalise_ours(raw: Any) -> Outcome:
    if raw is VOID:
        return ("void",)
    if isinstance(raw, Failure):
        return ("failure", raw.code, raw.message, tuple(raw.metadata))
    if isinstance(raw, bytes):
        return ("value", raw)
    if isinstance(raw, str):
        return ("invocation_id", raw)
    if isinstance(raw, list):
        return ("state_keys", tuple(raw))
    raise AssertionError(f"unexpected result {raw!r}")


# ---------------------------------------------------------------------- the shared core

_CODE = re.compile(r"^\((\d+)\)")


class CoreDriver(Driver):
    name = "shared core"

    def __init__(self, version: int) -> None:
        super().__init__(version)
        core, reason = load_core()
        assert core is not None, reason
        self.core = core
        self.vm = core.PyVM([("content-type", f"application/vnd.restate.invocation.v{version}")])
        self.handles[CANCEL] = core.CANCEL_NOTIFICATION_HANDLE

    def feed(self, data: bytes) -> None:
        self.vm.notify_input(data)

    def close(self) -> None:
        self.vm.notify_input_closed()

    def output(self) -> bytes:
        return bytes(self.vm.take_output())

    def ready(self) -> Outcome:
        try:
            return ("ready", bool(self.vm.is_ready_to_execute()))
        except self.core.VMException as exc:
            return ("error", _code_of(exc))

    def call(self, op: str, *args: Any) -> Outcome:
        try:
            return getattr(self, "op_" + op)(*args)
        except self.core.VMException as exc:
            return ("error", _code_of(exc))
        except VMError as exc:
            return ("error", exc.code)
        except KeyError as exc:
            return ("no_handle", exc.args[0])

    def _keep(self, name: str, handle: Any) -> Outcome:
        self.handles[name] = handle
        return ("handle", name)

    def _failure(self, fail: Fail, stacktrace: str | None = None) -> Any:
        return self.core.PyFailure(
            fail.code, fail.message, stacktrace, list(fail.metadata) if fail.metadata else None
        )

    # ops -------------------------------------------------------------
    def op_input(self) -> Outcome:
        inp = self.vm.sys_input()
        return (
            "input",
            inp.invocation_id,
            inp.key,
            tuple((h.key, h.value) for h in inp.headers),
            bytes(inp.input),
            inp.random_seed,
            inp.scope,
            inp.limit_key,
            inp.idempotency_key,
        )

    def op_get_state(self, name: str, key: str) -> Outcome:
        return self._keep(name, self.vm.sys_get_state(key))

    def op_get_state_keys(self, name: str) -> Outcome:
        return self._keep(name, self.vm.sys_get_state_keys())

    def op_set_state(self, key: str, value: bytes) -> Outcome:
        self.vm.sys_set_state(key, value)
        return ("ok",)

    def op_clear_state(self, key: str) -> Outcome:
        self.vm.sys_clear_state(key)
        return ("ok",)

    def op_clear_all_state(self) -> Outcome:
        self.vm.sys_clear_all_state()
        return ("ok",)

    def op_sleep(self, name: str, millis: int, entry_name: str = "") -> Outcome:
        return self._keep(name, self.vm.sys_sleep(millis, entry_name or None))

    def op_call(
        self,
        name: str,
        service: str,
        handler: str,
        parameter: bytes,
        key: str | None = None,
        idempotency_key: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> Outcome:
        py_headers = [self.core.PyHeader(k, v) for k, v in headers] or None
        handle = self.vm.sys_call(
            service, handler, parameter, key, idempotency_key, py_headers, scope, limit_key
        )
        self.handles[name + ".id"] = handle.invocation_id_handle
        self.handles[name] = handle.result_handle
        return ("handle", name)

    def op_send(
        self,
        name: str,
        service: str,
        handler: str,
        parameter: bytes,
        key: str | None = None,
        delay: int | None = None,
        idempotency_key: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> Outcome:
        py_headers = [self.core.PyHeader(k, v) for k, v in headers] or None
        handle = self.vm.sys_send(
            service, handler, parameter, key, delay or None, idempotency_key, py_headers, scope, limit_key
        )
        return self._keep(name, handle)

    def op_awakeable(self, name: str) -> Outcome:
        awakeable_id, handle = self.vm.sys_awakeable()
        self.handles[name] = handle
        return ("awakeable", name, awakeable_id)

    def op_complete_awakeable(self, awakeable_id: str, result: bytes | Fail) -> Outcome:
        if isinstance(result, Fail):
            self.vm.sys_complete_awakeable_failure(awakeable_id, self._failure(result))
        else:
            self.vm.sys_complete_awakeable_success(awakeable_id, result)
        return ("ok",)

    def op_signal(self, name: str, signal_name: str) -> Outcome:
        return self._keep(name, self.vm.sys_signal(signal_name))

    def op_complete_signal(self, target: str, signal_name: str, result: bytes | Fail) -> Outcome:
        if isinstance(result, Fail):
            self.vm.sys_complete_signal_failure(target, signal_name, self._failure(result))
        else:
            self.vm.sys_complete_signal_success(target, signal_name, result)
        return ("ok",)

    def op_get_promise(self, name: str, key: str) -> Outcome:
        return self._keep(name, self.vm.sys_get_promise(key))

    def op_peek_promise(self, name: str, key: str) -> Outcome:
        return self._keep(name, self.vm.sys_peek_promise(key))

    def op_complete_promise(self, name: str, key: str, result: bytes | Fail) -> Outcome:
        if isinstance(result, Fail):
            return self._keep(name, self.vm.sys_complete_promise_failure(key, self._failure(result)))
        return self._keep(name, self.vm.sys_complete_promise_success(key, result))

    def op_run(self, name: str, run_name: str) -> Outcome:
        return self._keep(name, self.vm.sys_run(run_name).handle)

    def op_propose(self, name: str, result: bytes | Fail) -> Outcome:
        if isinstance(result, Fail):
            self.vm.propose_run_completion_failure(self.handles[name], self._failure(result))
        else:
            self.vm.propose_run_completion_success(self.handles[name], result)
        return ("ok",)

    def op_propose_transient(
        self, name: str, code: int, message: str, stacktrace: str, duration: int, policy: Policy
    ) -> Outcome:
        config = self.core.PyExponentialRetryConfig(
            policy.initial_interval,
            policy.max_attempts,
            policy.max_duration,
            policy.max_interval,
            policy.factor,
        )
        self.vm.propose_run_completion_failure_transient(
            self.handles[name], self._failure(Fail(code, message), stacktrace), duration, config
        )
        return ("ok",)

    def op_cancel(self, target: str) -> Outcome:
        self.vm.sys_cancel(target)
        return ("ok",)

    def op_attach(self, name: str, invocation_id: str) -> Outcome:
        return self._keep(name, self.vm.attach_invocation(invocation_id))

    def op_output(self, result: bytes | Fail) -> Outcome:
        if isinstance(result, Fail):
            self.vm.sys_write_output_failure(self._failure(result))
        else:
            self.vm.sys_write_output_success(result)
        return ("ok",)

    def op_end(self) -> Outcome:
        self.vm.sys_end()
        return ("ok",)

    def op_notify_error(self, message: str, stacktrace: str, delay: int | None = None) -> Outcome:
        self.vm.notify_error(message, stacktrace, delay)
        return ("ok",)

    def op_is_completed(self, name: str) -> Outcome:
        return ("completed", bool(self.vm.is_completed(self.handles[name])))

    def op_take(self, name: str) -> Outcome:
        core = self.core
        raw = self.vm.take_notification(self.handles[name])
        if isinstance(raw, core.PySuspended):
            raise VMError(SUSPENDED)
        if raw is None:
            return ("not_ready",)
        if isinstance(raw, core.PyVoid):
            return ("void",)
        if isinstance(raw, bytes):
            return ("value", raw)
        if isinstance(raw, str):
            return ("invocation_id", raw)
        if isinstance(raw, core.PyStateKeys):
            return ("state_keys", tuple(raw.keys))
        if isinstance(raw, core.PyFailure):
            return ("failure", raw.code, raw.message, tuple(raw.metadata or ()))
        raise AssertionError(f"unexpected core result {raw!r}")

    def op_await(self, tree: Tree) -> Outcome:
        core = self.core
        result = self.vm.do_progress(self._tree(tree))
        if isinstance(result, core.PySuspended):
            return ("suspended",)
        if isinstance(result, core.PyDoProgressAnyCompleted):
            return ("any_completed",)
        if isinstance(result, core.PyDoProgressWaitExternalProgress):
            return ("waiting",)
        if isinstance(result, core.PyDoProgressCancelSignalReceived):
            return ("cancelled",)
        if isinstance(result, core.PyDoProgressExecuteRun):
            return ("execute_run", self.symbolic(result.handle))
        raise AssertionError(f"unexpected progress {result!r}")

    def _tree(self, tree: Tree) -> Any:
        future = self.core.PyUnresolvedFuture
        kind = tree[0]
        if kind == "single":
            return future.single(self.handles[tree[1]])
        children = [self._tree(child) for child in tree[1]]
        return future.first_completed(children) if kind == "first" else future.all_completed(children)


def _code_of(exc: BaseException) -> int:
    match = _CODE.match(str(exc))
    return int(match.group(1)) if match else -1
