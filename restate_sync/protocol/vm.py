"""The sans-I/O state machine of one invocation attempt (service protocol V5–V7).

Rules of this file
------------------
* Every phase transition happens here and nowhere else; the phases are listed in
  :class:`Phase` and the allowed incoming messages per phase in :meth:`VM._on_message`.
* The VM never touches sockets, threads, greenlets or clocks. Bytes come in through
  :meth:`VM.notify_input` / :meth:`VM.notify_input_closed`, bytes go out through
  :meth:`VM.take_output`; time is passed in by the caller.
* Every protocol violation writes one ``ErrorMessage`` naming what arrived and in which phase,
  closes the VM, and from then on every syscall raises :class:`InvocationFailedError`.
* Behaviour is checked message for message against Restate's shared core (the VM every
  official SDK embeds) by ``tests/differential``; the deliberate differences are listed there.

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

Version differences (V7 only): a run proposal carries ``REQUESTED_ACK`` and the runtime answers
with ``ProposeRunCompletionAck`` (the proposed result is kept here until then); a wait with the
input open writes ``AwaitingOn``; a suspension is the unresolved future tree instead of flat
lists; errors may ask the runtime to pause or fail instead of retrying; calls and sends carry a
scope and a limit key; ``StartMessage`` carries the invocation's scope, limit key and
idempotency key.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any, Final, NamedTuple

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from ..errors import InvocationFailedError, ProtocolError, SuspendedError
from . import messages as m
from .framing import REQUESTED_ACK, FrameDecoder, FramingError, configured_max_message_size, encode_frame
from .messages import pb

__all__ = [
    "CANCEL_SIGNAL",
    "MAX_PROTOCOL_VERSION",
    "MIN_PROTOCOL_VERSION",
    "VM",
    "Combinator",
    "CombinatorKind",
    "ErrorBehavior",
    "Failure",
    "Handle",
    "InvocationInput",
    "Phase",
    "Progress",
    "RetryPolicy",
]

MIN_PROTOCOL_VERSION: Final = 5
MAX_PROTOCOL_VERSION: Final = 7

INTERNAL: Final = 500
JOURNAL_MISMATCH: Final = 570
PROTOCOL_VIOLATION: Final = 571
UNSUPPORTED_FEATURE: Final = 573

Handle = int | str
"""A notification id: completion ``n`` → ``n``; signal ``n`` → ``-n``; named signal → name."""

CANCEL_SIGNAL: Final = -1
_FIRST_AWAKEABLE_SIGNAL: Final = 17


class ErrorBehavior(IntEnum):
    """What the runtime does after an ``ErrorMessage`` (V7; older versions only retry)."""

    RETRY = 0
    PAUSE = 1
    FAIL = 2


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
    """What ``sys_input`` hands to the SDK at the start of an attempt.

    ``scope``, ``limit_key`` and ``idempotency_key`` come with protocol V7 (``None`` before,
    or when the invocation has none).
    """

    invocation_id: str
    raw_id: bytes
    key: str
    headers: list[tuple[str, str]]
    input: bytes
    random_seed: int
    scope: str | None = None
    limit_key: str | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Retry policy of a ``run`` step; all durations in milliseconds.

    ``None`` fields are unset. A policy with every field unset is "infinite": the runtime's
    invocation retry policy decides. Otherwise it is exponential: 50 ms initially, factor 2, at
    most 10 s between attempts unless set. ``max_attempts`` counts the first attempt. When
    ``max_attempts`` or ``max_duration_ms`` is exhausted, ``on_max_attempts`` decides: ``"fail"``
    records the last error as the step's terminal failure, ``"pause"`` (protocol V7) asks the
    runtime to pause the invocation.
    """

    initial_interval_ms: int | None = None
    exponentiation_factor: float | None = None
    max_interval_ms: int | None = None
    max_attempts: int | None = None
    max_duration_ms: int | None = None
    on_max_attempts: str = "fail"

    @property
    def is_infinite(self) -> bool:
        return (
            self.initial_interval_ms is None
            and self.exponentiation_factor is None
            and self.max_interval_ms is None
            and self.max_attempts is None
            and self.max_duration_ms is None
        )

    def next_delay_ms(self, attempt: int) -> int:
        """Delay before retry number ``attempt`` (1 = after the first failure)."""
        initial = 50 if self.initial_interval_ms is None else self.initial_interval_ms
        factor = 2.0 if self.exponentiation_factor is None else self.exponentiation_factor
        cap = 10_000 if self.max_interval_ms is None else self.max_interval_ms
        delay = initial * factor ** (attempt - 1) if factor != 1.0 else float(initial)
        return int(min(delay, cap))


