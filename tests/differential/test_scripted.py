"""Scripted scenarios over the whole VM surface, run on restate_sync's VM and the shared core.

Two kinds of scenario:

* **programs** (a handler's operations): run fresh against the simulated runtime (answers in
  arrival order and in reverse), then replayed from the journal that run produced at *every*
  journal length, with the input closed (so every missing result suspends);
* **raw steps**: byte-level input the runtime could send, including protocol violations.

Every record of every step (outcome, frames written after masking, see runner.MASKED_FIELDS)
must agree, or the difference must be one of expected.EXPECTED_DIFFERENCES.
"""

from __future__ import annotations

from typing import Any

import pytest

from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import encode_frame
from restate_sync.protocol.messages import pb

from .conftest import shared_versions
from .drivers import Fail, Policy
from .expected import BY_ID, explained
from .programs import (
    Runtime,
    execute,
    frames,
    input_message,
    journal_bytes,
    notification,
    signal,
    start_message,
    transient,
)
from .runner import Step, compare

VERSIONS = shared_versions()
FRESH = frames(start_message(1), input_message())


def assert_same(steps: list[Step], version: int, expected: str | None = None) -> None:
    comparison = compare(steps, version)
    if expected is None:
        if comparison.first_difference is not None and explained(comparison) is BY_ID["run-choice"]:
            return  # the core picked another of the runs it may start (see expected.py)
        assert comparison.first_difference is None, "VMs differ:\n" + comparison.report()
        return
    assert comparison.first_difference is not None, f"expected difference {expected!r} no longer shows"
    i = comparison.first_difference
    assert BY_ID[expected].matches(comparison.ours[i], comparison.core[i]), (
        f"a difference other than {expected!r}:\n" + comparison.report()
    )


# ---------------------------------------------------------------------- programs

PROGRAMS: dict[str, list[Any]] = {
    "greeter": [("run", "r", "greet", ("ok", b'"Hello"')), ("await", ("single", "r")), ("take", "r")],
    "sleep-and-call": [
        ("sleep", "s", 100, "nap"),
        ("call", "c", "Svc", "h", b'"x"', None, None, (("h1", "v1"),)),
        ("await", ("all", [("single", "s"), ("single", "c")])),
        ("take", "s"),
        ("take", "c"),
        ("take", "c.id"),
    ],
    "lazy-state": [
        ("get_state", "g", "k"),
        ("await", ("single", "g")),
        ("take", "g"),
        ("set_state", "k", b"1"),
        ("get_state", "h", "k"),
        ("take", "h"),
        ("get_state_keys", "ks"),
        ("await", ("single", "ks")),
        ("take", "ks"),
        ("clear_state", "k"),
        ("get_state", "i", "k"),
        ("take", "i"),
        ("clear_all_state",),
        ("get_state", "j", "other"),
        ("take", "j"),
        ("set_state", "z", b"2"),
        ("get_state_keys", "ks2"),
        ("take", "ks2"),
    ],
    "awakeables-and-signals": [
        ("awakeable", "a"),
        ("awakeable", "b"),
        ("signal", "n", "go"),
        ("runtime", signal(idx=18, result=b'"b-value"')),
        ("runtime", signal(name="go", result=Fail(500, "rejected"))),
        ("runtime", signal(idx=17, result=None)),
        ("await", ("first", [("single", "a"), ("single", "b")])),
        ("take", "b"),
        ("await", ("single", "n")),
        ("take", "n"),
        ("await", ("single", "a")),
        ("take", "a"),
        ("complete_awakeable", "sign_1other", b'"v"'),
        ("complete_awakeable", "sign_1other2", Fail(400, "no")),
        ("complete_signal", "inv_1target", "sig", b'"v"'),
        ("complete_signal", "inv_1target", "sig2", Fail(401, "no")),
    ],
    "promises": [
        ("get_promise", "p", "pk"),
        ("peek_promise", "q", "pk"),
        ("complete_promise", "r", "pk2", b'"v"'),
        ("complete_promise", "t", "pk3", Fail(500, "bad")),
        ("await", ("all", [("single", "p"), ("single", "q"), ("single", "r"), ("single", "t")])),
        ("take", "p"),
        ("take", "q"),
        ("take", "r"),
        ("take", "t"),
    ],
    "sends-attach-cancel": [
        ("send", "s1", "Svc", "h", b'"a"', None, None, None),
        ("send", "s2", "Obj", "h", b'"b"', "key-1", 5000, "idem-1", (("x", "y"),)),
        ("attach", "at", "inv_1other"),
        ("await", ("single", "s2")),
        ("take", "s2"),
        ("cancel", "inv_1somebody"),
        ("await", ("single", "at")),
        ("take", "at"),
    ],
    "run-failures": [
        ("run", "r1", "terminal", ("ok", Fail(409, "nope", (("k", "v"),)))),
        ("await", ("single", "r1")),
        ("take", "r1"),
        ("run", "r2", "exhausted", transient(code=503, policy=Policy(max_attempts=1))),
        ("await", ("single", "r2")),
        ("take", "r2"),
        ("run", "r3", "duration", transient(duration=100, policy=Policy(max_duration=50))),
        ("await", ("single", "r3")),
        ("take", "r3"),
    ],
    "run-retries": [
        ("run", "r1", "flaky", transient(policy=Policy(initial_interval=100, factor=3.0, max_attempts=5))),
        ("await", ("single", "r1")),
    ],
    "run-infinite-retry": [("run", "r1", "flaky", transient()), ("await", ("single", "r1"))],
    "races": [
        ("sleep", "s1", 10),
        ("awakeable", "a"),
        ("sleep", "s2", 20),
        ("run", "r", "work", ("ok", b"1")),
        ("await", ("first", [("single", "a"), ("all", [("single", "s1"), ("single", "r")])])),
        ("await", ("all", [("single", "s2"), ("first", [("single", "s1"), ("single", "a")])])),
        ("take", "s1"),
        ("take", "s2"),
        ("take", "r"),
    ],
    "concurrent-runs": [
        ("run", "r1", "one", ("ok", b"1")),
        ("run", "r2", "two", ("ok", b"2")),
        ("await", ("all", [("single", "r1"), ("single", "r2")])),
        ("take", "r1"),
        ("take", "r2"),
    ],
    "cancelled": [
        ("call", "c", "Svc", "h", b'"x"'),
        ("runtime", signal(idx=1, result=None)),
        ("sleep", "s", 10),
        ("await", ("single", "s")),
        ("await", ("single", "c")),
    ],
    "failure-metadata": [("output", Fail(400, "bad input", (("field", "name"),)))],
}


