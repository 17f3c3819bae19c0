"""The sans-I/O state machine of one invocation attempt (service protocol V5–V6).

Rules of this file
------------------
* Every phase transition happens here and nowhere else; the phases are listed in
  :class:`Phase` and the allowed incoming messages per phase in :meth:`VM._on_message`.
* The VM never touches sockets, threads, greenlets or clocks. Bytes come in through
  :meth:`VM.notify_input` / :meth:`VM.notify_input_closed`, bytes go out through
  :meth:`VM.take_output`; time is passed in by the caller.
* Every protocol violation writes one ``ErrorMessage`` naming what arrived and in which phase,
  closes the VM, and from then on every syscall raises :class:`InvocationFailedError`.

Theory of operation
-------------------
::

    WAITING_START ──Start──▶ WAITING_REPLAY_ENTRIES ──known_entries received──▶ REPLAYING
    REPLAYING ──last journaled command popped──▶ PROCESSING ──End/Suspension/Error──▶ CLOSED

While **replaying**, each syscall that produces a command pops the next journaled command
instead of writing one and compares the two (a difference is non-determinism, code 570).
While **processing**, each syscall writes its command. Results arrive as notifications, which
are queued in arrival order; an await moves them one at a time into the ``ready`` map until the
awaited future resolves (:meth:`VM.do_progress`), which makes the winner of a race depend only
on journal order.

Notification ids ("handles") are plain values: a completion id ``n`` is ``n`` (> 0), an unnamed
signal ``n`` is ``-n`` (so the cancel signal is ``-1`` and awakeables are ``-17, -18, ...``), and
a named signal is its ``str`` name.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, NamedTuple

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from ..errors import InvocationFailedError, ProtocolError, SuspendedError
from . import messages as m
from .framing import FrameDecoder, FramingError, encode_frame
from .messages import pb

__all__ = [
    "CANCEL_SIGNAL",
    "MAX_PROTOCOL_VERSION",
    "MIN_PROTOCOL_VERSION",
    "VM",
    "Combinator",
    "CombinatorKind",
    "Failure",
    "Handle",
    "InvocationInput",
    "Phase",
    "Progress",
    "RetryPolicy",
]

MIN_PROTOCOL_VERSION: Final = 5
MAX_PROTOCOL_VERSION: Final = 6

JOURNAL_MISMATCH: Final = 570
PROTOCOL_VIOLATION: Final = 571
UNSUPPORTED_FEATURE: Final = 573

Handle = int | str
"""A notification id: completion ``n`` → ``n``; signal ``n`` → ``-n``; named signal → name."""

CANCEL_SIGNAL: Final = -1
_FIRST_AWAKEABLE_SIGNAL: Final = 17


class Failure(NamedTuple):
    """A failed result (terminal error) as carried by the protocol."""

    code: int
    message: str
    metadata: tuple[tuple[str, str], ...] = ()


class _Void:
    """The "empty" result of a notification (``Void``), distinct from a value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "VOID"


VOID: Final = _Void()
"""Result of a notification that carries no value (timer fired, state absent, ...)."""

Result = Any  # bytes | Failure | VOID | str (invocation id) | list[str] (state keys)


class Phase(Enum):
    WAITING_START = "waiting for StartMessage"
    WAITING_REPLAY_ENTRIES = "waiting for the journal to replay"
    REPLAYING = "replaying"
    PROCESSING = "processing"
    CLOSED = "closed"


class CombinatorKind(Enum):
    FIRST_COMPLETED = 1
    ALL_COMPLETED = 2
    FIRST_SUCCEEDED_OR_ALL_FAILED = 3
    ALL_SUCCEEDED_OR_FIRST_FAILED = 4


@dataclass(frozen=True)
class Combinator:
    """An inner node of an awaited future tree; leaves are :data:`Handle` values."""

    kind: CombinatorKind
    children: tuple[FutureTree, ...]


FutureTree = int | str | Combinator


class Progress(Enum):
    """What :meth:`VM.do_progress` tells the caller to do next."""

    ANY_COMPLETED = "the awaited future can make progress: take its results"
    CANCELLED = "the invocation was cancelled: raise TerminalError(409)"
    EXECUTE_RUN = "start the run named by VM.run_to_execute"
    WAITING = "flush output and wait for input, EOF or a run result"


@dataclass(frozen=True)
class InvocationInput:
    """What ``sys_input`` hands to the SDK at the start of an attempt."""

    invocation_id: str
    raw_id: bytes
    key: str
    headers: list[tuple[str, str]]
    input: bytes
    random_seed: int