@dataclass
class _RunInfo:
    command_index: int
    name: str


class _Call:
    __slots__ = ("invocation_id", "invocation_id_handle")

    def __init__(self, invocation_id_handle: int) -> None:
        self.invocation_id_handle = invocation_id_handle
        self.invocation_id: str | None = None


_SEED = struct.Struct(">Q")
_SIGNAL_SUFFIX = struct.Struct(">I")
_NOTIFICATION_TEMPLATE = pb.NotificationTemplate
_CONTROL_TYPES = frozenset(
    (
        m.START,
        m.SUSPENSION,
        m.ERROR,
        m.END,
        m.PROPOSE_RUN_COMPLETION,
        m.AWAITING_ON,
        m.PROPOSE_RUN_COMPLETION_ACK,
    )
)

_PB_BEHAVIOR = {
    ErrorBehavior.RETRY: pb.ERROR_BEHAVIOR_RETRY,
    ErrorBehavior.PAUSE: pb.ERROR_BEHAVIOR_PAUSE,
    ErrorBehavior.FAIL: pb.ERROR_BEHAVIOR_FAIL,
}

# future-tree reduction states
_PENDING, _SUCCEEDED, _FAILED, _SHORT = 0, 1, 2, 3
_FC = CombinatorKind.FIRST_COMPLETED
_AC = CombinatorKind.ALL_COMPLETED
_FSAF = CombinatorKind.FIRST_SUCCEEDED_OR_ALL_FAILED
# the phases every syscall checks for
_PROCESSING = Phase.PROCESSING
_REPLAYING = Phase.REPLAYING


def _one_line(message: Any) -> str:
    if message is None:
        return "an unknown command"
    return f"{message.DESCRIPTOR.name}{{{text_format.MessageToString(message, as_one_line=True)}}}"


def _failure_to_pb(failure: Failure, target: Any) -> None:
    target.code = failure.code
    target.message = failure.message
    for key, value in failure.metadata:
        target.metadata.add(key=key, value=value)


def _failure_from_pb(failure: Any) -> Failure:
    return Failure(failure.code, failure.message, tuple((md.key, md.value) for md in failure.metadata))


def _decode_keys(keys: Any) -> list[str]:
    # like the shared core: keys that are not UTF-8 are decoded lossily, never rejected
    return [key.decode("utf-8", "replace") for key in keys]


def _decode_notification(message_type: int, template: Any) -> tuple[Handle, Result]:
    id_kind = template.WhichOneof("id")
    if id_kind == "completion_id":
        handle: Handle = template.completion_id
    elif id_kind == "signal_id":
        handle = -template.signal_id
    elif id_kind == "signal_name":
        handle = template.signal_name
    else:
        raise ProtocolError(INTERNAL, f"{m.message_name(message_type)} without an id")
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
        return handle, _decode_keys(template.state_keys.keys)
    raise ProtocolError(INTERNAL, f"{m.message_name(message_type)} for {handle!r} without a result")


