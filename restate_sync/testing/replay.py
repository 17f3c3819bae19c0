"""Offline replay kit: run handlers with no server, against scripted or recorded journals.

Three tools, all driving the SDK's real state machine (:class:`~restate_sync.protocol.vm.VM`)
and real invocation driver (:class:`~restate_sync.invocation.Attempt`) with real protocol bytes:

:func:`simulate`
    Runs one invocation of a handler with this module playing restate-server from a script:
    state values, ``run`` results, call results, awakeable, promise and signal resolutions. Each
    attempt gets the whole journal so far and a closed input (as restate-server's request/response
    mode does), so every await the journal cannot answer ends the attempt; the kit adds the
    scripted answer and starts the next attempt, which replays everything before it. On protocol
    V7 (``version=7``) run proposals are acknowledged within the attempt, as a V7 server does, and
    the input ends only when the attempt waits for something else. A scripted test therefore also
    checks that the handler replays deterministically::

        result = simulate(Orders, "place", {"item": "book"},
                          state={"stock": 3}, runs={"charge": "ch_1"},
                          calls={"Shipping/ship": {"eta": 2}})
        assert result.output == {"eta": 2}
        assert result.steps == ["get stock", "run charge", "set stock", "call Shipping/ship", "output"]
        assert result.state == {"stock": 2}

:class:`JournalRecorder`
    Serves services to a real restate-server (through :func:`restate_sync.testing.start`) while
    recording every attempt's protocol bytes, both ways, in the order the SDK consumed and wrote
    them, and reassembles each invocation's complete journal from them.

:func:`replay`
    Replays a journal (recorded, simulated, or loaded from a file) against today's code, offline.
    A code change that breaks determinism raises :class:`NonDeterminismError` with the state
    machine's own message (code 570), naming the command the handler produced and the one the
    journal has. Offline replay never performs a side effect: a ``run`` the journal has no
    result for is not executed.

Why record at the endpoint and not from the admin API's ``sys_journal`` table: the bytes the
endpoint receives and sends are exactly the protocol messages to replay, for every invocation
(including ones still in flight and services without journal retention), while the table keeps
journals only as long as the service's retention says and answers SQL rows, not protocol frames.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import gevent

from ..endpoint import Endpoint, _context_class
from ..errors import TerminalError
from ..exchange import EOF, Exchange, Inbox
from ..invocation import Attempt
from ..middleware import Middleware, MiddlewareChain
from ..protocol import messages as m
from ..protocol.framing import REQUESTED_ACK, FrameDecoder, encode_frame
from ..protocol.messages import pb
from ..protocol.vm import JOURNAL_MISMATCH, MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, VM, RetryPolicy
from ..serde import DEFAULT_SERDE, Serde
from ..service import HandlerDefinition, ServiceDefinition, service_definition

#: The protocol version :func:`simulate` speaks unless told otherwise: V6, what restate-server 1.7
#: negotiates unless it runs with V7 enabled.
SIMULATED_PROTOCOL_VERSION = 6
#: Every protocol version the kit simulates, records and replays (the state machine's range).
SUPPORTED_PROTOCOL_VERSIONS: tuple[int, ...] = tuple(range(MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION + 1))

__all__ = [
    "SIMULATED_PROTOCOL_VERSION",
    "SUPPORTED_PROTOCOL_VERSIONS",
    "Journal",
    "JournalRecorder",
    "NonDeterminismError",
    "ReplayError",
    "ReplayResult",
    "Simulation",
    "SimulationError",
    "replay",
    "simulate",
]

#: How long one offline attempt may take before the kit gives up on it (seconds).
ATTEMPT_TIMEOUT = 30.0
_MAGIC = b"restate-sync journal\n"
_NOTHING: Any = object()


class ReplayError(AssertionError):
    """An offline run or replay did not go as the journal says (see the message)."""


class NonDeterminismError(ReplayError):
    """The handler did something else than the journal records (the state machine's code 570)."""


class SimulationError(AssertionError):
    """A simulated invocation has no output to give (it is suspended or failed)."""


# ---------------------------------------------------------------------- journals


def _frame(message_type: int, message: Any) -> bytes:
    return encode_frame(message_type, message.SerializeToString())


def _decode(data: bytes) -> list[tuple[int, Any]]:
    frames = FrameDecoder().feed(data)
    return [(t, m.MESSAGE_CLASSES[t].FromString(payload)) for t, _flags, payload in frames]


def _run_completion(proposal: Any) -> tuple[int, Any]:
    """The run completion the runtime journals for a ``ProposeRunCompletion``."""
    note = pb.RunCompletionNotificationMessage(completion_id=proposal.result_completion_id)
    if proposal.WhichOneof("result") == "failure":
        note.failure.CopyFrom(proposal.failure)
    else:
        note.value.content = proposal.value
    return m.RUN_COMPLETION, note


Handle = int | str  # as the state machine numbers notifications: completion n, signal -n, a name


def _future_leaves(future: Any, out: list[Handle]) -> None:
    out.extend(int(c) for c in future.waiting_completions)
    out.extend(-int(s) for s in future.waiting_signals)
    out.extend(str(n) for n in future.waiting_named_signals)
    for nested in future.nested_futures:
        _future_leaves(nested, out)


def _suspension_leaves(suspension: Any) -> list[Handle]:
    """Every notification a ``SuspensionMessage`` waits for, as handles, depth first.

    V5/V6 suspensions carry three flat lists; a V7 one the unresolved future tree
    (``awaiting_on``), whose combinators restate-server evaluates before it resumes. The kit
    needs only the leaves: it resumes once any of them has a result (see :func:`simulate`), and
    the next attempt's state machine evaluates the tree again.
    """
    out: list[Handle] = []
    if suspension.HasField("awaiting_on"):
        _future_leaves(suspension.awaiting_on, out)
    else:
        out.extend(int(c) for c in suspension.waiting_completions)
        out.extend(-int(s) for s in suspension.waiting_signals)
        out.extend(str(n) for n in suspension.waiting_named_signals)
    return out


def describe(message_type: int, message: Any) -> str:
    """A short readable name of one journal command (``"run charge"``, ``"set count"``, ...)."""
    if message_type == m.OUTPUT:
        return (
            "output"
            if message.WhichOneof("result") != "failure"
            else f"output failure {message.failure.code}"
        )
    if message_type in (m.GET_EAGER_STATE, m.GET_LAZY_STATE):
        return f"get {message.key.decode()}"
    if message_type in (m.GET_EAGER_STATE_KEYS, m.GET_LAZY_STATE_KEYS):
        return "state keys"
    if message_type == m.SET_STATE:
        return f"set {message.key.decode()}"
    if message_type == m.CLEAR_STATE:
        return f"clear {message.key.decode()}"
    if message_type == m.CLEAR_ALL_STATE:
        return "clear all"
    if message_type == m.SLEEP:
        return f"sleep {message.name}" if message.name else "sleep"
    if message_type in (m.CALL, m.ONE_WAY_CALL):
        verb = "call" if message_type == m.CALL else "send"
        key = f" [{message.key}]" if message.key else ""
        return f"{verb} {message.service_name}/{message.handler_name}{key}"
    if message_type == m.RUN:
        return f"run {message.name}"
    if message_type == m.GET_PROMISE:
        return f"promise {message.key}"
    if message_type == m.PEEK_PROMISE:
        return f"peek promise {message.key}"
    if message_type == m.COMPLETE_PROMISE:
        verb = "reject" if message.WhichOneof("completion") == "completion_failure" else "resolve"
        return f"{verb} promise {message.key}"
    if message_type == m.COMPLETE_AWAKEABLE:
        verb = "reject" if message.WhichOneof("result") == "failure" else "resolve"
        return f"{verb} awakeable {message.awakeable_id}"
    if message_type == m.SEND_SIGNAL:
        if message.WhichOneof("signal_id") == "idx" and message.idx == 1:
            return f"cancel {message.target_invocation_id}"
        return f"signal {message.name or message.idx} to {message.target_invocation_id}"
    if message_type == m.ATTACH_INVOCATION:
        return f"attach {message.invocation_id}"
    if message_type == m.GET_INVOCATION_OUTPUT:
        return f"output of {message.invocation_id}"
    return m.message_name(message_type)


@dataclass
class Journal:
    """One invocation's journal: its ``StartMessage`` and its entries as protocol messages.

    ``entries`` holds ``(message type id, protobuf message)`` pairs in journal order: the Input
    command first, then commands and notifications. :meth:`to_bytes` is the byte stream an
    endpoint would receive to replay all of it (a short header, then framed messages).
    """

    service: str
    handler: str
    version: int
    start: Any
    entries: list[tuple[int, Any]]

    @property
    def invocation_id(self) -> str:
        return str(self.start.debug_id)

    @property
    def commands(self) -> list[Any]:
        """The command messages after Input, in order."""
        return [msg for t, msg in self.entries[1:] if m.is_command(t)]

    @property
    def steps(self) -> list[str]:
        """:func:`describe` of every command after Input."""
        return [describe(t, msg) for t, msg in self.entries[1:] if m.is_command(t)]

    @property
    def completed(self) -> bool:
        """Whether the journal ends the invocation (it holds the Output command)."""
        return any(t == m.OUTPUT for t, _ in self.entries)

    def frames(self) -> bytes:
        """``StartMessage`` (``known_entries`` = every entry) and the entries, framed."""
        start = pb.StartMessage()
        start.CopyFrom(self.start)
        start.known_entries = len(self.entries)
        start.retry_count_since_last_stored_entry = 0
        start.duration_since_last_stored_entry = 0
        return _frame(m.START, start) + b"".join(_frame(t, msg) for t, msg in self.entries)

    def to_bytes(self) -> bytes:
        head = json.dumps({"service": self.service, "handler": self.handler, "version": self.version})
        return _MAGIC + head.encode() + b"\n" + self.frames()

    @classmethod
    def from_bytes(cls, data: bytes) -> Journal:
        if not data.startswith(_MAGIC):
            raise ValueError("not a journal written by Journal.to_bytes (wrong header)")
        head, _, body = data[len(_MAGIC) :].partition(b"\n")
        meta = json.loads(head)
        messages = _decode(body)
        if not messages or messages[0][0] != m.START:
            raise ValueError("the journal does not start with a StartMessage")
        return cls(meta["service"], meta["handler"], int(meta["version"]), messages[0][1], messages[1:])

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> Journal:
        return cls.from_bytes(Path(path).read_bytes())

    def __repr__(self) -> str:
        return f"<Journal {self.service}/{self.handler} {self.invocation_id} {len(self.entries)} entries>"


# ---------------------------------------------------------------------- one offline attempt


class _Sink:
    """Collects what the attempt writes; ``on_frame`` (if given) sees each message as it leaves."""

    def __init__(self, on_frame: Callable[[int, int, bytes], None] | None = None) -> None:
        self.chunks: list[bytes] = []
        self.closed = False
        self._on_frame = on_frame
        self._decoder = FrameDecoder() if on_frame is not None else None

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        if self._decoder is not None and self._on_frame is not None:
            for message_type, flags, payload in self._decoder.feed(data):
                self._on_frame(message_type, flags, payload)

    def close(self) -> None:
        self.closed = True


class _OfflineAttempt(Attempt):
    """The real driver, except that ``run`` blocks may be swapped for scripted outcomes."""

    run_script: Callable[[str], Any] | None = None
    blocked_runs: list[str]

    def register_run(
        self,
        handle: int,
        fn: Callable[[], Any],
        retry_policy: RetryPolicy | None,
        background: bool,
        serialize: Callable[[Any], bytes],
    ) -> None:
        script = self.run_script
        if script is not None:
            name = self.vm.run_name(handle)
            outcome = script(name)
            if outcome is not _NOTHING:
                fn = outcome
                background = False
        super().register_run(handle, fn, retry_policy, background, serialize)

    def runs_executing(self) -> bool:
        """Whether a run block executes on a greenlet of its own (its outcome is still to come)."""
        return any(not run.dead for run in self._runs.values())


class _LiveInbox(Inbox):
    """The request body of a V7 offline attempt: open while the attempt has something to take.

    Items put before the attempt asks are delivered as they come (the run acks); the first time
    the attempt would wait with nothing queued and no run block executing, the body ends (EOF), as
    restate-server ends a request once the handler waits for something it cannot answer at once.
    Deterministic: it depends on what the attempt did, never on time.
    """

    __slots__ = ("ended", "runs_executing")

    def __init__(self) -> None:
        super().__init__()
        self.ended = False
        self.runs_executing: Callable[[], bool] = lambda: False

    def get(self, timeout: float | None = None) -> Any:
        item = self.get_nowait()
        if item is not None:
            return item
        if not self.ended and not self.runs_executing():
            self.ended = True
            return EOF
        return super().get(timeout)


class _OfflineExchange:
    """What middleware sees of an offline attempt's request: the headers restate-server sends."""

    def __init__(self, inbox: Inbox, sink: _Sink, version: int, invocation_id: str) -> None:
        self.method = "POST"
        self.path = "/invoke"
        self.http2 = True
        self.inbox = inbox
        self.headers = {
            "content-type": f"application/vnd.restate.invocation.v{version}",
            "x-restate-invocation-id": invocation_id,
        }
        self.write = sink.write
        self.close = sink.close

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        raise AssertionError("offline attempts write their response through the sink")


def _chain(middleware: Sequence[Middleware] | MiddlewareChain | None) -> MiddlewareChain | None:
    if isinstance(middleware, MiddlewareChain):
        return middleware
    return MiddlewareChain(middleware) if middleware else None


@dataclass
class _AttemptResult:
    written: list[tuple[int, Any]]
    error: Any = None  # ErrorMessage
    suspension: Any = None
    ended: bool = False
    acked: set[int] = field(default_factory=set)  # completion ids of run proposals acknowledged live


def _resolve(service: Any, handler: Any) -> tuple[ServiceDefinition, HandlerDefinition]:
    definition = service_definition(service)
    if isinstance(handler, str):
        found = definition.handlers.get(handler)
        if found is None:
            found = next((h for h in definition.handlers.values() if h.fn.__name__ == handler), None)
    else:
        found = next((h for h in definition.handlers.values() if h.fn is handler), None)
    if found is None:
        raise ValueError(
            f"{definition.name} has no handler {handler!r}; it has {sorted(definition.handlers)}"
        )
    return definition, found


def _run_attempt(
    service: ServiceDefinition,
    handler: HandlerDefinition,
    version: int,
    data: bytes,
    run_script: Callable[[str], Any] | None = None,
    chain: MiddlewareChain | None = None,
    invocation_id: str = "",
    live: bool = False,
) -> _AttemptResult:
    """One attempt on ``data`` (StartMessage and journal).

    Without ``live`` the input is closed from the start (restate-server's request/response mode).
    With ``live`` (V7) the input stays open while the attempt runs, and the run proposals that ask
    for an acknowledgement get one at once (:class:`_LiveInbox`).
    """
    inbox: Inbox
    acked: set[int] = set()
    if live:
        live_inbox = _LiveInbox()

        def runtime_reads(message_type: int, flags: int, payload: bytes) -> None:
            if message_type == m.PROPOSE_RUN_COMPLETION and flags & REQUESTED_ACK and not live_inbox.ended:
                cid = pb.ProposeRunCompletionMessage.FromString(payload).result_completion_id
                acked.add(cid)
                ack = pb.ProposeRunCompletionAckMessage(completion_id=cid)
                live_inbox.put(_frame(m.PROPOSE_RUN_COMPLETION_ACK, ack))

        inbox = live_inbox
        sink = _Sink(runtime_reads)
    else:
        inbox = Inbox()
        sink = _Sink()
    context_factory = _context_class(service, handler)
    attempt: _OfflineAttempt
    if chain is None:
        attempt = _OfflineAttempt(service, handler, VM(version), inbox, sink, context_factory=context_factory)
    else:
        exchange = _OfflineExchange(inbox, sink, version, invocation_id)
        hooked = chain.attempt(
            service,
            handler,
            version,
            cast(Exchange, exchange),
            context_factory=context_factory,
            attempt_class=_OfflineAttempt,
        )
        assert isinstance(hooked, _OfflineAttempt)
        attempt = hooked
    attempt.run_script = run_script
    inbox.put(data)
    if isinstance(inbox, _LiveInbox):
        inbox.runs_executing = attempt.runs_executing
    else:
        inbox.put(EOF)
    greenlet = gevent.spawn(attempt.run)
    greenlet.join(ATTEMPT_TIMEOUT)
    if not greenlet.dead:
        greenlet.kill(block=False)
        raise ReplayError(
            f"{service.name}/{handler.name} did not finish an offline attempt in {ATTEMPT_TIMEOUT}s "
            "(is it blocked on something outside Restate?)"
        )
    if greenlet.exception is not None:
        raise greenlet.exception
    result = _AttemptResult(written=[], acked=acked)
    for message_type, message in _decode(b"".join(sink.chunks)):
        if message_type == m.ERROR:
            result.error = message
        elif message_type == m.SUSPENSION:
            result.suspension = message
        elif message_type == m.END:
            result.ended = True
        else:
            result.written.append((message_type, message))
    return result


# ---------------------------------------------------------------------- simulation


def _encode_value(value: Any, serde: Serde[Any] = DEFAULT_SERDE) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return serde.serialize(value)


def _set_result(target: Any, value: Any, failure_field: str = "failure", value_field: str = "value") -> None:
    """Put a scripted value (or a TerminalError) into a notification or command message."""
    if isinstance(value, TerminalError):
        failure = getattr(target, failure_field)
        failure.code = value.status_code
        failure.message = value.message
        return
    getattr(target, value_field).content = _encode_value(value)


def _decoded_argument(data: bytes) -> Any:
    try:
        return DEFAULT_SERDE.deserialize(data) if data else None
    except Exception:
        return data


@dataclass
class Simulation:
    """The outcome of :func:`simulate`."""

    service: ServiceDefinition
    handler: HandlerDefinition
    journal: Journal
    outcome: str  # "completed", "suspended" or "failed"
    attempts: int
    raw_state: dict[str, bytes]
    waiting: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    middleware: Sequence[Middleware] = ()

    @property
    def commands(self) -> list[Any]:
        """Every command the handler produced (after Input), as protobuf messages."""
        return self.journal.commands

    @property
    def steps(self) -> list[str]:
        """The commands as short names: ``["get count", "run charge", "set count", "output"]``."""
        return self.journal.steps

    @property
    def state(self) -> dict[str, Any]:
        """The object's state after the invocation, JSON-decoded (raw bytes where not JSON)."""
        return {k: _decoded_argument(v) for k, v in self.raw_state.items()}

    @property
    def error(self) -> TerminalError | None:
        """The terminal error the invocation ended with, if it did."""
        for t, msg in self.journal.entries:
            if t == m.OUTPUT and msg.WhichOneof("result") == "failure":
                return TerminalError(msg.failure.message, msg.failure.code)
        return None

    @property
    def output(self) -> Any:
        """The handler's result, decoded with its output serde; raises its terminal error, or
        :class:`SimulationError` when the invocation did not complete."""
        for t, msg in self.journal.entries:
            if t == m.OUTPUT:
                if msg.WhichOneof("result") == "failure":
                    raise TerminalError(msg.failure.message, msg.failure.code)
                return self.handler.output_serde.deserialize(msg.value.content)
        if self.outcome == "suspended":
            raise SimulationError(
                f"{self.service.name}/{self.handler.name} did not complete: it is suspended waiting for "
                f"{', '.join(self.waiting) or 'nothing the script can answer'} (script an answer)"
            )
        raise SimulationError(
            f"{self.service.name}/{self.handler.name} did not complete: its attempts failed with "
            f"{self.failures[-1] if self.failures else 'an error'}"
        )

    def calls(self) -> list[tuple[str, Any]]:
        """``("Service/handler", decoded argument)`` of every call and send, in order."""
        return [
            (f"{msg.service_name}/{msg.handler_name}", _decoded_argument(msg.parameter))
            for t, msg in self.journal.entries
            if t in (m.CALL, m.ONE_WAY_CALL)
        ]

    def replay(self) -> ReplayResult:
        """Replay the recorded journal once more, offline, against the same handler."""
        return replay(self.journal, self.service, middleware=self.middleware)


class _Peer:
    """Plays restate-server for :func:`simulate`: keeps the journal, answers commands from the script."""

    def __init__(
        self,
        *,
        state: dict[str, bytes],
        runs: Mapping[str, Any],
        calls: Mapping[str, Any],
        awakeables: Sequence[Any],
        promises: Mapping[str, Any],
        signals: Mapping[str, Any],
        invocations: Mapping[str, Any],
        timers: bool,
        cancel: bool,
    ) -> None:
        self.state = state
        self.runs = runs
        self.calls = calls
        self.awakeables = list(awakeables)
        self.promises = dict(promises)
        self.signals = dict(signals)
        self.invocations = invocations
        self.timers = timers
        self.cancel = cancel
        self.callees = 0
        self.delivered: set[Any] = set()
        self.run_uses: dict[str, int] = {}

    def run_outcome(self, name: str) -> Any:
        """What a run named ``name`` should do in this attempt (``_NOTHING``: execute it)."""
        if name not in self.runs:
            return _NOTHING
        scripted = self.runs[name]

        def outcome() -> Any:  # called only when the block executes (not when it replays)
            chosen = scripted
            if isinstance(chosen, list):
                index = self.run_uses.get(name, 0)
                self.run_uses[name] = index + 1
                chosen = chosen[min(index, len(chosen) - 1)]
            if isinstance(chosen, BaseException):
                raise chosen
            return chosen

        return outcome

    def _callee(self) -> str:
        self.callees += 1
        raw = hashlib.sha256(f"callee-{self.callees}".encode()).digest()[:24]
        return "inv_" + base64.b32encode(raw).decode().lower().rstrip("=")[:32]

    def answer(self, message_type: int, message: Any) -> list[tuple[int, Any]]:
        """Notifications (and state changes) for a command the handler wrote."""
        out: list[tuple[int, Any]] = []
        if message_type == m.SET_STATE:
            self.state[message.key.decode()] = message.value.content
        elif message_type == m.CLEAR_STATE:
            self.state.pop(message.key.decode(), None)
        elif message_type == m.CLEAR_ALL_STATE:
            self.state.clear()
        elif message_type == m.GET_LAZY_STATE:
            note = pb.GetLazyStateCompletionNotificationMessage(completion_id=message.result_completion_id)
            value = self.state.get(message.key.decode())
            if value is None:
                note.void.SetInParent()
            else:
                note.value.content = value
            out.append((m.GET_LAZY_STATE_COMPLETION, note))
        elif message_type == m.GET_LAZY_STATE_KEYS:
            note = pb.GetLazyStateKeysCompletionNotificationMessage(
                completion_id=message.result_completion_id
            )
            note.state_keys.keys.extend(k.encode() for k in sorted(self.state))
            out.append((m.GET_LAZY_STATE_KEYS_COMPLETION, note))
        elif message_type == m.SLEEP:
            if self.timers:
                note = pb.SleepCompletionNotificationMessage(completion_id=message.result_completion_id)
                note.void.SetInParent()
                out.append((m.SLEEP_COMPLETION, note))
        elif message_type in (m.CALL, m.ONE_WAY_CALL):
            ident = pb.CallInvocationIdCompletionNotificationMessage(
                completion_id=message.invocation_id_notification_idx, invocation_id=self._callee()
            )
            out.append((m.CALL_INVOCATION_ID_COMPLETION, ident))
            target = f"{message.service_name}/{message.handler_name}"
            if message_type == m.CALL and target in self.calls:
                scripted = self.calls[target]
                if callable(scripted):
                    try:
                        scripted = scripted(_decoded_argument(message.parameter))
                    except TerminalError as exc:
                        scripted = exc
                note = pb.CallCompletionNotificationMessage(completion_id=message.result_completion_id)
                _set_result(note, scripted)
                out.append((m.CALL_COMPLETION, note))
        elif message_type == m.GET_PROMISE:
            if message.key in self.promises:
                note = pb.GetPromiseCompletionNotificationMessage(completion_id=message.result_completion_id)
                _set_result(note, self.promises[message.key])
                out.append((m.GET_PROMISE_COMPLETION, note))
        elif message_type == m.PEEK_PROMISE:
            note = pb.PeekPromiseCompletionNotificationMessage(completion_id=message.result_completion_id)
            if message.key in self.promises:
                _set_result(note, self.promises[message.key])
            else:
                note.void.SetInParent()
            out.append((m.PEEK_PROMISE_COMPLETION, note))
        elif message_type == m.COMPLETE_PROMISE:
            note = pb.CompletePromiseCompletionNotificationMessage(completion_id=message.result_completion_id)
            if message.key in self.promises:
                note.failure.code = 409
                note.failure.message = f"promise {message.key!r} is already completed"
            else:
                note.void.SetInParent()
                if message.WhichOneof("completion") == "completion_failure":
                    failure = message.completion_failure
                    self.promises[message.key] = TerminalError(failure.message, failure.code)
                else:
                    self.promises[message.key] = message.completion_value.content
            out.append((m.COMPLETE_PROMISE_COMPLETION, note))
        elif message_type in (m.ATTACH_INVOCATION, m.GET_INVOCATION_OUTPUT):
            known = message.invocation_id in self.invocations
            if message_type == m.ATTACH_INVOCATION and known:
                note = pb.AttachInvocationCompletionNotificationMessage(
                    completion_id=message.result_completion_id
                )
                _set_result(note, self.invocations[message.invocation_id])
                out.append((m.ATTACH_INVOCATION_COMPLETION, note))
            elif message_type == m.GET_INVOCATION_OUTPUT:
                output = pb.GetInvocationOutputCompletionNotificationMessage(
                    completion_id=message.result_completion_id
                )
                if known:
                    _set_result(output, self.invocations[message.invocation_id])
                else:
                    output.void.SetInParent()
                out.append((m.GET_INVOCATION_OUTPUT_COMPLETION, output))
        return out

    def on_suspension(self, suspension: Any) -> list[tuple[int, Any]]:
        """Signals the suspension waits for that the script can deliver now."""
        out: list[tuple[int, Any]] = []
        for leaf in _suspension_leaves(suspension):
            if leaf in self.delivered:
                continue
            if isinstance(leaf, str):
                if leaf in self.signals:
                    self.delivered.add(leaf)
                    note = pb.SignalNotificationMessage(name=leaf)
                    _set_result(note, self.signals[leaf])
                    out.append((m.SIGNAL_NOTIFICATION, note))
            elif leaf == -1:  # the cancel signal
                if self.cancel:
                    self.delivered.add(leaf)
                    note = pb.SignalNotificationMessage(idx=1)
                    note.void.SetInParent()
                    out.append((m.SIGNAL_NOTIFICATION, note))
            elif leaf < 0:
                index = -leaf - 17
                if 0 <= index < len(self.awakeables):
                    self.delivered.add(leaf)
                    note = pb.SignalNotificationMessage(idx=-leaf)
                    _set_result(note, self.awakeables[index])
                    out.append((m.SIGNAL_NOTIFICATION, note))
        return out

    def waiting(self, suspension: Any, entries: list[tuple[int, Any]]) -> list[str]:
        """What a suspension waits for, in the script's terms."""
        by_completion: dict[int, str] = {}
        for t, msg in entries:
            if not m.is_command(t):
                continue
            label = describe(t, msg)
            for attr in ("result_completion_id", "invocation_id_notification_idx"):
                cid = getattr(msg, attr, 0) if msg.DESCRIPTOR.fields_by_name.get(attr) else 0
                if cid:
                    by_completion.setdefault(cid, label)
        leaves = _suspension_leaves(suspension)
        out = [
            by_completion.get(leaf, f"completion {leaf}")
            for leaf in leaves
            if isinstance(leaf, int) and leaf > 0
        ]
        out += [f"awakeable {-leaf - 16}" for leaf in leaves if isinstance(leaf, int) and leaf <= -17]
        out += [f"signal {leaf}" for leaf in leaves if isinstance(leaf, str)]
        return out


def _start_message(
    invocation_id: str, raw_id: bytes, key: str, state: dict[str, bytes], lazy_state: bool, seed: int
) -> Any:
    start = pb.StartMessage(id=raw_id, debug_id=invocation_id, key=key, random_seed=seed)
    start.partial_state = lazy_state
    if not lazy_state:
        for k, v in state.items():
            start.state_map.add(key=k.encode(), value=v)
    return start


def simulate(
    service: Any,
    handler: Any,
    input: Any = _NOTHING,
    *,
    key: str = "",
    headers: Mapping[str, str] | None = None,
    raw_input: bytes | None = None,
    state: Mapping[str, Any] | None = None,
    lazy_state: bool = False,
    runs: Mapping[str, Any] | None = None,
    calls: Mapping[str, Any] | None = None,
    awakeables: Sequence[Any] = (),
    promises: Mapping[str, Any] | None = None,
    signals: Mapping[str, Any] | None = None,
    invocations: Mapping[str, Any] | None = None,
    timers: bool = True,
    cancel: bool = False,
    middleware: Sequence[Middleware] = (),
    max_attempts: int = 200,
    max_retries: int = 5,
    random_seed: int = 0x5EED,
    version: int = SIMULATED_PROTOCOL_VERSION,
) -> Simulation:
    """Run ``service``'s ``handler`` (a name or the handler function) with no server.

    The script, every part optional:

    * ``input`` (encoded with the handler's input serde) or ``raw_input`` bytes; ``headers``;
      ``key`` for objects and workflows;
    * ``state``: the object's state before the invocation (values JSON-encoded, bytes as-is);
      ``lazy_state=True`` makes the handler fetch it entry by entry, as with lazy state enabled;
    * ``runs``: ``{name: result}`` — a scripted result instead of executing the block (a
      ``TerminalError`` fails the step, another exception fails the attempt and is retried; a
      list gives one outcome per attempt, the last one repeating). Runs not named execute for real;
    * ``calls``: ``{"Service/handler": result}`` or a function of the call's argument returning it
      (a ``TerminalError`` result fails the call); unnamed calls never complete;
    * ``awakeables``: the results of the awakeables the handler creates, in creation order;
    * ``promises``: ``{name: value}`` of durable promises (workflows); ``signals``: named signals
      sent to this invocation; ``invocations``: results for ``attach_invocation`` and friends;
    * ``timers=False`` leaves every sleep and timeout unfired; ``cancel=True`` cancels the
      invocation while it first waits;
    * ``middleware``: endpoint middleware to run around the attempts, runs and calls;
    * ``version``: the service protocol version (one of :data:`SUPPORTED_PROTOCOL_VERSIONS`).
      On V5/V6 every attempt's input is closed from the start; on V7 the input stays open while
      the attempt runs, each run proposal is acknowledged at once (so a run does not end the
      attempt), and the attempt's suspension is a future tree, answered as soon as the script
      can answer any of its leaves.

    Raises :class:`NonDeterminismError` if a later attempt does not replay what an earlier one
    did. A handler that raises a retryable exception is retried up to ``max_retries`` times in a
    row. The result tells the outcome; see :class:`Simulation`.
    """
    if version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise ValueError(
            f"version must be one of {', '.join(map(str, SUPPORTED_PROTOCOL_VERSIONS))} "
            f"(the service protocol versions the SDK speaks), not {version!r}"
        )
    live = version >= 7
    definition, handler_def = _resolve(service, handler)
    chain = _chain(middleware)
    state_bytes = {k: _encode_value(v) for k, v in (state or {}).items()}
    peer = _Peer(
        state=dict(state_bytes),
        runs=runs or {},
        calls=calls or {},
        awakeables=awakeables,
        promises=promises or {},
        signals=signals or {},
        invocations=invocations or {},
        timers=timers,
        cancel=cancel,
    )
    raw_id = hashlib.sha256(f"{definition.name}/{handler_def.name}/{key}".encode()).digest()[:24]
    invocation_id = "inv_" + base64.urlsafe_b64encode(raw_id).decode().rstrip("=")
    input_command = pb.InputCommandMessage()
    if raw_input is not None:
        input_command.value.content = raw_input
    elif input is not _NOTHING:
        input_command.value.content = handler_def.input_serde.serialize(input)
    for name, value in (headers or {}).items():
        input_command.headers.add(key=name, value=value)
    entries: list[tuple[int, Any]] = [(m.INPUT, input_command)]
    first_start = _start_message(invocation_id, raw_id, key, state_bytes, lazy_state, random_seed)
    failures: list[str] = []
    retries = 0
    attempts = 0
    outcome = "suspended"
    waiting: list[str] = []
    while attempts < max_attempts:
        attempts += 1
        start = _start_message(invocation_id, raw_id, key, peer.state, lazy_state, random_seed)
        start.known_entries = len(entries)
        start.retry_count_since_last_stored_entry = retries
        data = _frame(m.START, start) + b"".join(_frame(t, msg) for t, msg in entries)
        result = _run_attempt(
            definition, handler_def, version, data, peer.run_outcome, chain, invocation_id, live
        )
        stored_before = len(entries)
        # The runtime journals commands in the order they were written, and a run completion it
        # acknowledged during the attempt where the ack was (the attempt saw it there); its other
        # answers come after the attempt, which saw none of them.
        answers: list[tuple[int, Any]] = []
        for message_type, message in result.written:
            if m.is_command(message_type):
                entries.append((message_type, message))
                answers.extend(peer.answer(message_type, message))
            elif message_type == m.PROPOSE_RUN_COMPLETION:
                if message.result_completion_id in result.acked:
                    entries.append(_run_completion(message))
                else:
                    answers.append(_run_completion(message))
            # AwaitingOn (V7) only says what the attempt waits for: nothing to journal or answer
        entries.extend(answers)
        if result.error is not None:
            if result.error.code == JOURNAL_MISMATCH:
                raise NonDeterminismError(f"[{result.error.code}] {result.error.message}")
            failures.append(f"[{result.error.code}] {result.error.message}")
            if result.error.code in (571, 572, 573):  # protocol violations do not heal by retrying
                raise ReplayError(f"attempt {attempts} failed: {failures[-1]}")
            retries = 1 if len(entries) > stored_before else retries + 1
            if retries > max_retries:
                outcome = "failed"
                break
            continue
        retries = 0
        if result.ended:
            outcome = "completed"
            break
        if result.suspension is None:
            raise ReplayError(f"attempt {attempts} ended without End, Suspension or ErrorMessage")
        delivered = peer.on_suspension(result.suspension)
        entries.extend(delivered)
        if not delivered and len(entries) == stored_before:
            waiting = peer.waiting(result.suspension, entries)
            break
    else:
        raise ReplayError(f"{definition.name}/{handler_def.name} did not finish in {max_attempts} attempts")
    journal = Journal(definition.name, handler_def.name, version, first_start, entries)
    middleware_used = chain.middleware if chain is not None else ()
    return Simulation(
        definition,
        handler_def,
        journal,
        outcome,
        attempts,
        dict(peer.state),
        waiting,
        failures,
        middleware_used,
    )


# ---------------------------------------------------------------------- replay


@dataclass
class ReplayResult:
    """The outcome of :func:`replay`."""

    journal: Journal
    outcome: str  # "completed", "suspended" (the journal ended mid-way) or "beyond journal"
    new_commands: list[tuple[int, Any]]
    waiting: list[int] = field(default_factory=list)
    stopped_at_run: str | None = None

    @property
    def new_steps(self) -> list[str]:
        """The commands the handler produced after the journal ended."""
        return [describe(t, msg) for t, msg in self.new_commands if m.is_command(t)]


def replay(
    journal: Journal | bytes | str | Path, service: Any, *, middleware: Sequence[Middleware] = ()
) -> ReplayResult:
    """Replay ``journal`` offline against ``service`` as today's code has it.

    ``service`` is a service class, or an :class:`~restate_sync.Endpoint` (its service of the
    journal's name, with the endpoint's middleware — needed when outbound middleware added
    headers to the journaled calls). ``journal`` is a :class:`Journal`, its bytes, or the path of
    a file written by :meth:`Journal.save`. Raises :class:`NonDeterminismError` with the state
    machine's message when the handler's commands differ from the journal's, and
    :class:`ReplayError` when the replay fails otherwise. A journal that ends mid-invocation
    replays up to its end: the result says what the handler did next, and a ``run`` past the end
    is not executed.
    """
    if isinstance(journal, (bytes, bytearray)):
        journal = Journal.from_bytes(bytes(journal))
    elif isinstance(journal, (str, Path)):
        journal = Journal.load(journal)
    chain = _chain(middleware)
    if isinstance(service, Endpoint):
        if chain is None and service.middleware:
            chain = MiddlewareChain(service.middleware)
        found = service.services.get(journal.service)
        if found is None:
            raise ReplayError(
                f"the endpoint has no service {journal.service!r} (it has {sorted(service.services)})"
            )
        service = found
    if service_definition(service).name != journal.service:
        raise ReplayError(
            f"the journal is of {journal.service}/{journal.handler}, not of {service_definition(service).name}"
        )
    definition, handler_def = _resolve(service, journal.handler)
    blocked: list[str] = []

    def no_side_effects(name: str) -> Any:
        def refuse() -> Any:
            blocked.append(name)
            raise TerminalError(f"offline replay: run {name!r} is not in the journal")

        return refuse

    result = _run_attempt(
        definition,
        handler_def,
        journal.version,
        journal.frames(),
        no_side_effects,
        chain,
        journal.invocation_id,
    )
    if result.error is not None:
        if result.error.code == JOURNAL_MISMATCH:
            raise NonDeterminismError(f"[{result.error.code}] {result.error.message}")
        raise ReplayError(f"the replay failed: [{result.error.code}] {result.error.message}")
    new = [(t, msg) for t, msg in result.written if m.is_command(t)]
    if blocked:
        return ReplayResult(journal, "beyond journal", new, stopped_at_run=blocked[0])
    if result.ended:
        return ReplayResult(journal, "completed", new)
    waiting = (
        [leaf for leaf in _suspension_leaves(result.suspension) if isinstance(leaf, int) and leaf > 0]
        if result.suspension is not None
        else []
    )
    return ReplayResult(journal, "suspended", new, waiting)


# ---------------------------------------------------------------------- recording


class _RecordingInbox:
    """Stands for the exchange's inbox: hands items on to the attempt, logging the bytes."""

    __slots__ = ("_inner", "_log")

    def __init__(self, inner: Inbox, log: list[tuple[str, bytes]]) -> None:
        self._inner = inner
        self._log = log

    def _seen(self, item: Any) -> Any:
        if isinstance(item, (bytes, bytearray, memoryview)):
            self._log.append(("in", bytes(item)))
        return item

    def get(self, timeout: float | None = None) -> Any:
        return self._seen(self._inner.get(timeout))

    def get_nowait(self) -> Any:
        return self._seen(self._inner.get_nowait())

    def put(self, item: Any) -> None:
        self._inner.put(item)

    @property
    def on_disconnect(self) -> Callable[[], None] | None:
        return self._inner.on_disconnect

    @on_disconnect.setter
    def on_disconnect(self, callback: Callable[[], None] | None) -> None:
        self._inner.on_disconnect = callback


class _RecordingExchange:
    """Stands for one invocation request, logging what is read and written."""

    def __init__(self, inner: Exchange, log: list[tuple[str, bytes]]) -> None:
        self._inner = inner
        self._log = log
        self.method = inner.method
        self.path = inner.path
        self.headers = inner.headers
        self.http2 = inner.http2
        self.inbox = _RecordingInbox(inner.inbox, log)

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        self._inner.respond(status, headers, body)

    def write(self, data: bytes) -> None:
        self._log.append(("out", bytes(data)))
        self._inner.write(data)

    def close(self) -> None:
        self._inner.close()


class _RecordingEndpoint(Endpoint):
    def __init__(self, recorder: JournalRecorder) -> None:
        super().__init__()
        self._recorder = recorder

    def handle(self, exchange: Exchange) -> None:
        path = exchange.path.split("?", 1)[0].rstrip("/").split("/")
        if len(path) < 3 or path[-3] != "invoke":
            super().handle(exchange)
            return
        log: list[tuple[str, bytes]] = []
        try:
            super().handle(cast(Exchange, _RecordingExchange(exchange, log)))
        finally:
            self._recorder._attempt_done(path[-2], path[-1], exchange.headers.get("content-type", ""), log)


class JournalRecorder:
    """Records the journals of real invocations while a harness serves these services.

    ::

        recorder = JournalRecorder(Greeter)
        with restate_sync.testing.start(recorder.endpoint) as env:
            sent = env.ingress.send("Greeter", "greet", "World")
            env.ingress.attach(sent["invocationId"])
        journal = recorder.journal(sent["invocationId"])
        journal.save("tests/journals/greet.journal")     # replay(journal, Greeter) offline

    Every attempt's bytes are kept in the order the SDK consumed (journal, notifications) and
    wrote (commands) them; an invocation's journal is its last attempt's replayed journal plus
    what that attempt received and recorded.
    """

    def __init__(self, *services: Any) -> None:
        self.endpoint: Endpoint = _RecordingEndpoint(self).bind(*services)
        self._lock = threading.Lock()
        self._journals: dict[str, Journal] = {}
        self._first_start: dict[str, Any] = {}
        self._attempts: dict[str, int] = {}

    def _attempt_done(
        self, service: str, handler: str, content_type: str, log: list[tuple[str, bytes]]
    ) -> None:
        incoming = FrameDecoder()
        outgoing = FrameDecoder()
        start: Any = None
        entries: list[tuple[int, Any]] = []
        proposals: dict[int, Any] = {}  # V7: proposed run results, by completion id, until acked
        for direction, data in log:
            decoder = incoming if direction == "in" else outgoing
            for message_type, _flags, payload in decoder.feed(data):
                message = (
                    m.MESSAGE_CLASSES[message_type].FromString(payload)
                    if message_type in m.MESSAGE_CLASSES
                    else None
                )
                if message is None:
                    continue
                if message_type == m.START:
                    start = message
                elif m.is_command(message_type) or m.is_notification(message_type):
                    entries.append((message_type, message))
                elif message_type == m.PROPOSE_RUN_COMPLETION and direction == "out":
                    proposals[message.result_completion_id] = message
                elif message_type == m.PROPOSE_RUN_COMPLETION_ACK and direction == "in":
                    # the runtime journaled the proposed result and acknowledged it: the ack
                    # stands for that run completion, at this place among the notifications
                    proposal = proposals.pop(message.completion_id, None)
                    if proposal is not None:
                        entries.append(_run_completion(proposal))
        if start is None:
            return
        try:
            version = int(content_type.rsplit(".v", 1)[1].split(";")[0])
        except (IndexError, ValueError):
            version = SIMULATED_PROTOCOL_VERSION
        invocation_id = start.debug_id
        with self._lock:
            first = self._first_start.setdefault(invocation_id, start)
            self._attempts[invocation_id] = self._attempts.get(invocation_id, 0) + 1
            self._journals[invocation_id] = Journal(service, handler, version, first, entries)

    def journals(self) -> list[Journal]:
        """Every recorded invocation's journal, in the order their last attempts ended."""
        with self._lock:
            return list(self._journals.values())

    def attempts(self, invocation_id: str) -> int:
        """How many attempts of ``invocation_id`` were recorded."""
        with self._lock:
            return self._attempts.get(invocation_id, 0)

    def journal(
        self, invocation_id: str | None = None, *, service: str | None = None, handler: str | None = None
    ) -> Journal:
        """The journal of ``invocation_id``, or of the one invocation of ``service``/``handler``."""
        with self._lock:
            if invocation_id is not None:
                found = self._journals.get(invocation_id)
                if found is None:
                    raise LookupError(f"no attempt of {invocation_id} was recorded")
                return found
            matches = [
                j
                for j in self._journals.values()
                if (service is None or j.service == service) and (handler is None or j.handler == handler)
            ]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} recorded invocations match; pass the invocation id")
        return matches[0]