@dataclass(frozen=True)
class RetryPolicy:
    """Retry policy of a ``run`` step; all durations in milliseconds.

    ``None`` fields are unbounded. A policy with every field ``None`` is "infinite": the
    runtime's invocation retry policy decides. ``max_attempts`` counts the first attempt.
    """

    initial_interval_ms: int | None = None
    exponentiation_factor: float = 2.0
    max_interval_ms: int | None = None
    max_attempts: int | None = None
    max_duration_ms: int | None = None

    @property
    def is_infinite(self) -> bool:
        return (
            self.initial_interval_ms is None
            and self.max_interval_ms is None
            and self.max_attempts is None
            and self.max_duration_ms is None
        )

    def next_delay_ms(self, attempt: int) -> int:
        """Delay before retry number ``attempt`` (1 = after the first failure)."""
        initial = 50 if self.initial_interval_ms is None else self.initial_interval_ms
        delay = initial * (self.exponentiation_factor ** (attempt - 1))
        cap = 10_000 if self.max_interval_ms is None else self.max_interval_ms
        return int(min(delay, cap))


@dataclass
class _RunInfo:
    command_index: int
    name: str
    retry_count: int = 0
    retry_duration_ms: int = 0


@dataclass
class _Call:
    invocation_id_handle: int
    invocation_id: str | None = None


_SEED = struct.Struct(">Q")
_SIGNAL_SUFFIX = struct.Struct(">I")
_NOTIFICATION_TEMPLATE = pb.NotificationTemplate


def _one_line(message: Any) -> str:
    return f"{message.DESCRIPTOR.name}{{{text_format.MessageToString(message, as_one_line=True)}}}"


def _failure_to_pb(failure: Failure, target: Any) -> None:
    target.code = failure.code
    target.message = failure.message
    for key, value in failure.metadata:
        target.metadata.add(key=key, value=value)


def _failure_from_pb(failure: Any) -> Failure:
    return Failure(failure.code, failure.message, tuple((md.key, md.value) for md in failure.metadata))


def _add_call_options(message: Any, headers: Sequence[tuple[str, str]], idempotency_key: str | None) -> None:
    for header_key, header_value in headers:
        message.headers.add(key=header_key, value=header_value)
    if idempotency_key is not None:
        message.idempotency_key = idempotency_key


def _decode_notification(template: Any) -> tuple[Handle, Result]:
    id_kind = template.WhichOneof("id")
    if id_kind == "completion_id":
        handle: Handle = template.completion_id
    elif id_kind == "signal_id":
        handle = -template.signal_id
    elif id_kind == "signal_name":
        handle = template.signal_name
    else:
        raise ProtocolError(500, "notification without an id")
    result_kind = template.WhichOneof("result")
    if result_kind == "value":
        return handle, template.value.content
    if result_kind == "void":
        return handle, VOID
    if result_kind == "failure":
        return handle, _failure_from_pb(template.failure)
    if result_kind == "invocation_id":
        return handle, template.invocation_id
    if result_kind == "state_keys":
        return handle, [key.decode("utf-8") for key in template.state_keys.keys]
    raise ProtocolError(500, f"notification for {handle!r} without a result")