class VM:
    """State machine of one invocation attempt. Not thread-safe: drive it from one greenlet."""

    def __init__(
        self, version: int, *, implicit_cancellation: bool = True, max_message_size: int | None = None
    ) -> None:
        if not MIN_PROTOCOL_VERSION <= version <= MAX_PROTOCOL_VERSION:
            raise ValueError(f"unsupported service protocol version {version}")
        self.version = version
        self.phase = Phase.WAITING_START
        self._decoder = FrameDecoder(
            configured_max_message_size() if max_message_size is None else max_message_size
        )
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
        self._wrote_command = False  # a command was written since replay ended (run retry info)
        # notifications
        self._queue: deque[tuple[Handle, Result]] = deque()
        self._queued: dict[Handle, int] = {}  # handle -> how many queued notifications carry it
        self._ready: dict[Handle, Result] = {}
        self._ready_later: dict[Handle, deque[Result]] = {}  # more results for a handle already ready
        # state
        self._state: dict[str, bytes | None] = {}
        self._state_partial = True
        # runs
        self._runs: dict[int, _RunInfo] = {}
        self._runs_to_execute: set[int] = set()
        self._runs_executing: set[int] = set()
        self._proposals: dict[int, Result] = {}  # V7: proposed, not yet acknowledged
        self.run_to_execute: int | None = None
        # cancellation
        self._implicit_cancellation = implicit_cancellation
        self._cancel_delivered = False
        self._calls: list[_Call] = []
        self._call_ids: dict[Handle, _Call] = {}

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
            self._fail(ProtocolError(exc.code, f"cannot decode the message stream: {exc}"))
        except DecodeError as exc:
            self._fail(ProtocolError(INTERNAL, f"cannot decode a protocol message: {exc}"))
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
                ProtocolError(INTERNAL, f"input closed inside a message ({self._decoder.pending} bytes left)")
            )

    @property
    def input_closed(self) -> bool:
        return self._input_closed

    def _on_message(self, message_type: int, payload: bytes) -> None:
        phase = self.phase
        if message_type < 0x0400:  # control messages
            if message_type not in _CONTROL_TYPES:
                raise ProtocolError(
                    INTERNAL, f"unknown message type 0x{message_type:04x} while {phase.value}"
                )
            if message_type == m.START:
                self._on_start(payload)
                return
            if message_type == m.PROPOSE_RUN_COMPLETION_ACK:
                self._on_run_ack(payload)
                return
            raise ProtocolError(
                PROTOCOL_VIOLATION, f"unexpected {m.message_name(message_type)} while {phase.value}"
            )
        if phase is Phase.WAITING_START:
            raise ProtocolError(
                PROTOCOL_VIOLATION, f"expected StartMessage, got {m.message_name(message_type)}"
            )
        if message_type < 0x8000:  # commands, known or not
            if phase is not Phase.WAITING_REPLAY_ENTRIES:
                raise ProtocolError(
                    PROTOCOL_VIOLATION,
                    f"unexpected command {m.message_name(message_type)} while {phase.value}: "
                    "commands only arrive as the journal to replay",
                )
            cls = m.MESSAGE_CLASSES.get(message_type)
            self._replay.append((message_type, cls.FromString(payload) if cls is not None else None))
        elif message_type < 0xFC00:  # notifications, known or not: all share one shape
            handle, result = _decode_notification(message_type, _NOTIFICATION_TEMPLATE.FromString(payload))
            self._queue.append((handle, result))
            self._queued[handle] = self._queued.get(handle, 0) + 1
        else:
            raise ProtocolError(
                PROTOCOL_VIOLATION, f"unexpected {m.message_name(message_type)} while {phase.value}"
            )
        if phase is Phase.WAITING_REPLAY_ENTRIES:
            self._entries_to_receive -= 1
            if self._entries_to_receive == 0:
                self.phase = Phase.REPLAYING

    def _on_start(self, payload: bytes) -> None:
        if self.phase is not Phase.WAITING_START:
            raise ProtocolError(PROTOCOL_VIOLATION, f"unexpected StartMessage while {self.phase.value}")
        start = pb.StartMessage.FromString(payload)
        self._start = start
        self._entries_to_receive = start.known_entries
        self._state_partial = start.partial_state
        state = self._state
        for entry in start.state_map:
            try:
                state[entry.key.decode("utf-8")] = entry.value
            except UnicodeDecodeError:
                raise ProtocolError(INTERNAL, f"eager state key {entry.key!r} is not UTF-8") from None
        if start.known_entries == 0:
            raise ProtocolError(INTERNAL, "StartMessage.known_entries is 0; the journal needs at least Input")
        self.phase = Phase.WAITING_REPLAY_ENTRIES

    def _on_run_ack(self, payload: bytes) -> None:
        if self.phase is not Phase.PROCESSING:
            raise ProtocolError(
                PROTOCOL_VIOLATION, f"unexpected ProposeRunCompletionAckMessage while {self.phase.value}"
            )
        cid = pb.ProposeRunCompletionAckMessage.FromString(payload).completion_id
        try:
            result = self._proposals.pop(cid)
        except KeyError:
            raise ProtocolError(
                PROTOCOL_VIOLATION, f"ProposeRunCompletionAck for completion {cid}, which has no proposal"
            ) from None
        # the stored run result takes the ack's place in the notification order, as on replay
        self._queue.append((cid, result))
        self._queued[cid] = self._queued.get(cid, 0) + 1

    # ------------------------------------------------------------------ output side

    def take_output(self) -> bytes:
        """Return (and forget) everything written since the last call."""
        if not self._output:
            return b""
        out = self._output
        self._output = []
        return out[0] if len(out) == 1 else b"".join(out)

    def _write(self, message_type: int, message: Any, flags: int = 0) -> None:
        self._output.append(encode_frame(message_type, message.SerializeToString(), flags))

    # ------------------------------------------------------------------ status

    @property
    def is_ready(self) -> bool:
        """StartMessage and the whole replay journal have arrived: the handler may start."""
        return self.phase in (Phase.REPLAYING, Phase.PROCESSING) or (
            self.phase is Phase.CLOSED and self._start is not None and self._entries_to_receive == 0
        )

    def is_ready_to_execute(self) -> bool:
        """Like :attr:`is_ready`, but raises :class:`InvocationFailedError` once the VM failed."""
        if self._failure is not None:
            raise InvocationFailedError(self._failure)
        return self.is_ready

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
        phase = self.phase
        if phase is _PROCESSING or phase is _REPLAYING:  # every syscall checks: the common case first
            return
        if phase is Phase.CLOSED:
            self._raise_closed()
        raise RuntimeError(f"syscall before the invocation is ready ({phase.value})")

    def _raise_closed(self) -> None:
        if self._failure is not None:
            raise InvocationFailedError(self._failure)
        if self._suspended:
            raise SuspendedError()
        raise RuntimeError("the invocation attempt has already ended")

    # ------------------------------------------------------------------ failing

    def _fail(self, error: ProtocolError, behavior: ErrorBehavior = ErrorBehavior.RETRY) -> None:
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
        if behavior is not ErrorBehavior.RETRY:
            message.behavior = _PB_BEHAVIOR[behavior]
        self._write(m.ERROR, message)
        self._failure = error
        self.phase = Phase.CLOSED
        self._decoder.reset()

    def _fail_and_raise(self, error: ProtocolError) -> None:
        self._fail(error)
        raise InvocationFailedError(error)

    def _unsupported(self, feature: str) -> None:
        self._fail_and_raise(
            ProtocolError(
                UNSUPPORTED_FEATURE,
                f"{feature} needs service protocol V7, but this invocation speaks V{self.version}",
            )
        )

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
        behavior: ErrorBehavior = ErrorBehavior.RETRY,
    ) -> None:
        """Fail the attempt with an error from user code (retried unless ``behavior`` says otherwise).

        ``behavior`` PAUSE/FAIL needs protocol V7; on older versions the attempt fails with 573.
        """
        if self.phase is Phase.CLOSED:
            return
        if behavior is not ErrorBehavior.RETRY and self.version < 7:
            self._fail(
                ProtocolError(
                    UNSUPPORTED_FEATURE,
                    f"error behavior {behavior.name} needs service protocol V7, but this invocation "
                    f"speaks V{self.version}",
                )
            )
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
        if behavior is not ErrorBehavior.RETRY:
            error.behavior = _PB_BEHAVIOR[behavior]
        self._write(m.ERROR, error)
        self._failure = ProtocolError(code, message)
        self.phase = Phase.CLOSED

    # ------------------------------------------------------------------ journal cursor

    def _command(self, message_type: int, message: Any, compare: Any = None) -> Any:
        """Pop-and-compare (replaying) or write (processing) one command.

        Returns the journaled command while replaying, ``None`` while processing.
        ``compare(expected, actual)`` overrides the default equality check. A mismatch names
        the command the handler executes now (as the shared core does).
        """
        self._check_open()
        self._command_index += 1
        if self.phase is Phase.PROCESSING:
            self._write(message_type, message)
            self._wrote_command = True
            return None
        journal_type, journaled = self._replay.popleft()
        if journal_type != message_type:
            self._fail_and_raise(
                ProtocolError(
                    JOURNAL_MISMATCH,
                    f"non-deterministic replay: the handler did {_one_line(message)} where the "
                    f"journal has {_one_line(journaled)} (command index {self._command_index})",
                    related_command_index=self._command_index,
                    related_command_name=_name_of(message),
                    related_command_type=message_type,
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
                    related_command_name=_name_of(message),
                    related_command_type=message_type,
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
        if not self._replay:
            self._fail_and_raise(
                ProtocolError(
                    PROTOCOL_VIOLATION,
                    "the journal has no commands, not even the InputCommand",
                    related_command_index=0,
                    related_command_type=m.INPUT,
                )
            )
        journal_type, input_command = self._replay.popleft()
        if journal_type != m.INPUT:
            self._fail_and_raise(
                ProtocolError(
                    JOURNAL_MISMATCH,
                    f"the journal starts with {_one_line(input_command)}, not with an InputCommand",
                    related_command_index=0,
                    related_command_type=m.INPUT,
                )
            )
        if not self._replay:
            self.phase = Phase.PROCESSING
        start = self._start
        if self.version >= 6:
            seed = start.random_seed
        else:
            seed = _SEED.unpack(hashlib.sha256(start.id).digest()[:8])[0]
        if self.version >= 7:
            return InvocationInput(
                start.debug_id,
                start.id,
                start.key,
                [(h.key, h.value) for h in input_command.headers],
                input_command.value.content,
                seed,
                start.scope if start.HasField("scope") else None,
                start.limit_key if start.HasField("limit_key") else None,
                start.idempotency_key if start.HasField("idempotency_key") else None,
            )
        return InvocationInput(
            start.debug_id,
            start.id,
            start.key,
            [(h.key, h.value) for h in input_command.headers],
            input_command.value.content,
            seed,
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
            self._fail_and_raise(
                ProtocolError(
                    PROTOCOL_VIOLATION,
                    f"the handler returned, but the journal still has {_one_line(self._replay[0][1])} "
                    f"at command index {self._command_index + 1}",
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
                kind = journaled.WhichOneof("result")
                if kind is None:
                    self._fail_and_raise(
                        ProtocolError(PROTOCOL_VIOLATION, "journaled GetEagerStateCommand has no result")
                    )
                self._ready[cid] = journaled.value.content if kind == "value" else VOID
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
                if not journaled.HasField("value"):
                    self._fail_and_raise(
                        ProtocolError(PROTOCOL_VIOLATION, "journaled GetEagerStateKeysCommand has no value")
                    )
                self._ready[cid] = _decode_keys(journaled.value.keys)
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
        self._command(m.RUN, pb.RunCommandMessage(result_completion_id=cid, name=name))
        self._runs[cid] = _RunInfo(self._command_index, name)
        if cid not in self._ready and cid not in self._queued:
            self._runs_to_execute.add(cid)
        return cid

    def propose_run_completion(self, handle: int, result: bytes | Failure) -> None:
        """Propose the outcome of an executed run (a value or a terminal failure)."""
        self._runs_executing.discard(handle)
        self._runs_to_execute.discard(handle)
        if self.phase is not Phase.PROCESSING:
            return  # proposals after the VM closed are dropped
        message = pb.ProposeRunCompletionMessage(result_completion_id=handle)
        if isinstance(result, Failure):
            self._check_failure_supported(result)
            _failure_to_pb(result, message.failure)
        else:
            message.value = result
        if self.version >= 7:
            self._proposals[handle] = result
            self._write(m.PROPOSE_RUN_COMPLETION, message, REQUESTED_ACK)
        else:
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
        """A run failed with a retryable error: retry it (ErrorMessage) or, exhausted, fail/pause it.

        ``next_retry_delay_ms`` (the error's own "retry after") replaces the policy's delay. Raises
        :class:`InvocationFailedError` when the attempt ends here (retry or pause).
        """
        self._runs_executing.discard(handle)
        self._runs_to_execute.discard(handle)
        if self.phase is not Phase.PROCESSING:
            return
        info = self._runs[handle]
        if policy is None or policy.is_infinite:
            self._run_error(info, message, code, stacktrace, delay_ms=next_retry_delay_ms)
            return
        if not self._wrote_command and self._start is not None:
            count = self._start.retry_count_since_last_stored_entry
            duration = self._start.duration_since_last_stored_entry if count > 0 else 0
        else:
            count, duration = 0, 0
        count += 1
        duration += attempt_duration_ms
        exhausted = (policy.max_attempts is not None and policy.max_attempts <= count) or (
            policy.max_duration_ms is not None and policy.max_duration_ms <= duration
        )
        if not exhausted:
            delay = policy.next_delay_ms(count) if next_retry_delay_ms is None else next_retry_delay_ms
            self._run_error(info, message, code, stacktrace, delay_ms=delay)
        elif policy.on_max_attempts == "pause":
            self._run_error(info, message, code, stacktrace, behavior=ErrorBehavior.PAUSE)
        else:
            self.propose_run_completion(handle, Failure(code, message))

    def _run_error(
        self,
        info: _RunInfo,
        message: str,
        code: int,
        stacktrace: str,
        delay_ms: int | None = None,
        behavior: ErrorBehavior = ErrorBehavior.RETRY,
    ) -> None:
        """End the attempt with the run's error; raises :class:`InvocationFailedError` (as the core)."""
        self.notify_error(
            message,
            code=code,
            stacktrace=stacktrace,
            related_command_index=info.command_index,
            related_command_name=info.name,
            related_command_type=m.RUN,
            next_retry_delay_ms=delay_ms,
            behavior=behavior,
        )
        self._raise_closed()

    # ------------------------------------------------------------------ syscalls: calls

    def _check_call_options(
        self, idempotency_key: str | None, scope: str | None, limit_key: str | None
    ) -> None:
        if idempotency_key is not None and not idempotency_key:
            self._fail_and_raise(ProtocolError(INTERNAL, "the idempotency key must not be empty"))
        if scope is not None or limit_key is not None:
            if self.version < 7:
                self._unsupported("a call scope or limit key")
            if scope is not None and not scope:
                self._fail_and_raise(ProtocolError(INTERNAL, "the scope must not be empty"))
            if limit_key is not None and not limit_key:
                self._fail_and_raise(ProtocolError(INTERNAL, "the limit key must not be empty"))

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
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> tuple[int, int]:
        """Call a handler; returns ``(invocation_id_handle, result_handle)``."""
        self._check_open()
        self._check_call_options(idempotency_key, scope, limit_key)
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
        _add_call_options(message, headers, idempotency_key, scope, limit_key)
        self._command(m.CALL, message)
        call = _Call(invocation_id_handle)
        self._calls.append(call)
        self._call_ids[invocation_id_handle] = call
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
        scope: str | None = None,
        limit_key: str | None = None,
    ) -> int:
        """One-way call; returns the handle of the callee's invocation id."""
        self._check_open()
        self._check_call_options(idempotency_key, scope, limit_key)
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
        _add_call_options(message, headers, idempotency_key, scope, limit_key)

        def same(mine: Any, theirs: Any) -> bool:
            theirs_copy = type(theirs)()
            theirs_copy.CopyFrom(theirs)
            theirs_copy.invoke_time = mine.invoke_time
            return bool(mine == theirs_copy)

        self._command(m.ONE_WAY_CALL, message, same)
        return invocation_id_handle

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
        result = self._ready.pop(handle)
        if self._ready_later:
            later = self._ready_later.get(handle)
            if later:
                self._ready[handle] = later.popleft()
                if not later:
                    del self._ready_later[handle]
        if self._call_ids:
            call = self._call_ids.get(handle)
            if call is not None:
                call.invocation_id = result  # remembered for implicit cancellation
        return result

    def do_progress(self, future: FutureTree) -> Progress:
        """Advance an await on ``future``; see :class:`Progress` for what to do next.

        Raises :class:`SuspendedError` after writing a suspension, and
        :class:`InvocationFailedError` after writing an ``ErrorMessage``.
        """
        self._check_open()
        self.run_to_execute = None
        race_cancel = self._implicit_cancellation and not self._cancel_delivered
        ready = self._ready
        if type(future) is not Combinator:  # the common case: one leaf, raced with the cancel signal
            while future not in ready and not (race_cancel and CANCEL_SIGNAL in ready):
                if not self._move_one_notification():
                    if (
                        isinstance(future, int)
                        and future in self._runs_to_execute
                        and self.phase is _PROCESSING
                    ):
                        return self._execute_run(future)  # run_sync, without building the tree
                    return self._no_progress([_FC, [future, CANCEL_SIGNAL]] if race_cancel else future)
            progress = Progress.ANY_COMPLETED
        elif self._implicit_cancellation:
            # the wrapper stays after the cancellation was delivered, empty-handed (as in the core)
            progress = self._progress(Combinator(_FC, (future, CANCEL_SIGNAL) if race_cancel else (future,)))
        else:
            progress = self._progress(future)
        if race_cancel and progress is Progress.ANY_COMPLETED and CANCEL_SIGNAL in ready:
            return self._progress_cancellation()
        return progress

    def _progress(self, future: FutureTree) -> Progress:
        ready = self._ready
        if type(future) is not Combinator:
            while future not in ready:
                if not self._move_one_notification():
                    return self._no_progress(future)
            return Progress.ANY_COMPLETED
        tree = _working_copy(future)
        while True:
            state = _reduce(tree, ready)
            if state != _PENDING:
                return Progress.ANY_COMPLETED
            if not self._move_one_notification():
                return self._no_progress(tree)

    def _no_progress(self, tree: Any) -> Progress:
        """Nothing queued resolves ``tree`` (a leaf or a reduced working copy)."""
        if self.phase is Phase.REPLAYING:
            leaves = _leaves(tree)
            run = next((h for h in reversed(leaves) if isinstance(h, int) and h in self._runs), None)
            info = self._runs.get(run) if run is not None else None
            self._fail_and_raise(
                ProtocolError(
                    JOURNAL_MISMATCH,
                    "non-deterministic replay: the handler awaits "
                    f"{', '.join(sorted(str(h) for h in leaves if h != CANCEL_SIGNAL))}, which the "
                    "journal never completed before its next command",
                    related_command_index=info.command_index if info else None,
                    related_command_name=info.name if info else None,
                    related_command_type=m.RUN if info else None,
                )
            )
        runs = self._runs_to_execute
        if runs:
            for leaf in _leaves(tree):
                if type(leaf) is int and leaf in runs:
                    return self._execute_run(leaf)
        if self._input_closed:
            executing = self._runs_executing
            if executing and any(leaf in executing for leaf in _leaves(tree)):
                return Progress.WAITING
            self._suspend(tree)
        if self.version >= 7 and not self._runs_executing:
            message = pb.AwaitingOnMessage()
            _to_future_pb(tree, message.awaiting_on)
            self._write(m.AWAITING_ON, message)
        return Progress.WAITING

    def _execute_run(self, handle: int) -> Progress:
        """The awaited run ``handle`` has not executed yet: the driver executes it now."""
        self._runs_to_execute.discard(handle)
        self._runs_executing.add(handle)
        self.run_to_execute = handle
        return Progress.EXECUTE_RUN

    def _move_one_notification(self) -> bool:
        if not self._queue:
            return False
        handle, result = self._queue.popleft()
        count = self._queued[handle] - 1
        if count:
            self._queued[handle] = count
        else:
            del self._queued[handle]
        if handle in self._ready:  # e.g. a named signal sent twice: results are taken in order
            self._ready_later.setdefault(handle, deque()).append(result)
        else:
            self._ready[handle] = result
        return True

    def _progress_cancellation(self) -> Progress:
        """Cancel signal received: cancel child calls (once their ids are known), then report."""
        for call in self._calls:
            if call.invocation_id is not None:
                continue
            handle = call.invocation_id_handle
            progress = self._progress(handle)
            if progress is not Progress.ANY_COMPLETED:
                return progress
            call.invocation_id = self._ready[handle]
        for call in self._calls:
            assert call.invocation_id is not None
            self.sys_cancel_invocation(call.invocation_id)
        self._calls.clear()
        self._call_ids.clear()
        del self._ready[CANCEL_SIGNAL]
        self._cancel_delivered = True
        return Progress.CANCELLED

    def _suspend(self, tree: Any) -> None:
        future = pb.Future()
        _to_future_pb(tree, future)
        if not _has_leaves(future):
            self._fail_and_raise(ProtocolError(INTERNAL, "cannot suspend on an empty set of futures"))
        message = pb.SuspensionMessage()
        if self.version >= 7:
            message.awaiting_on.CopyFrom(future)
        else:
            _flatten(future, message)
        self._write(m.SUSPENSION, message)
        self._suspended = True
        self.phase = Phase.CLOSED
        raise SuspendedError()


def _name_of(message: Any) -> str | None:
    name = getattr(message, "entry_name", None) if isinstance(message, pb.SendSignalCommandMessage) else None
    if name is None:
        name = getattr(message, "name", None)
    return name or None


def _add_call_options(
    message: Any,
    headers: Sequence[tuple[str, str]],
    idempotency_key: str | None,
    scope: str | None,
    limit_key: str | None,
) -> None:
    for header_key, header_value in headers:
        message.headers.add(key=header_key, value=header_value)
    if idempotency_key is not None:
        message.idempotency_key = idempotency_key
    if scope is not None:
        message.scope = scope
    if limit_key is not None:
        message.limit_key = limit_key


# ---------------------------------------------------------------------- future trees
#
# An await reduces a *working copy* of the tree: inner nodes are ``[kind, [children]]`` lists,
# leaves are handles. Reduction removes settled children in place, exactly like the shared core
# does (including its swap-remove order, which shows in AwaitingOn/Suspension messages), and
# "short-circuits" when an inner race settles, so the SDK gets control back to take results.


def _working_copy(tree: FutureTree) -> Any:
    if type(tree) is not Combinator:
        return tree
    return [tree.kind, [_working_copy(child) for child in tree.children]]


def _swap_remove(children: list[Any], i: int) -> None:
    last = children.pop()
    if i < len(children):
        children[i] = last


def _reduce(node: Any, ready: dict[Handle, Result]) -> int:
    if type(node) is not list:
        if node not in ready:
            return _PENDING
        return _FAILED if type(ready[node]) is Failure else _SUCCEEDED
    kind, children = node
    if kind is _FC:
        for child in children:
            state = _reduce(child, ready)
            if state == _SHORT:
                return _SHORT
            if state != _PENDING:
                children.clear()
                return _SHORT
        return _PENDING
    i = 0
    if kind is _AC:
        while i < len(children):
            state = _reduce(children[i], ready)
            if state == _SHORT:
                return _SHORT
            if state != _PENDING:
                _swap_remove(children, i)
            else:
                i += 1
        return _PENDING if children else _SUCCEEDED
    winning, losing = (_SUCCEEDED, _FAILED) if kind is _FSAF else (_FAILED, _SUCCEEDED)
    while i < len(children):
        state = _reduce(children[i], ready)
        if state == _SHORT:
            return _SHORT
        if state == winning:
            children.clear()
            return _SHORT
        if state == losing:
            _swap_remove(children, i)
        else:
            i += 1
    if children:
        return _PENDING
    return losing


def _leaves(node: Any) -> list[Handle]:
    if type(node) is not list:
        return [node]
    out: list[Handle] = []
    for child in node[1]:
        if type(child) is list:
            out.extend(_leaves(child))
        else:
            out.append(child)
    return out


def _to_future_pb(node: Any, future: Any) -> None:
    """Encode a (reduced) tree as a ``Future``: leaves inline, inner nodes nested."""
    if type(node) is not list:
        future.combinator_type = pb.COMBINATOR_TYPE_FIRST_COMPLETED
        _push_leaf(future, node)
        return
    kind, children = node
    future.combinator_type = kind.value
    for child in children:
        if type(child) is list:
            _to_future_pb(child, future.nested_futures.add())
        else:
            _push_leaf(future, child)


def _push_leaf(future: Any, handle: Handle) -> None:
    if isinstance(handle, str):
        future.waiting_named_signals.append(handle)
    elif handle > 0:
        future.waiting_completions.append(handle)
    else:
        future.waiting_signals.append(-handle)


def _flatten(future: Any, message: Any) -> None:
    """V5/V6 suspension: every leaf of the tree, depth first, in the three flat lists."""
    message.waiting_completions.extend(future.waiting_completions)
    message.waiting_signals.extend(future.waiting_signals)
    message.waiting_named_signals.extend(future.waiting_named_signals)
    for nested in future.nested_futures:
        _flatten(nested, message)


def _has_leaves(future: Any) -> bool:
    return bool(
        future.waiting_completions
        or future.waiting_signals
        or future.waiting_named_signals
        or any(_has_leaves(nested) for nested in future.nested_futures)
    )
