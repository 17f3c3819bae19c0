"""Handler programs, a small simulated runtime, and journals built from what a VM wrote.

A *program* is what a handler does, as a list of operations (``("run", "r1", outcome)``,
``("await", tree)``, ``("take", "r1")``, ...). :func:`execute` runs a program on one VM (the
shared core: it leads) the way an SDK would — executing runs when the VM asks, waiting for input
when it says so — while :class:`Runtime` plays restate-server: it reads the commands the VM
wrote and answers them with notifications (in an order the caller may choose), acknowledges run
proposals, and keeps the journal it would store. Every step taken is recorded, so the same steps
can then be replayed on both VMs and compared (:func:`.runner.compare`), and the journal can be
replayed at any length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import REQUESTED_ACK, encode_frame
from restate_sync.protocol.messages import pb

from .drivers import CoreDriver, Driver, Fail, Policy
from .runner import Step, decode_frames

RAW_ID = bytes(range(24))
Op = tuple[Any, ...]


def frame(message: Any) -> bytes:
    return encode_frame(m.MESSAGE_TYPES[type(message)], message.SerializeToString())


def frames(*messages: Any) -> bytes:
    return b"".join(frame(x) for x in messages)


def start_message(known_entries: int, *, state: dict[str, bytes] | None = None, partial: bool = True,
                  retry_count: int = 0, duration_ms: int = 0, key: str = "",
                  scope: str | None = None, limit_key: str | None = None,
                  idempotency_key: str | None = None) -> Any:  # fmt: skip
    message = pb.StartMessage(
        id=RAW_ID,
        debug_id="inv_1differential",
        known_entries=known_entries,
        partial_state=partial,
        key=key,
        retry_count_since_last_stored_entry=retry_count,
        duration_since_last_stored_entry=duration_ms,
        random_seed=7,
    )
    for k, v in (state or {}).items():
        message.state_map.add(key=k.encode(), value=v)
    if scope is not None:
        message.scope = scope
    if limit_key is not None:
        message.limit_key = limit_key
    if idempotency_key is not None:
        message.idempotency_key = idempotency_key
    return message


def input_message(data: bytes = b'"input"', headers: Sequence[tuple[str, str]] = ()) -> Any:
    message = pb.InputCommandMessage()
    message.value.content = data
    for k, v in headers:
        message.headers.add(key=k, value=v)
    return message


def notification(cls: Any, cid: int, result: Any) -> Any:
    """``result``: bytes (value), None (void), Fail, ("id", str), ("keys", [bytes])."""
    message = cls(completion_id=cid)
    _set_result(message, result)
    return message


def signal(idx: int | None = None, name: str | None = None, result: Any = None) -> Any:
    message = pb.SignalNotificationMessage()
    if idx is not None:
        message.idx = idx
    else:
        message.name = name or ""
    _set_result(message, result)
    return message


def _set_result(message: Any, result: Any) -> None:
    if isinstance(result, bytes):
        message.value.content = result
    elif result is None:
        message.void.SetInParent()
    elif isinstance(result, Fail):
        message.failure.code = result.code
        message.failure.message = result.message
    elif result[0] == "id":
        message.invocation_id = result[1]
    else:
        message.state_keys.keys.extend(result[1])


# ---------------------------------------------------------------------- the simulated runtime


@dataclass
class Runtime:
    """Plays restate-server for one attempt: answers commands, acks runs, keeps the journal."""

    version: int
    answers: Callable[[Any, int], list[Any]] | None = None  # override: (command, type) -> notifications
    journal: list[Any] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)  # notifications ready to be delivered
    withheld: set[int] = field(default_factory=set)  # completion ids never answered
    lazy_state: dict[bytes, bytes] = field(default_factory=dict)
    calls: int = 0

    def observe(self, written: bytes) -> None:
        for message_type, flags, payload in decode_frames(written):
            cls = m.MESSAGE_CLASSES[message_type]
            message = cls.FromString(payload)
            if m.is_command(message_type):
                self.journal.append(message)
                self.pending.extend(self._answer(message, message_type))
            elif message_type == m.PROPOSE_RUN_COMPLETION:
                kind = message.WhichOneof("result")
                completion = pb.RunCompletionNotificationMessage(completion_id=message.result_completion_id)
                if kind == "value":
                    completion.value.content = message.value
                else:
                    completion.failure.CopyFrom(message.failure)
                if flags & REQUESTED_ACK:
                    ack = pb.ProposeRunCompletionAckMessage(completion_id=message.result_completion_id)
                    self.pending.append(("ack", ack, completion))
                else:
                    self.pending.append(completion)

    def _answer(self, command: Any, message_type: int) -> list[Any]:
        if self.answers is not None:
            return self.answers(command, message_type)
        out: list[Any] = []
        cid = getattr(command, "result_completion_id", 0)
        if message_type == m.CALL:
            self.calls += 1
            out.append(
                notification(
                    pb.CallInvocationIdCompletionNotificationMessage,
                    command.invocation_id_notification_idx,
                    ("id", f"inv_1child{self.calls}"),
                )
            )
            out.append(
                notification(
                    pb.CallCompletionNotificationMessage, cid, b'"result-' + command.parameter + b'"'
                )
            )
        elif message_type == m.ONE_WAY_CALL:
            self.calls += 1
            out.append(
                notification(
                    pb.CallInvocationIdCompletionNotificationMessage,
                    command.invocation_id_notification_idx,
                    ("id", f"inv_1child{self.calls}"),
                )
            )
        elif message_type == m.SLEEP:
            out.append(notification(pb.SleepCompletionNotificationMessage, cid, None))
        elif message_type == m.GET_LAZY_STATE:
            out.append(
                notification(
                    pb.GetLazyStateCompletionNotificationMessage, cid, self.lazy_state.get(command.key)
                )
            )
        elif message_type == m.GET_LAZY_STATE_KEYS:
            out.append(
                notification(
                    pb.GetLazyStateKeysCompletionNotificationMessage, cid, ("keys", sorted(self.lazy_state))
                )
            )
        elif message_type == m.GET_PROMISE:
            out.append(notification(pb.GetPromiseCompletionNotificationMessage, cid, b'"promised"'))
        elif message_type == m.PEEK_PROMISE:
            out.append(notification(pb.PeekPromiseCompletionNotificationMessage, cid, None))
        elif message_type == m.COMPLETE_PROMISE:
            out.append(notification(pb.CompletePromiseCompletionNotificationMessage, cid, None))
        elif message_type == m.ATTACH_INVOCATION:
            out.append(notification(pb.AttachInvocationCompletionNotificationMessage, cid, b'"attached"'))
        return [n for n in out if getattr(n, "completion_id", 0) not in self.withheld]

    def deliver(self, index: int = 0) -> bytes:
        """Send pending notification ``index`` (journaling it); returns its bytes."""
        item = self.pending.pop(index)
        if isinstance(item, tuple):  # V7 run ack: the stored completion goes into the journal
            _, ack, completion = item
            self.journal.append(completion)
            return frame(ack)
        self.journal.append(item)
        return frame(item)


# ---------------------------------------------------------------------- running a program


@dataclass
class Execution:
    """What one run of a program did: the steps (for :func:`.runner.compare`) and the end."""

    steps: list[Step]
    ended: str  # "end", "suspended", "error", "cancelled-end"
    runtime: Runtime | None


class _Stop(Exception):
    def __init__(self, how: str) -> None:
        self.how = how


def execute(
    program: Sequence[Op],
    version: int,
    prefix: bytes,
    *,
    runtime: Runtime | None = None,
    choose: Callable[[int], int] = lambda n: 0,
    close_after_prefix: bool = False,
    driver: Driver | None = None,
) -> Execution:
    """Run ``program`` on ``driver`` (default: the shared core) after feeding ``prefix``.

    With a ``runtime``, waits are answered with its pending notifications (``choose(n)`` picks
    which of ``n``); when it has none left, the input is closed. Without one, the input is closed
    after the prefix if ``close_after_prefix``.
    """
    leader = driver or CoreDriver(version)
    steps: list[Step] = []
    closed = False

    def step(*s: Any) -> Any:
        steps.append(s)
        if s[0] == "feed":
            leader.feed(s[1])  # type: ignore[attr-defined]
            outcome = None
        elif s[0] == "close":
            leader.close()  # type: ignore[attr-defined]
            outcome = None
        elif s[0] == "ready":
            outcome = leader.ready()  # type: ignore[attr-defined]
        else:
            outcome = leader.call(s[0], *s[1:])  # type: ignore[attr-defined]
        written = leader.output()  # type: ignore[attr-defined]
        if runtime is not None:
            runtime.observe(written)
        if outcome is not None and outcome[0] in ("error", "no_handle"):
            raise _Stop("error")
        return outcome

    def wait_for_input() -> None:
        nonlocal closed
        if runtime is not None and runtime.pending:
            step("feed", runtime.deliver(choose(len(runtime.pending))))
        elif not closed:
            closed = True
            step("close")
        else:
            raise _Stop("stuck")

    runs: dict[str, Any] = {}
    try:
        step("feed", prefix)
        if close_after_prefix:
            closed = True
            step("close")
        if step("ready") != ("ready", True):
            raise _Stop("not-ready")
        step("input")
        for op in program:
            kind = op[0]
            if kind == "run":
                runs[op[1]] = op[3]
                step("run", op[1], op[2])
            elif kind == "await":
                while True:
                    progress = step("await", op[1])
                    if progress == ("any_completed",):
                        break
                    if progress == ("suspended",):
                        raise _Stop("suspended")
                    if progress == ("cancelled",):
                        step("output", Fail(409, "cancelled"))
                        step("end")
                        raise _Stop("cancelled-end")
                    if progress[0] == "execute_run":
                        outcome = runs[progress[1]]
                        if outcome[0] == "transient":
                            _, code, message, duration, policy = outcome
                            step("propose_transient", progress[1], code, message, "trace", duration, policy)
                        else:
                            step("propose", progress[1], outcome[1])
                        continue
                    wait_for_input()
            elif kind == "runtime":  # the runtime does something unprompted (journaled when sent)
                if runtime is not None:
                    runtime.pending.append(op[1])
            else:
                step(*op)
        step("output", b'"done"')
        step("end")
        return Execution(steps, "end", runtime)
    except _Stop as stop:
        return Execution(steps, stop.how, runtime)


def transient(
    code: int = 500, message: str = "boom", duration: int = 10, policy: Policy | None = None
) -> tuple[Any, ...]:
    return ("transient", code, message, duration, policy or Policy())


def journal_bytes(journal: Sequence[Any], length: int, **start: Any) -> bytes:
    """Start(known_entries=length) + Input + the first ``length - 1`` journal entries."""
    entries = [input_message(), *journal][:length]
    return frames(start_message(length, **start), *entries)