class VM:
    """State machine of one invocation attempt. Not thread-safe: drive it from one greenlet."""

    def __init__(self, version: int, *, implicit_cancellation: bool = True) -> None:
        if not MIN_PROTOCOL_VERSION <= version <= MAX_PROTOCOL_VERSION:
            raise ValueError(f"unsupported service protocol version {version}")
        self.version = version
        self.phase = Phase.WAITING_START
        self._decoder = FrameDecoder()
        self._output: list[bytes] = []
        self._input_closed = False
        self._failure: ProtocolError | None = None
        self._suspended = False
        # bootstrap
        self._start: Any = None
        self._entries_to_receive = 0
        self._replay: deque[tuple[int, Any]] = deque()
        # numbering
        self._command_index = -1  # index of the last command popped or written (Input = 0)
        self._next_completion_id = 1
        self._next_signal_id = _FIRST_AWAKEABLE_SIGNAL
        # notifications
        self._queue: deque[tuple[Handle, Result]] = deque()
        self._queued: dict[Handle, int] = {}
        self._ready: dict[Handle, Result] = {}
        # state
        self._state: dict[str, bytes | None] = {}
        self._state_partial = True
        # runs
        self._runs: dict[int, _RunInfo] = {}
        self._runs_to_execute: set[int] = set()
        self._runs_executing: set[int] = set()
        self.run_to_execute: int | None = None
        self._last_replayed_run: int | None = None
        # cancellation
        self._implicit_cancellation = implicit_cancellation
        self._cancel_delivered = False
        self._calls: list[_Call] = []

    # ------------------------------------------------------------------ input side

    def notify_input(self, data: bytes) -> None:
        """Feed bytes read from the request body. Never raises: failures close the VM."""
        if self.phase is Phase.CLOSED:
            return
        try:
            frames = self._decoder.feed(data)
            for message_type, _flags, payload in frames:
                self._on_message(message_type, payload)
                if self.phase is Phase.CLOSED:  # type: ignore[comparison-overlap]  # _on_message may close
                    return
        except FramingError as exc:
            self._fail(ProtocolError(500, f"cannot decode the message stream: {exc}"))
        except DecodeError as exc:
            self._fail(ProtocolError(500, f"cannot decode a protocol message: {exc}"))
        except ProtocolError as exc:
            self._fail(exc)

    def notify_input_closed(self) -> None:
        """The request body ended (EOF)."""
        self._input_closed = True
        if self.phase in (Phase.WAITING_START, Phase.WAITING_REPLAY_ENTRIES):
            self._fail(
                ProtocolError(
                    PROTOCOL_VIOLATION,
                    f"input closed while {self.phase.value}"
                    + (f" ({self._entries_to_receive} journal entries missing)" if self._start else ""),
                )
            )
        elif self._decoder.pending and self.phase is not Phase.CLOSED:
            self._fail(
                ProtocolError(500, f"input closed inside a message ({self._decoder.pending} bytes left)")
            )

    @property
    def input_closed(self) -> bool:
        return self._input_closed

    def _on_message(self, message_type: int, payload: bytes) -> None:
        phase = self.phase
        if message_type not in m.MESSAGE_CLASSES:
            raise ProtocolError(500, f"unknown message type 0x{message_type:04x} while {phase.value}")
        if message_type == m.START:
            if phase is not Phase.WAITING_START:
                raise ProtocolError(PROTOCOL_VIOLATION, f"unexpected StartMessage while {phase.value}")
            start = pb.StartMessage.FromString(payload)
            if start.known_entries == 0:
                raise ProtocolError(500, "StartMessage.known_entries is 0; the journal needs at least Input")
            self._start = start
            self._entries_to_receive = start.known_entries
            self._state_partial = start.partial_state
            state = self._state
            for entry in start.state_map:
                try:
                    state[entry.key.decode("utf-8")] = entry.value
                except UnicodeDecodeError:
                    raise ProtocolError(500, f"state key {entry.key!r} is not UTF-8") from None
            self.phase = Phase.WAITING_REPLAY_ENTRIES
            return
        if phase is Phase.WAITING_START:
            raise ProtocolError(
                PROTOCOL_VIOLATION, f"expected StartMessage, got {m.message_name(message_type)}"
            )
        if m.is_notification(message_type):
            handle, result = _decode_notification(_NOTIFICATION_TEMPLATE.FromString(payload))
            self._queue.append((handle, result))
            self._queued[handle] = self._queued.get(handle, 0) + 1
        elif m.is_command(message_type):
            if phase is not Phase.WAITING_REPLAY_ENTRIES:
                raise ProtocolError(
                    PROTOCOL_VIOLATION,
                    f"unexpected command {m.message_name(message_type)} while {phase.value}: "
                    "commands only arrive as the journal to replay",
                )
            self._replay.append((message_type, m.MESSAGE_CLASSES[message_type].FromString(payload)))
        else:
            raise ProtocolError(
                PROTOCOL_VIOLATION, f"unexpected {m.message_name(message_type)} while {phase.value}"
            )
        if phase is Phase.WAITING_REPLAY_ENTRIES:
            self._entries_to_receive -= 1
            if self._entries_to_receive == 0:
                if not self._replay or self._replay[0][0] != m.INPUT:
                    raise ProtocolError(PROTOCOL_VIOLATION, "the journal does not start with an InputCommand")
                self.phase = Phase.REPLAYING

    # ------------------------------------------------------------------ output side

    def take_output(self) -> bytes:
        """Return (and forget) everything written since the last call."""
        if not self._output:
            return b""
        out = self._output
        self._output = []
        return out[0] if len(out) == 1 else b"".join(out)

    def _write(self, message_type: int, message: Any) -> None:
        self._output.append(encode_frame(message_type, message.SerializeToString()))

    # ------------------------------------------------------------------ status

    @property
    def is_ready(self) -> bool:
        """StartMessage and the whole replay journal have arrived: the handler may start."""
        return self.phase in (Phase.REPLAYING, Phase.PROCESSING) or (
            self.phase is Phase.CLOSED and self._start is not None and self._entries_to_receive == 0
        )

    @property
    def is_closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def is_replaying(self) -> bool:
        return self.phase is Phase.REPLAYING

    def next_replayed_command(self) -> Any | None:
        """While replaying, the journaled command the next command-writing syscall is compared with."""
        return self._replay[0][1] if self.phase is Phase.REPLAYING and self._replay else None

    @property
    def failure(self) -> ProtocolError | None:
        """The protocol error that closed the VM, if any."""
        return self._failure

    def _check_open(self) -> None:
        if self.phase is Phase.CLOSED:
            self._raise_closed()
        if self.phase not in (Phase.REPLAYING, Phase.PROCESSING):
            raise RuntimeError(f"syscall before the invocation is ready ({self.phase.value})")

    def _raise_closed(self) -> None:
        if self._failure is not None:
            raise InvocationFailedError(self._failure)
        if self._suspended:
            raise SuspendedError()
        raise RuntimeError("the invocation attempt has already ended")

    # ------------------------------------------------------------------ failing

    def _fail(self, error: ProtocolError) -> None:
        """Write ``ErrorMessage`` for ``error`` and close. Idempotent once closed."""
        if self.phase is Phase.CLOSED:
            return
        message = pb.ErrorMessage(code=error.code, message=error.message)
        if error.related_command_index is not None:
            message.related_command_index = error.related_command_index
        if error.related_command_name:
            message.related_command_name = error.related_command_name
        if error.related_command_type is not None:
            message.related_command_type = error.related_command_type
        self._write(m.ERROR, message)
        self._failure = error
        self.phase = Phase.CLOSED

    def _fail_and_raise(self, error: ProtocolError) -> None:
        self._fail(error)
        raise InvocationFailedError(error)

    def notify_error(
        self,
        message: str,
        *,
        code: int = 500,
        stacktrace: str = "",
        related_command_index: int | None = None,
        related_command_name: str | None = None,
        related_command_type: int | None = None,
        next_retry_delay_ms: int | None = None,
    ) -> None:
        """Fail the attempt with a retryable error (an exception escaped user code)."""
        if self.phase is Phase.CLOSED:
            return
        error = pb.ErrorMessage(code=code, message=message, stacktrace=stacktrace)
        if related_command_index is not None:
            error.related_command_index = related_command_index
        if related_command_name:
            error.related_command_name = related_command_name
        if related_command_type is not None:
            error.related_command_type = related_command_type
        if next_retry_delay_ms is not None:
            error.next_retry_delay = next_retry_delay_ms
        self._write(m.ERROR, error)
        self._failure = ProtocolError(code, message)
        self.phase = Phase.CLOSED

    # ------------------------------------------------------------------ journal cursor

    def _command(self, message_type: int, message: Any, compare: Any = None) -> Any:
        """Pop-and-compare (replaying) or write (processing) one command.

        Returns the journaled command while replaying, ``None`` while processing.
        ``compare(expected, actual)`` overrides the default equality check.
        """
        self._check_open()
        self._command_index += 1
        if self.phase is Phase.PROCESSING:
            self._write(message_type, message)
            return None
        journal_type, journaled = self._replay.popleft()
        if journal_type != message_type:
            self._fail_and_raise(
                ProtocolError(
                    JOURNAL_MISMATCH,
                    f"non-deterministic replay: the handler did {_one_line(message)} where the "
                    f"journal has {_one_line(journaled)} (command index {self._command_index})",
                    related_command_index=self._command_index,
                    related_command_name=getattr(journaled, "name", None) or None,
                    related_command_type=journal_type,
                )
            )
        if not (compare(message, journaled) if compare is not None else message == journaled):
            self._fail_and_raise(
                ProtocolError(
                    JOURNAL_MISMATCH,
                    f"non-deterministic replay of {m.message_name(message_type)} at command index "
                    f"{self._command_index}: the handler did {_one_line(message)}, the journal has "
                    f"{_one_line(journaled)}",
                    related_command_index=self._command_index,
                    related_command_name=getattr(journaled, "name", None) or None,
                    related_command_type=journal_type,
                )
            )
        if not self._replay:
            self.phase = Phase.PROCESSING
        return journaled

    def _completion_id(self) -> int:
        cid = self._next_completion_id
        self._next_completion_id = cid + 1
        return cid

    # ------------------------------------------------------------------ syscalls: input/output

    def sys_input(self) -> InvocationInput:
        """Pop the Input command and describe the invocation."""
        self._check_open()
        if self._command_index != -1:
            raise RuntimeError("sys_input called twice")
        self._command_index = 0
        _, input_command = self._replay.popleft()
        if not self._replay:
            self.phase = Phase.PROCESSING
        start = self._start
        if self.version >= 6:
            seed = start.random_seed
        else:
            seed = _SEED.unpack(hashlib.sha256(start.id).digest()[:8])[0]
        return InvocationInput(
            invocation_id=start.debug_id,
            raw_id=start.id,
            key=start.key,
            headers=[(h.key, h.value) for h in input_command.headers],
            input=input_command.value.content,
            random_seed=seed,
        )

    def sys_write_output(self, result: bytes | Failure) -> None:
        """Write (or replay) the handler's Output: a success value or a terminal failure."""
        message = pb.OutputCommandMessage()
        if isinstance(result, Failure):
            self._check_failure_supported(result)
            _failure_to_pb(result, message.failure)
        else:
            message.value.content = result
        self._command(m.OUTPUT, message)

    def sys_end(self) -> None:
        """Write ``EndMessage`` and close; the attempt completed."""
        self._check_open()
        if self._replay:
            journal_type, journaled = self._replay[0]
            self._fail_and_raise(
                ProtocolError(
                    JOURNAL_MISMATCH,
                    f"the handler returned, but the journal still has {_one_line(journaled)} "
                    f"at command index {self._command_index + 1}",
                    related_command_index=self._command_index + 1,
                    related_command_type=journal_type,
                )
            )
        self._write(m.END, pb.EndMessage())
        self.phase = Phase.CLOSED

    def _check_failure_supported(self, failure: Failure) -> None:
        if failure.metadata and self.version < 6:
            self._fail_and_raise(
                ProtocolError(UNSUPPORTED_FEATURE, "failure metadata needs service protocol V6 or newer")
            )

    # ------------------------------------------------------------------ syscalls: state

    def sys_get_state(self, key: str) -> int:
        """Get a state value; the handle resolves to ``bytes`` or :data:`VOID` (absent)."""
        self._check_open()
        cid = self._completion_id()
        key_bytes = key.encode("utf-8")
        if self.phase is Phase.REPLAYING:
            journal_type = self._replay[0][0]
            if journal_type == m.GET_EAGER_STATE:
                journaled = self._command(
                    m.GET_EAGER_STATE,
                    pb.GetEagerStateCommandMessage(key=key_bytes),
                    lambda mine, theirs: mine.key == theirs.key and mine.name == theirs.name,
                )
                self._ready[cid] = journaled.value.content if journaled.HasField("value") else VOID
                return cid
            self._command(
                m.GET_LAZY_STATE, pb.GetLazyStateCommandMessage(key=key_bytes, result_completion_id=cid)
            )
            return cid
        if key in self._state or not self._state_partial:
            value = self._state.get(key)
            message = pb.GetEagerStateCommandMessage(key=key_bytes)
            if value is None:
                message.void.SetInParent()
                self._ready[cid] = VOID
            else:
                message.value.content = value
                self._ready[cid] = value
            self._command(m.GET_EAGER_STATE, message)
            return cid
        self._command(
            m.GET_LAZY_STATE, pb.GetLazyStateCommandMessage(key=key_bytes, result_completion_id=cid)
        )
        return cid

    def sys_get_state_keys(self) -> int:
        """List state keys; the handle resolves to a ``list[str]``."""
        self._check_open()
        cid = self._completion_id()
        if self.phase is Phase.REPLAYING:
            if self._replay[0][0] == m.GET_EAGER_STATE_KEYS:
                journaled = self._command(
                    m.GET_EAGER_STATE_KEYS,
                    pb.GetEagerStateKeysCommandMessage(),
                    lambda mine, theirs: mine.name == theirs.name,
                )
                self._ready[cid] = [k.decode("utf-8") for k in journaled.value.keys]
                return cid
        elif not self._state_partial:
            keys = sorted(k for k, v in self._state.items() if v is not None)
            message = pb.GetEagerStateKeysCommandMessage()
            message.value.keys.extend(k.encode("utf-8") for k in keys)
            self._command(m.GET_EAGER_STATE_KEYS, message)
            self._ready[cid] = keys
            return cid
        self._command(m.GET_LAZY_STATE_KEYS, pb.GetLazyStateKeysCommandMessage(result_completion_id=cid))
        return cid

    def sys_set_state(self, key: str, value: bytes) -> None:
        message = pb.SetStateCommandMessage(key=key.encode("utf-8"))
        message.value.content = value
        self._command(m.SET_STATE, message)
        self._state[key] = value

    def sys_clear_state(self, key: str) -> None:
        self._command(m.CLEAR_STATE, pb.ClearStateCommandMessage(key=key.encode("utf-8")))
        self._state[key] = None

    def sys_clear_all_state(self) -> None:
        self._command(m.CLEAR_ALL_STATE, pb.ClearAllStateCommandMessage())
        self._state.clear()
        self._state_partial = False

    # ------------------------------------------------------------------ syscalls: timers, runs

    def sys_sleep(self, wake_up_time_ms: int, name: str = "") -> int:
        """Durable timer until an absolute epoch time; the handle resolves to :data:`VOID`."""
        self._check_open()
        cid = self._completion_id()
        self._command(
            m.SLEEP,
            pb.SleepCommandMessage(wake_up_time=wake_up_time_ms, result_completion_id=cid, name=name),
            lambda mine, theirs: mine.name == theirs.name,
        )
        return cid

    def sys_run(self, name: str = "") -> int:
        """Declare a side effect. If the journal has no result for it, it becomes executable."""
        self._check_open()
        cid = self._completion_id()
        replaying = self.phase is Phase.REPLAYING
        self._command(m.RUN, pb.RunCommandMessage(result_completion_id=cid, name=name))
        self._runs[cid] = _RunInfo(self._command_index, name)
        if cid not in self._ready and not self._queued.get(cid):
            self._runs_to_execute.add(cid)
        self._last_replayed_run = cid if replaying and self.phase is Phase.PROCESSING else None
        return cid

    def propose_run_completion(self, handle: int, result: bytes | Failure) -> None:
        """Propose the outcome of an executed run (a value or a terminal failure)."""
        self._runs_executing.discard(handle)
        if self.phase is Phase.CLOSED:
            return  # proposals after the VM closed are dropped
        message = pb.ProposeRunCompletionMessage(result_completion_id=handle)
        if isinstance(result, Failure):
            self._check_failure_supported(result)
            _failure_to_pb(result, message.failure)
        else:
            message.value = result
        self._write(m.PROPOSE_RUN_COMPLETION, message)

    def run_name(self, handle: int) -> str:
        """The name the handler gave the run ``handle`` (its handle number if unknown)."""
        info = self._runs.get(handle)
        return info.name if info is not None else str(handle)

    def propose_run_retryable_failure(
        self,
        handle: int,
        message: str,
        *,
        stacktrace: str = "",
        code: int = 500,
        policy: RetryPolicy | None = None,
        attempt_duration_ms: int = 0,
        next_retry_delay_ms: int | None = None,
    ) -> None:
        """A run failed with a retryable error: retry it (ErrorMessage) or, exhausted, fail it.

        ``next_retry_delay_ms`` (the error's own "retry after") replaces the policy's delay.
        """
        self._runs_executing.discard(handle)
        if self.phase is Phase.CLOSED:
            return
        info = self._runs[handle]
        if self._last_replayed_run == handle and self._start is not None:
            count = self._start.retry_count_since_last_stored_entry
            duration = self._start.duration_since_last_stored_entry if count > 0 else 0
        else:
            count, duration = 0, 0
        count += 1
        duration += attempt_duration_ms
        if policy is None or policy.is_infinite:
            self.notify_error(
                message,
                code=code,
                stacktrace=stacktrace,
                related_command_index=info.command_index,
                related_command_name=info.name,
                related_command_type=m.RUN,
                next_retry_delay_ms=next_retry_delay_ms,
            )
            return
        exhausted = (policy.max_attempts is not None and policy.max_attempts <= count) or (
            policy.max_duration_ms is not None and policy.max_duration_ms <= duration
        )
        if exhausted:
            self.propose_run_completion(handle, Failure(code, message))
            return
        self.notify_error(
            message,
            code=code,
            stacktrace=stacktrace,
            related_command_index=info.command_index,
            related_command_name=info.name,
            related_command_type=m.RUN,
            next_retry_delay_ms=policy.next_delay_ms(count)
            if next_retry_delay_ms is None
            else next_retry_delay_ms,
        )

    # ------------------------------------------------------------------ syscalls: calls

    def sys_call(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        *,
        key: str = "",
        idempotency_key: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        name: str = "",
    ) -> tuple[int, int]:
        """Call a handler; returns ``(invocation_id_handle, result_handle)``."""
        self._check_open()
        self._check_idempotency_key(idempotency_key)
        invocation_id_handle = self._completion_id()
        cid = self._completion_id()
        message = pb.CallCommandMessage(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            key=key,
            invocation_id_notification_idx=invocation_id_handle,
            result_completion_id=cid,
            name=name,
        )
        _add_call_options(message, headers, idempotency_key)
        self._command(m.CALL, message)
        self._calls.append(_Call(invocation_id_handle))
        return invocation_id_handle, cid

    def sys_send(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        *,
        key: str = "",
        idempotency_key: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        invoke_time_ms: int = 0,
        name: str = "",
    ) -> int:
        """One-way call; returns the handle of the callee's invocation id."""
        self._check_open()
        self._check_idempotency_key(idempotency_key)
        invocation_id_handle = self._completion_id()
        message = pb.OneWayCallCommandMessage(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            key=key,
            invoke_time=invoke_time_ms,
            invocation_id_notification_idx=invocation_id_handle,
            name=name,
        )
        _add_call_options(message, headers, idempotency_key)

        def same(mine: Any, theirs: Any) -> bool:
            theirs_copy = type(theirs)()
            theirs_copy.CopyFrom(theirs)
            theirs_copy.invoke_time = mine.invoke_time
            return bool(mine == theirs_copy)

        self._command(m.ONE_WAY_CALL, message, same)
        return invocation_id_handle

    def _check_idempotency_key(self, idempotency_key: str | None) -> None:
        if idempotency_key is not None and not idempotency_key:
            self._fail_and_raise(ProtocolError(500, "the idempotency key must not be empty"))

    # ------------------------------------------------------------------ syscalls: signals, awakeables

    def sys_awakeable(self) -> tuple[str, int]:
        """Create an awakeable; returns ``(awakeable_id, handle)``."""
        self._check_open()
        signal_id = self._next_signal_id
        self._next_signal_id = signal_id + 1
        raw = self._start.id + _SIGNAL_SUFFIX.pack(signal_id)
        awakeable_id = "sign_1" + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        return awakeable_id, -signal_id

    def sys_complete_awakeable(self, awakeable_id: str, result: bytes | Failure) -> None:
        message = pb.CompleteAwakeableCommandMessage(awakeable_id=awakeable_id)
        if isinstance(result, Failure):
            _failure_to_pb(result, message.failure)
        else:
            message.value.content = result
        self._command(m.COMPLETE_AWAKEABLE, message)

    def sys_signal(self, name: str) -> str:
        """Handle of the named signal ``name`` sent to this invocation."""
        self._check_open()
        return name

    def sys_complete_signal(self, target_invocation_id: str, name: str, result: bytes | Failure) -> None:
        message = pb.SendSignalCommandMessage(target_invocation_id=target_invocation_id, name=name)
        if isinstance(result, Failure):
            _failure_to_pb(result, message.failure)
        else:
            message.value.content = result
        self._command(m.SEND_SIGNAL, message)

    def sys_cancel_invocation(self, target_invocation_id: str) -> None:
        message = pb.SendSignalCommandMessage(target_invocation_id=target_invocation_id, idx=1)
        message.void.SetInParent()
        self._command(m.SEND_SIGNAL, message)

    # ------------------------------------------------------------------ syscalls: promises, invocations

    def sys_get_promise(self, key: str) -> int:
        self._check_open()
        cid = self._completion_id()
        self._command(m.GET_PROMISE, pb.GetPromiseCommandMessage(key=key, result_completion_id=cid))
        return cid

    def sys_peek_promise(self, key: str) -> int:
        self._check_open()
        cid = self._completion_id()
        self._command(m.PEEK_PROMISE, pb.PeekPromiseCommandMessage(key=key, result_completion_id=cid))
        return cid

    def sys_complete_promise(self, key: str, result: bytes | Failure) -> int:
        self._check_open()
        cid = self._completion_id()
        message = pb.CompletePromiseCommandMessage(key=key, result_completion_id=cid)
        if isinstance(result, Failure):
            _failure_to_pb(result, message.completion_failure)
        else:
            message.completion_value.content = result
        self._command(m.COMPLETE_PROMISE, message)
        return cid

    def sys_attach_invocation(self, invocation_id: str) -> int:
        self._check_open()
        cid = self._completion_id()
        self._command(
            m.ATTACH_INVOCATION,
            pb.AttachInvocationCommandMessage(invocation_id=invocation_id, result_completion_id=cid),
        )
        return cid

    # ------------------------------------------------------------------ awaiting

    def is_completed(self, handle: Handle) -> bool:
        """Whether the result for ``handle`` is ready to take."""
        return handle in self._ready

    def take(self, handle: Handle) -> Result:
        """Remove and return the result of a completed handle."""
        return self._ready.pop(handle)

    def do_progress(self, future: FutureTree) -> Progress:
        """Advance an await on ``future``; see :class:`Progress` for what to do next.

        Raises :class:`SuspendedError` after writing a suspension, and
        :class:`InvocationFailedError` after writing an ``ErrorMessage``.
        """
        self._check_open()
        self.run_to_execute = None
        race_cancel = self._implicit_cancellation and not self._cancel_delivered
        if race_cancel and CANCEL_SIGNAL in self._ready:
            return self._progress_cancellation()
        while True:
            if _settled(future, self._ready) is not None:
                return Progress.ANY_COMPLETED
            if race_cancel and CANCEL_SIGNAL in self._ready:
                return self._progress_cancellation()
            if not self._move_one_notification():
                break
        if self.phase is Phase.REPLAYING:
            awaited = sorted(str(h) for h in _leaves(future))
            run = next((h for h in _leaves(future) if isinstance(h, int) and h in self._runs), None)
            info = self._runs.get(run) if run is not None else None
            self._fail_and_raise(
                ProtocolError(
                    JOURNAL_MISMATCH,
                    "non-deterministic replay: the handler awaits "
                    f"{', '.join(awaited)}, which the journal never completed before its next command",
                    related_command_index=info.command_index if info else None,
                    related_command_name=info.name if info else None,
                    related_command_type=m.RUN if info else None,
                )
            )
        for leaf in _leaves(future):
            if isinstance(leaf, int) and leaf in self._runs_to_execute:
                self._runs_to_execute.discard(leaf)
                self._runs_executing.add(leaf)
                self.run_to_execute = leaf
                return Progress.EXECUTE_RUN
        if self._input_closed:
            if any(leaf in self._runs_executing for leaf in _leaves(future)):
                return Progress.WAITING
            self._suspend(_pending_leaves(future, self._ready), race_cancel)
        return Progress.WAITING

    def _move_one_notification(self) -> bool:
        if not self._queue:
            return False
        handle, result = self._queue.popleft()
        count = self._queued[handle] - 1
        if count:
            self._queued[handle] = count
        else:
            del self._queued[handle]
        self._ready[handle] = result
        return True

    def _progress_cancellation(self) -> Progress:
        """Cancel signal received: cancel child calls (once their ids are known), then report."""
        for call in self._calls:
            if call.invocation_id is None and call.invocation_id_handle not in self._ready:
                while call.invocation_id_handle not in self._ready and self._move_one_notification():
                    pass
                if call.invocation_id_handle not in self._ready:
                    if self.phase is Phase.REPLAYING:
                        self._fail_and_raise(
                            ProtocolError(
                                JOURNAL_MISMATCH,
                                "non-deterministic replay: cancellation needs the invocation id of "
                                f"call {call.invocation_id_handle}, which the journal does not have",
                            )
                        )
                    if self._input_closed:
                        self._suspend([call.invocation_id_handle], race_cancel=False)
                    return Progress.WAITING
            if call.invocation_id is None:
                call.invocation_id = self._ready[call.invocation_id_handle]
        for call in self._calls:
            assert call.invocation_id is not None
            self.sys_cancel_invocation(call.invocation_id)
        self._calls.clear()
        del self._ready[CANCEL_SIGNAL]
        self._cancel_delivered = True
        return Progress.CANCELLED

    def _suspend(self, leaves: Iterable[Handle], race_cancel: bool) -> None:
        message = pb.SuspensionMessage()
        for leaf in leaves:
            if isinstance(leaf, str):
                message.waiting_named_signals.append(leaf)
            elif leaf > 0:
                message.waiting_completions.append(leaf)
            else:
                message.waiting_signals.append(-leaf)
        if race_cancel and 1 not in message.waiting_signals:
            message.waiting_signals.append(1)
        if not (message.waiting_completions or message.waiting_signals or message.waiting_named_signals):
            self._fail_and_raise(ProtocolError(500, "cannot suspend on an empty set of futures"))
        self._write(m.SUSPENSION, message)
        self._suspended = True
        self.phase = Phase.CLOSED
        raise SuspendedError()