def _runtime(version: int) -> Runtime:
    runtime = Runtime(version)
    runtime.lazy_state = {b"k": b"lazy", b"other": b"x"}
    return runtime


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
@pytest.mark.parametrize("order", ["arrival", "reverse"])
def test_program_fresh_then_replayed_at_every_length(name: str, version: int, order: str) -> None:
    program = PROGRAMS[name]
    runtime = _runtime(version)
    choose = (lambda n: 0) if order == "arrival" else (lambda n: n - 1)
    fresh = execute(program, version, FRESH, runtime=runtime, choose=choose)
    assert_same(fresh.steps, version)
    journal = runtime.journal
    for length in range(1, len(journal) + 2):
        replay = execute(program, version, journal_bytes(journal, length), close_after_prefix=True)
        assert_same(replay.steps, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_journal_split_at_every_byte(version: int) -> None:
    runtime = _runtime(version)
    program = PROGRAMS["races"] + PROGRAMS["promises"]
    execute(program, version, FRESH, runtime=runtime)
    data = journal_bytes(runtime.journal, len(runtime.journal) + 1)
    tail = execute(program, version, data, close_after_prefix=True).steps[3:]  # after feed, close, ready
    assert tail and tail[0] == ("input",)
    for split in range(1, len(data)):
        steps: list[Step] = [
            ("feed", data[:split]),
            ("ready",),
            ("feed", data[split:]),
            ("close",),
            ("ready",),
        ]
        assert_same(steps + tail, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_notifications_split_at_every_byte_while_processing(version: int) -> None:
    live = frames(
        signal(idx=17, result=b'"a"'),
        notification(pb.SleepCompletionNotificationMessage, 1, None),
        signal(name="n", result=Fail(500, "x")),
    )
    for split in range(1, len(live)):
        steps: list[Step] = [
            ("feed", FRESH),
            ("input",),
            ("awakeable", "a"),
            ("sleep", "s", 1),
            ("signal", "n", "n"),
            ("feed", live[:split]),
            ("await", ("all", [("single", "a"), ("single", "s"), ("single", "n")])),
            ("feed", live[split:]),
            ("await", ("all", [("single", "a"), ("single", "s"), ("single", "n")])),
            ("take", "a"),
            ("take", "s"),
            ("take", "n"),
        ]
        assert_same(steps, version)


# ---------------------------------------------------------------------- raw steps


def _raw(version: int) -> dict[str, list[Step]]:
    getl = pb.GetLazyStateCommandMessage(key=b"my-key", result_completion_id=1, name="read")
    run = pb.RunCommandMessage(result_completion_id=1, name="step")
    setst = pb.SetStateCommandMessage(key=b"k", name="write")
    setst.value.content = b"old"
    sleep = pb.SleepCommandMessage(wake_up_time=5, result_completion_id=1, name="nap")
    send = pb.OneWayCallCommandMessage(
        service_name="S", handler_name="h", parameter=b"p", invoke_time=5, invocation_id_notification_idx=1
    )
    return {
        "mismatch-key": [("feed", frames(start_message(2), input_message(), getl)), ("close",), ("input",),
                         ("get_state", "g", "another-key")],
        "mismatch-type": [("feed", frames(start_message(2), input_message(), run)), ("close",), ("input",),
                          ("sleep", "s", 10, "nap")],
        "mismatch-name": [("feed", frames(start_message(2), input_message(), run)), ("close",), ("input",),
                          ("run", "r", "other-step")],
        "mismatch-value": [("feed", frames(start_message(2), input_message(), setst)), ("close",), ("input",),
                           ("set_state", "k", b"new")],
        "no-mismatch-on-times": [("feed", frames(start_message(3), input_message(), sleep, send)), ("close",),
                                 ("input",), ("sleep", "s", 999, "nap"), ("send", "x", "S", "h", b"p"),
                                 ("await", ("single", "s"))],
        "mismatch-send-parameter": [("feed", frames(start_message(2), input_message(), send)), ("close",),
                                    ("input",), ("send", "x", "S", "h", b"q")],
        "added-await": [("feed", frames(start_message(4), input_message(), run, sleep,
                                        notification(pb.SleepCompletionNotificationMessage, 1, None))),
                        ("close",), ("input",), ("run", "r", "step"), ("await", ("single", "r"))],
        "end-with-journal-left": [("feed", frames(start_message(2), input_message(), run)), ("close",),
                                  ("input",), ("end",)],
        "output-replayed": [("feed", frames(start_message(2), input_message(), _output(b"x"))), ("close",),
                            ("input",), ("output", b"x"), ("end",)],
        "output-mismatch": [("feed", frames(start_message(2), input_message(), _output(b"x"))), ("close",),
                            ("input",), ("output", b"y")],
        "eof-mid-replay": [("feed", frames(start_message(3), input_message())), ("ready",), ("close",),
                           ("ready",)],
        "eof-before-start": [("close",), ("ready",)],
        "known-entries-zero": [("feed", frames(start_message(0))), ("ready",)],
        "journal-without-commands": [("feed", frames(start_message(2), signal(idx=17, result=None),
                                                     signal(name="n", result=b"v"))), ("ready",), ("input",)],
        "journal-without-input": [("feed", frames(start_message(1), run)), ("ready",), ("input",)],
        "bad-eager-key": [("feed", _bad_eager_key()), ("ready",)],
        "lossy-state-keys": [("feed", FRESH), ("input",), ("get_state_keys", "ks"),
                             ("feed", frames(notification(pb.GetLazyStateKeysCompletionNotificationMessage, 1,
                                                          ("keys", [b"ok", b"\xff\xfe"])))),
                             ("await", ("single", "ks")), ("take", "ks")],
        "notification-without-id": [("feed", FRESH + frames(pb.SleepCompletionNotificationMessage())),
                                    ("ready",)],
        "notification-without-result": [("feed", FRESH + frames(pb.CallCompletionNotificationMessage(
            completion_id=2))), ("ready",)],
        "unknown-notification-type": [("feed", FRESH), ("input",), ("sleep", "s", 1),
                                      ("feed", encode_frame(0x8FFF, notification(
                                          pb.SleepCompletionNotificationMessage, 1, None).SerializeToString())),
                                      ("await", ("single", "s"))],
        "malformed-start": [("feed", encode_frame(m.START, b"\xff\xff\xff")), ("ready",)],
        "malformed-notification": [("feed", FRESH), ("input",), ("sleep", "s", 1),
                                   ("feed", encode_frame(m.SLEEP_COMPLETION, b"\x0a\xff")), ("await",
                                                                                        ("single", "s"))],
        "notification-before-start": [("feed", frames(signal(idx=17, result=None))), ("ready",)],
        "command-while-processing": [("feed", FRESH), ("input",), ("feed", frames(run)), ("ready",)],
        "run-ack-unknown": [("feed", FRESH), ("input",),
                            ("feed", frames(pb.ProposeRunCompletionAckMessage(completion_id=99))), ("ready",)],
        "run-ack-while-replaying": [("feed", frames(start_message(2), input_message(), run,
                                                    pb.ProposeRunCompletionAckMessage(completion_id=1))),
                                    ("ready",)],
        "empty-idempotency-key": [("feed", FRESH), ("input",), ("call", "c", "S", "h", b"", None, "")],
        "notify-error": [("feed", FRESH), ("input",), ("notify_error", "user failure", "at line 1", 2500)],
        "syscall-after-end": [("feed", FRESH), ("close",), ("input",), ("output", b"x"), ("end",),
                              ("sleep", "s", 1), ("end",)],
        "run-executing-outside-the-await": [("feed", FRESH), ("input",), ("run", "r", "bg"),
                                            ("sleep", "s", 1), ("await", ("single", "r")), ("close",),
                                            ("await", ("single", "s"))],
        "run-executing-inside-the-await": [("feed", FRESH), ("input",), ("run", "r", "bg"),
                                           ("await", ("single", "r")), ("close",), ("await", ("single", "r")),
                                           ("propose", "r", b"v"), ("await", ("single", "r"))],
        "retry-info-from-start": [("feed", frames(start_message(2, retry_count=2, duration_ms=300),
                                                  input_message(), run)),
                                  ("input",), ("run", "r", "step"), ("await", ("single", "r")),
                                  ("propose_transient", "r", 500, "boom", "t", 10, Policy(max_attempts=3))],
        "retry-info-reset-by-new-command": [("feed", frames(start_message(2, retry_count=2, duration_ms=300),
                                                            input_message(), run)),
                                            ("input",), ("run", "r", "step"), ("sleep", "s", 1),
                                            ("await", ("single", "r")),
                                            ("propose_transient", "r", 500, "boom", "t", 10,
                                             Policy(max_attempts=3))],
        "cancel-call-id-unknown": [("feed", FRESH), ("input",), ("call", "c", "S", "h", b""),
                                   ("feed", frames(signal(idx=1, result=None))), ("close",),
                                   ("await", ("single", "c"))],
        "cancel-call-id-taken-before": [("feed", FRESH), ("input",), ("call", "c", "S", "h", b""),
                                        ("feed", frames(notification(
                                            pb.CallInvocationIdCompletionNotificationMessage, 1,
                                            ("id", "inv_1child")))),
                                        ("await", ("single", "c.id")), ("take", "c.id"),
                                        ("feed", frames(signal(idx=1, result=None))),
                                        ("await", ("single", "c"))],
        "cancel-replayed": [("feed", frames(start_message(5), input_message(),
                                            _call(1, 2), notification(
                                                pb.CallInvocationIdCompletionNotificationMessage, 1,
                                                ("id", "inv_1a")),
                                            signal(idx=1, result=None), _cancel("inv_1a"))),
                            ("close",), ("input",), ("call", "c", "S", "h", b""), ("await", ("single", "c")),
                            ("output", Fail(409, "cancelled")), ("end",)],
        "cancel-without-implicit-child": [("feed", FRESH), ("input",), ("send", "s", "S", "h", b""),
                                          ("feed", frames(signal(idx=1, result=None))),
                                          ("await", ("single", "s"))],
        "input-headers-and-v7-start-fields": [
            ("feed", frames(start_message(1, scope="sc", limit_key="lk", idempotency_key="ik", key="obj"),
                            input_message(b"in", (("a", "1"), ("B", "2"))))),
            ("input",),
        ],
        "eager-state-complete": [("feed", frames(start_message(1, state={"a": b"1", "b": b"2"}, partial=False),
                                                 input_message())),
                                 ("input",), ("get_state", "g", "a"), ("take", "g"), ("get_state", "h", "zz"),
                                 ("take", "h"), ("get_state_keys", "k"), ("take", "k"), ("set_state", "c", b"3"),
                                 ("get_state_keys", "k2"), ("take", "k2")],
        "eager-state-partial": [("feed", frames(start_message(1, state={"a": b"1"}), input_message())),
                                ("input",), ("get_state", "g", "a"), ("take", "g"), ("get_state", "h", "zz"),
                                ("is_completed", "h"), ("get_state_keys", "k"), ("is_completed", "k")],
        "replayed-eager-get-ignores-map": [("feed", frames(start_message(2, state={"k": b"456"}),
                                                           input_message(), _eager(b"k", b"123"))),
                                           ("input",), ("get_state", "g", "k"), ("take", "g")],
    } | (
        {
            "scope-and-limit-key": [("feed", FRESH), ("input",),
                                    ("call", "c", "S", "h", b"p", None, None, (), "sc", "lk"),
                                    ("send", "d", "S", "h", b"p", None, None, None, (), "sc", None),
                                    ("call", "e", "S", "h", b"p", None, None, (), None, "lk")],
            "empty-scope": [("feed", FRESH), ("input",), ("call", "c", "S", "h", b"p", None, None, (), "", None)],
            "empty-limit-key": [("feed", FRESH), ("input",),
                                ("send", "c", "S", "h", b"p", None, None, None, (), "s", "")],
        }
        if version >= 7
        else {
            "scope-needs-v7": [("feed", FRESH), ("input",), ("call", "c", "S", "h", b"p", None, None, (), "sc")],
            "limit-key-needs-v7": [("feed", FRESH), ("input",),
                                   ("send", "c", "S", "h", b"p", None, None, None, (), None, "lk")],
        }
    )  # fmt: skip


def _output(value: bytes) -> Any:
    message = pb.OutputCommandMessage()
    message.value.content = value
    return message


def _eager(key: bytes, value: bytes) -> Any:
    message = pb.GetEagerStateCommandMessage(key=key)
    message.value.content = value
    return message


def _call(inv: int, cid: int) -> Any:
    return pb.CallCommandMessage(
        service_name="S", handler_name="h", invocation_id_notification_idx=inv, result_completion_id=cid
    )


def _cancel(target: str) -> Any:
    message = pb.SendSignalCommandMessage(target_invocation_id=target, idx=1)
    message.void.SetInParent()
    return message


def _bad_eager_key() -> bytes:
    start = start_message(1)
    start.state_map.add(key=b"\xff\xfe", value=b"v")
    return frames(start, input_message())


RAW_CASES = [(name, version) for version in VERSIONS for name in sorted(_raw(version))]


@pytest.mark.parametrize(("name", "version"), RAW_CASES)
def test_raw_steps(name: str, version: int) -> None:
    assert_same(_raw(version)[name], version)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("message_type", [0x0001, 0x0002, 0x0003, 0x0004, 0x0005, 0x0006, 0x0007, 0x0008,
                                          0x03FF, 0x0999, 0x7FFF, 0x8FFF, 0xFBFF, 0xFC01, 0xFFFF])  # fmt: skip
@pytest.mark.parametrize("phase", ["before-start", "waiting-for-journal", "processing"])
def test_every_message_type_in_every_phase(message_type: int, phase: str, version: int) -> None:
    raw = encode_frame(message_type, b"")
    if phase == "before-start":
        steps: list[Step] = [("feed", raw), ("ready",)]
    elif phase == "waiting-for-journal":
        steps = [("feed", frames(start_message(3), input_message()) + raw), ("ready",)]
    else:
        steps = [("feed", FRESH), ("input",), ("feed", raw), ("sleep", "s", 1), ("await", ("single", "s"))]
    assert_same(steps, version)


# ---------------------------------------------------------------------- deliberate differences


@pytest.mark.parametrize("version", VERSIONS)
def test_expected_difference_eof_inside_a_frame(version: int) -> None:
    cut = frames(signal(idx=17, result=b'"abc"'))[:-2]
    steps: list[Step] = [("feed", FRESH), ("input",), ("feed", cut), ("close",)]
    assert_same(steps, version, expected="eof-inside-a-frame")


@pytest.mark.parametrize("version", VERSIONS)
def test_expected_difference_cleared_keys_not_listed(version: int) -> None:
    steps: list[Step] = [
        ("feed", frames(start_message(1, state={"a": b"1", "b": b"2"}, partial=False), input_message())),
        ("input",),
        ("clear_state", "a"),
        ("get_state_keys", "k"),
    ]
    assert_same(steps, version, expected="cleared-keys-not-listed")


@pytest.mark.parametrize("version", VERSIONS)
def test_expected_difference_second_start_message(version: int) -> None:
    assert_same(
        [("feed", FRESH + frames(start_message(1))), ("ready",)], version, expected="second-start-message"
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_expected_difference_closed_by_suspension(version: int) -> None:
    steps: list[Step] = [("feed", FRESH), ("close",), ("input",), ("sleep", "s", 1), ("await", ("single", "s")),
                         ("sleep", "t", 1)]  # fmt: skip
    assert_same(steps, version, expected="closed-by-suspension")
