"""Robustness fuzzing of framing + VM with random and mutated protocol messages (hypothesis).

Whatever bytes the runtime side sends — valid journals, journals with flipped/inserted/deleted
bytes, wrong lengths and types, random payloads, cut at any point — the VM must never raise
anything but its own control flow (``InvocationFailedError`` after an ErrorMessage,
``SuspendedError`` after a suspension), and what it writes must be well-formed frames; once it
failed, its last frame is an ``ErrorMessage``.

CI runs a bounded number of examples; ``RESTATE_SYNC_FUZZ_EXAMPLES=N`` runs N (the long run,
see docs/protocol.md).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restate_sync.errors import InvocationFailedError, SuspendedError
from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder, encode_frame
from restate_sync.protocol.messages import pb
from restate_sync.protocol.vm import VM, Combinator, CombinatorKind, Failure, Phase, Progress, RetryPolicy

EXAMPLES = int(os.environ.get("RESTATE_SYNC_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize="RESTATE_SYNC_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _frame(message: Any, flags: int = 0) -> bytes:
    return encode_frame(m.MESSAGE_TYPES[type(message)], message.SerializeToString(), flags)


def _valid_parts() -> list[bytes]:
    """Frames a runtime really sends: a journal of every command and notification type."""
    start = pb.StartMessage(id=bytes(range(24)), debug_id="inv_1fuzz", known_entries=9, random_seed=3,
                            partial_state=True, key="k")  # fmt: skip
    start.state_map.add(key=b"a", value=b"1")
    inp = pb.InputCommandMessage()
    inp.value.content = b'"in"'
    inp.headers.add(key="h", value="v")
    run = pb.RunCommandMessage(result_completion_id=1, name="r")
    run_done = pb.RunCompletionNotificationMessage(completion_id=1)
    run_done.value.content = b"1"
    sleep = pb.SleepCommandMessage(wake_up_time=10, result_completion_id=2)
    sleep_done = pb.SleepCompletionNotificationMessage(completion_id=2)
    sleep_done.void.SetInParent()
    get = pb.GetLazyStateCommandMessage(key=b"k", result_completion_id=3)
    get_done = pb.GetLazyStateCompletionNotificationMessage(completion_id=3)
    get_done.value.content = b"v"
    call = pb.CallCommandMessage(service_name="S", handler_name="h", invocation_id_notification_idx=4,
                                 result_completion_id=5)  # fmt: skip
    call_id = pb.CallInvocationIdCompletionNotificationMessage(completion_id=4, invocation_id="inv_1x")
    keys = pb.GetLazyStateKeysCompletionNotificationMessage(completion_id=6)
    keys.state_keys.keys.extend([b"a", b"\xff"])
    sig = pb.SignalNotificationMessage(idx=17)
    sig.failure.code = 500
    named = pb.SignalNotificationMessage(name="n")
    named.value.content = b"x"
    cancel = pb.SignalNotificationMessage(idx=1)
    cancel.void.SetInParent()
    ack = pb.ProposeRunCompletionAckMessage(completion_id=7)
    return [_frame(x) for x in (start, inp, run, run_done, sleep, sleep_done, get, get_done, call, call_id,
                                keys, sig, named, cancel, ack)]  # fmt: skip


VALID = _valid_parts()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 8)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("length"), st.integers(0, 14), st.integers(0, 0xFFFFFFFF)),
    st.tuples(st.just("type"), st.integers(0, 14), st.integers(0, 0xFFFF)),
    st.tuples(st.just("flags"), st.integers(0, 14), st.integers(0, 0xFFFF)),
)


def _mutate(parts: list[bytes], mutations: list[Any]) -> bytes:
    parts = list(parts)
    for mut in mutations:
        kind = mut[0]
        if kind in ("length", "type", "flags") and parts:
            i = mut[1] % len(parts)
            head = bytearray(parts[i][:8].ljust(8, b"\x00"))
            if kind == "length":
                head[4:8] = mut[2].to_bytes(4, "big")
            elif kind == "type":
                head[0:2] = mut[2].to_bytes(2, "big")
            else:
                head[2:4] = mut[2].to_bytes(2, "big")
            parts[i] = bytes(head) + parts[i][8:]
    data = bytearray(b"".join(parts))
    for mut in mutations:
        kind = mut[0]
        if not data:
            break
        at = mut[1] % (len(data) + 1) if kind != "flip" else mut[1] % len(data)
        if kind == "flip":
            data[at] ^= mut[2]
        elif kind == "insert":
            data[at:at] = mut[2]
        elif kind == "delete":
            del data[at : at + mut[2]]
        elif kind == "truncate":
            del data[at:]
    return bytes(data)


streams = st.one_of(
    # a valid journal (a random selection in order), mutated
    st.builds(
        _mutate,
        st.lists(st.sampled_from(VALID), min_size=1, max_size=12).map(lambda ps: [VALID[0], VALID[1], *ps]),
        st.lists(mutation, max_size=4),
    ),
    # random frames of random types with random payloads
    st.lists(
        st.builds(encode_frame, st.integers(0, 0xFFFF), st.binary(max_size=40), st.sampled_from([0, 0x8000])),
        max_size=6,
    ).map(lambda fs: VALID[0] + b"".join(fs)),
    # bytes
    st.binary(max_size=200),
)


def _drive(vm: VM, data: bytes, chunks: list[int], eof: bool, ops: list[int]) -> None:
    """Feed ``data`` in ``chunks``, then act like a handler; only VM control flow may escape."""
    offset = 0
    for size in chunks:
        vm.notify_input(data[offset : offset + size])
        offset += size
    vm.notify_input(data[offset:])
    if eof:
        vm.notify_input_closed()
    if not vm.is_ready or vm.is_closed:
        return
    handles: list[Any] = []
    try:
        vm.sys_input()
        for op in ops:
            kind = op % 9
            if kind == 0:
                handles.append(vm.sys_run("r"))
            elif kind == 1:
                handles.append(vm.sys_sleep(10))
            elif kind == 2:
                handles.append(vm.sys_get_state("k"))
            elif kind == 3:
                handles.append(vm.sys_call("S", "h", b"")[1])
            elif kind == 4:
                handles.append(vm.sys_awakeable()[1])
            elif kind == 5:
                handles.append(vm.sys_get_state_keys())
            elif kind == 6 and handles:
                tree = Combinator(CombinatorKind.FIRST_COMPLETED, tuple(handles))
                progress = vm.do_progress(tree)
                if progress is Progress.EXECUTE_RUN:
                    assert vm.run_to_execute is not None
                    if op % 2:
                        vm.propose_run_completion(vm.run_to_execute, b"ok")
                    else:
                        vm.propose_run_retryable_failure(
                            vm.run_to_execute, "boom", policy=RetryPolicy(max_attempts=2)
                        )
            elif kind == 7 and handles:
                handle = handles[op % len(handles)]
                if vm.is_completed(handle):
                    vm.take(handle)
            elif kind == 8:
                vm.notify_input(data[: op % (len(data) + 1)])
        vm.sys_write_output(Failure(500, "x") if ops and ops[0] % 2 else b"out")
        vm.sys_end()
    except (InvocationFailedError, SuspendedError):
        pass


def _check_output(vm: VM, written: bytes) -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(written)
    assert decoder.pending == 0, "the VM wrote a partial frame"
    for message_type, _flags, payload in frames:
        assert message_type in m.MESSAGE_CLASSES
        m.MESSAGE_CLASSES[message_type].FromString(payload)  # well-formed
    if vm.failure is not None:
        assert vm.phase is Phase.CLOSED
        assert frames and frames[-1][0] == m.ERROR, "a failed VM ends its output with an ErrorMessage"


@pytest.mark.parametrize("version", [5, 6, 7])
@SETTINGS
@given(
    data=streams,
    chunks=st.lists(st.integers(1, 64), max_size=8),
    eof=st.booleans(),
    ops=st.lists(st.integers(0, 1000), max_size=12),
)
def test_random_and_mutated_input_never_raises(version: int, data: bytes, chunks: list[int], eof: bool,
                                               ops: list[int]) -> None:  # fmt: skip
    vm = VM(version, max_message_size=4096)
    _drive(vm, data, chunks, eof, ops)
    _check_output(vm, vm.take_output())