# ---------------------------------------------------------------------- future trees


def _settled(tree: FutureTree, ready: dict[Handle, Result]) -> bool | None:
    """``None`` while pending, else whether the (sub)tree settled successfully."""
    if not isinstance(tree, Combinator):
        if tree not in ready:
            return None
        return not isinstance(ready[tree], Failure)
    kind = tree.kind
    outcomes = [_settled(child, ready) for child in tree.children]
    if kind is CombinatorKind.FIRST_COMPLETED:
        return next((o for o in outcomes if o is not None), None)
    if kind is CombinatorKind.ALL_COMPLETED:
        return None if any(o is None for o in outcomes) else True
    if kind is CombinatorKind.FIRST_SUCCEEDED_OR_ALL_FAILED:
        if any(o is True for o in outcomes):
            return True
        return None if any(o is None for o in outcomes) else False
    # ALL_SUCCEEDED_OR_FIRST_FAILED
    if any(o is False for o in outcomes):
        return False
    return None if any(o is None for o in outcomes) else True


def _leaves(tree: FutureTree) -> list[Handle]:
    if not isinstance(tree, Combinator):
        return [tree]
    out: list[Handle] = []
    for child in tree.children:
        out.extend(_leaves(child))
    return out


def _pending_leaves(tree: FutureTree, ready: dict[Handle, Result]) -> list[Handle]:
    """Leaves still unresolved in the parts of the tree that have not settled."""
    if not isinstance(tree, Combinator):
        return [] if tree in ready else [tree]
    out: list[Handle] = []
    for child in tree.children:
        if _settled(child, ready) is None:
            out.extend(_pending_leaves(child, ready))
    return out
