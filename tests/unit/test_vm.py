"""The sans-I/O VM fed real protocol bytes (the scenarios of the shared core's own tests, restatedev/sdk-shared-core src/tests)."""

import pytest

from restate_sync.errors import InvocationFailedError, SuspendedError
from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder, encode_frame
from restate_sync.protocol.messages import pb
from restate_sync.protocol.vm import (
    VM,
    VOID,
    Combinator,
    CombinatorKind,
    ErrorBehavior,
    Failure,
    Phase,
    Progress,
    RetryPolicy,
)

from .vmkit import RAW_ID, completion, frame, input_command, kinds, new_vm, signal, start, written


def output_value(msg):
    return msg.value.content


# ---------------------------------------------------------------- basics


def test_echo():
    vm = new_vm(start(1), input_command(b"my-data"), eof=True)
    assert vm.is_ready
    inp = vm.sys_input()
    assert inp.input == b"my-data"
    assert inp.invocation_id == "inv_1test"
    vm.sys_write_output(inp.input)
    vm.sys_end()
    out = written(vm)
    assert kinds(out) == ["OutputCommandMessage", "EndMessage"]
    assert output_value(out[0]) == b"my-data"
    assert vm.is_closed


def test_output_already_journaled_writes_only_end():
    out_cmd = pb.OutputCommandMessage()
    out_cmd.value.content = b"my-data"
    vm = new_vm(start(2), input_command(), out_cmd, eof=True)
    vm.sys_input()
    assert vm.is_replaying
    vm.sys_write_output(b"my-data")
    vm.sys_end()
    assert kinds(written(vm)) == ["EndMessage"]


def test_headers_come_out_unchanged():
    vm = new_vm(start(1), input_command(headers={"x-a": "1", "X-B": "two"}))
    assert vm.sys_input().headers == [("x-a", "1"), ("X-B", "two")]


def test_ready_only_after_known_entries_even_when_split_at_every_byte():
    messages = [
        start(2),
        input_command(b"abc"),
        completion(pb.SleepCompletionNotificationMessage, 1, void=True),
    ]
    data = b"".join(frame(x) for x in messages)
    vm = VM(6)
    for i in range(len(data)):
        assert not vm.is_ready
        vm.notify_input(data[i : i + 1])
    assert vm.is_ready


def test_v5_derives_the_random_seed_from_the_id():
    import hashlib

    vm = new_vm(start(1, seed=0), input_command(), version=5)
    expected = int.from_bytes(hashlib.sha256(RAW_ID).digest()[:8], "big")
    assert vm.sys_input().random_seed == expected
    vm6 = new_vm(start(1, seed=1234), input_command())
    assert vm6.sys_input().random_seed == 1234


# ---------------------------------------------------------------- sleep / suspension


def test_new_sleep_with_input_closed_suspends():
    vm = new_vm(start(1), input_command(), eof=True)
    vm.sys_input()
    handle = vm.sys_sleep(1000)
    with pytest.raises(SuspendedError):
        vm.do_progress(handle)
    out = written(vm)
    assert kinds(out) == ["SleepCommandMessage", "SuspensionMessage"]
    assert out[0].result_completion_id == 1 and out[0].wake_up_time == 1000
    assert list(out[1].waiting_completions) == [1]
    assert list(out[1].waiting_signals) == [1]


def test_replayed_completed_sleep_writes_nothing_for_it():
    sleep = pb.SleepCommandMessage(wake_up_time=5, result_completion_id=1)
    vm = new_vm(
        start(3),
        input_command(),
        sleep,
        completion(pb.SleepCompletionNotificationMessage, 1, void=True),
        eof=True,
    )
    vm.sys_input()
    handle = vm.sys_sleep(999_999)  # wake-up time is not compared on replay
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED
    assert vm.take(handle) is VOID
    vm.sys_write_output(b"")
    vm.sys_end()
    assert kinds(written(vm)) == ["OutputCommandMessage", "EndMessage"]


def test_replayed_sleep_not_completed_suspends_without_rewriting():
    sleep = pb.SleepCommandMessage(wake_up_time=5, result_completion_id=1)
    vm = new_vm(start(2), input_command(), sleep, eof=True)
    vm.sys_input()
    handle = vm.sys_sleep(5)
    with pytest.raises(SuspendedError):
        vm.do_progress(handle)
    assert kinds(written(vm)) == ["SuspensionMessage"]
    with pytest.raises(SuspendedError):
        vm.sys_sleep(10)  # every later syscall reports the suspension again


def test_waiting_with_input_open_then_completion_arrives():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_sleep(10)
    assert vm.do_progress(handle) is Progress.WAITING
    vm.notify_input(frame(completion(pb.SleepCompletionNotificationMessage, 1, void=True)))
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED


def test_two_awakeables_await_second_suspends_on_its_signal():
    vm = new_vm(start(1), input_command(), eof=True)
    vm.sys_input()
    id1, h1 = vm.sys_awakeable()
    id2, h2 = vm.sys_awakeable()
    assert (h1, h2) == (-17, -18)
    assert id1.startswith("sign_1") and len(id1) == 44 and id1 != id2
    with pytest.raises(SuspendedError):
        vm.do_progress(h2)
    (susp,) = written(vm)
    assert sorted(susp.waiting_signals) == [1, 18]
    assert list(susp.waiting_completions) == []


def test_notification_then_eof_completes_without_suspension():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    _, h17 = vm.sys_awakeable()
    _, h18 = vm.sys_awakeable()
    tree = Combinator(CombinatorKind.FIRST_COMPLETED, (h17, h18))
    assert vm.do_progress(tree) is Progress.WAITING
    vm.notify_input(frame(signal(idx=18, value=b"v")))
    vm.notify_input_closed()
    assert vm.do_progress(tree) is Progress.ANY_COMPLETED
    assert vm.is_completed(h18) and not vm.is_completed(h17)
    assert vm.take(h18) == b"v"


def test_combinator_replay_then_new_entry():
    s1 = pb.SleepCommandMessage(result_completion_id=1)
    s2 = pb.SleepCommandMessage(result_completion_id=2)
    s3 = pb.SleepCommandMessage(result_completion_id=3)
    vm = new_vm(
        start(5),
        input_command(),
        s1,
        s2,
        completion(pb.SleepCompletionNotificationMessage, 2, void=True),
        s3,
        eof=True,
    )
    vm.sys_input()
    a, b = vm.sys_sleep(1), vm.sys_sleep(1)
    assert vm.do_progress(Combinator(CombinatorKind.FIRST_COMPLETED, (a, b))) is Progress.ANY_COMPLETED
    assert vm.is_completed(b) and not vm.is_completed(a)
    c = vm.sys_sleep(1)
    assert vm.phase is Phase.PROCESSING
    with pytest.raises(SuspendedError):
        vm.do_progress(c)
    (susp,) = written(vm)
    assert list(susp.waiting_completions) == [3]


def test_pop_one_notification_at_a_time():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    _, h17 = vm.sys_awakeable()
    _, h18 = vm.sys_awakeable()
    vm.notify_input(frame(signal(idx=18, value=b"b")) + frame(signal(idx=17, value=b"a")))
    assert vm.do_progress(Combinator(CombinatorKind.FIRST_COMPLETED, (h17, h18))) is Progress.ANY_COMPLETED
    assert vm.is_completed(h18) and not vm.is_completed(h17)


def test_shrinking_suspension_for_all_completed():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handles = [vm.sys_awakeable()[1] for _ in range(3)]
    tree = Combinator(CombinatorKind.ALL_COMPLETED, tuple(handles))
    vm.notify_input(frame(signal(idx=17, value=b"a")) + frame(signal(idx=18, value=b"b")))
    vm.notify_input_closed()
    with pytest.raises(SuspendedError):
        vm.do_progress(tree)
    (susp,) = written(vm)
    assert sorted(susp.waiting_signals) == [1, 19]


# ---------------------------------------------------------------- calls


def test_call_ids_and_out_of_order_completions():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    id1, r1 = vm.sys_call("Svc", "h", b"1")
    id2, r2 = vm.sys_call("Svc", "h", b"2", key="k", idempotency_key="idem", headers=[("a", "b")])
    assert (id1, r1, id2, r2) == (1, 2, 3, 4)
    out = written(vm)
    assert [c.invocation_id_notification_idx for c in out] == [1, 3]
    assert [c.result_completion_id for c in out] == [2, 4]
    assert out[1].idempotency_key == "idem" and not out[0].HasField("idempotency_key")
    vm.notify_input(
        frame(completion(pb.CallCompletionNotificationMessage, 4, value=b"two"))
        + frame(completion(pb.CallCompletionNotificationMessage, 2, value=b"one"))
    )
    assert vm.do_progress(r1) is Progress.ANY_COMPLETED
    assert vm.take(r1) == b"one"
    assert vm.do_progress(r2) is Progress.ANY_COMPLETED
    assert vm.take(r2) == b"two"


def test_await_second_call_suspends_on_its_result():
    vm = new_vm(start(1), input_command(), eof=True)
    vm.sys_input()
    vm.sys_call("Svc", "h", b"")
    _, r2 = vm.sys_call("Svc", "h", b"")
    with pytest.raises(SuspendedError):
        vm.do_progress(r2)
    susp = written(vm)[-1]
    assert list(susp.waiting_completions) == [4]


def test_empty_idempotency_key_is_an_error_and_no_command():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    with pytest.raises(InvocationFailedError):
        vm.sys_call("Svc", "h", b"", idempotency_key="")
    (err,) = written(vm)
    assert type(err).__name__ == "ErrorMessage" and err.code == 500


def test_cancel_a_child_call():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    inv, _ = vm.sys_call("Svc", "h", b"")
    vm.notify_input(
        frame(completion(pb.CallInvocationIdCompletionNotificationMessage, 1, invocation_id="my-id"))
    )
    assert vm.do_progress(inv) is Progress.ANY_COMPLETED
    vm.sys_cancel_invocation(vm.take(inv))
    out = written(vm)
    assert kinds(out) == ["CallCommandMessage", "SendSignalCommandMessage"]
    assert out[1].target_invocation_id == "my-id" and out[1].idx == 1 and out[1].HasField("void")


def test_cancellation_signal_cancels_children_then_reports_once():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    inv, result = vm.sys_call("Svc", "h", b"")
    vm.notify_input(
        frame(completion(pb.CallInvocationIdCompletionNotificationMessage, inv, invocation_id="child"))
        + frame(signal(idx=1, void=True))
    )
    assert vm.do_progress(result) is Progress.CANCELLED
    out = written(vm)
    assert kinds(out) == ["CallCommandMessage", "SendSignalCommandMessage"]
    assert out[1].target_invocation_id == "child"
    # delivered once: a later await proceeds normally
    sleep = vm.sys_sleep(1)
    assert vm.do_progress(sleep) is Progress.WAITING


def test_cancellation_with_unknown_child_id_suspends_on_it():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    _, result = vm.sys_call("Svc", "h", b"")
    vm.notify_input(frame(signal(idx=1, void=True)))
    vm.notify_input_closed()
    with pytest.raises(SuspendedError):
        vm.do_progress(result)
    susp = written(vm)[-1]
    assert list(susp.waiting_completions) == [1] and list(susp.waiting_signals) == []


# ---------------------------------------------------------------- state


def test_complete_eager_map_without_key_writes_void_gets():
    vm = new_vm(start(1, partial_state=False), input_command())
    vm.sys_input()
    h1 = vm.sys_get_state("key-0")
    h2 = vm.sys_get_state("key-0")
    assert vm.take(h1) is VOID and vm.take(h2) is VOID
    out = written(vm)
    assert kinds(out) == ["GetEagerStateCommandMessage"] * 2
    assert all(o.HasField("void") for o in out)


def test_state_in_map_set_and_get():
    vm = new_vm(start(1, partial_state=True, state={"STATE": b"Francesco"}), input_command())
    vm.sys_input()
    assert vm.take(vm.sys_get_state("STATE")) == b"Francesco"
    vm.sys_set_state("STATE", b"FrancescoTill")
    assert vm.take(vm.sys_get_state("STATE")) == b"FrancescoTill"
    out = written(vm)
    assert kinds(out) == [
        "GetEagerStateCommandMessage",
        "SetStateCommandMessage",
        "GetEagerStateCommandMessage",
    ]
    assert out[2].value.content == b"FrancescoTill"


def test_partial_map_missing_key_goes_lazy_then_eager_after_set():
    vm = new_vm(start(1, partial_state=True), input_command())
    vm.sys_input()
    handle = vm.sys_get_state("k")
    (lazy,) = written(vm)
    assert type(lazy).__name__ == "GetLazyStateCommandMessage" and lazy.result_completion_id == 1
    vm.notify_input(frame(completion(pb.GetLazyStateCompletionNotificationMessage, 1, value=b"v")))
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED and vm.take(handle) == b"v"
    vm.sys_set_state("k", b"w")
    assert vm.take(vm.sys_get_state("k")) == b"w"
    assert kinds(written(vm)) == ["SetStateCommandMessage", "GetEagerStateCommandMessage"]


def test_clear_all_makes_the_map_complete():
    vm = new_vm(start(1, partial_state=True), input_command())
    vm.sys_input()
    vm.sys_clear_all_state()
    assert vm.take(vm.sys_get_state("anything")) is VOID
    assert kinds(written(vm)) == ["ClearAllStateCommandMessage", "GetEagerStateCommandMessage"]


def test_state_keys_complete_and_partial():
    vm = new_vm(start(1, partial_state=False, state={"b": b"1", "a": b"2"}), input_command())
    vm.sys_input()
    vm.sys_clear_state("b")
    assert vm.take(vm.sys_get_state_keys()) == ["a"]
    vm2 = new_vm(start(1, partial_state=True), input_command())
    vm2.sys_input()
    handle = vm2.sys_get_state_keys()
    assert kinds(written(vm2)) == ["GetLazyStateKeysCommandMessage"]
    keys = pb.GetLazyStateKeysCompletionNotificationMessage(completion_id=1)
    keys.state_keys.keys.extend([b"x", b"y"])
    vm2.notify_input(frame(keys))
    assert vm2.do_progress(handle) is Progress.ANY_COMPLETED and vm2.take(handle) == ["x", "y"]


def test_replay_ignores_the_live_map():
    get = pb.GetEagerStateCommandMessage(key=b"k")
    get.value.content = b"123"
    vm = new_vm(start(2, partial_state=False, state={"k": b"456"}), input_command(), get)
    vm.sys_input()
    assert vm.take(vm.sys_get_state("k")) == b"123"
    assert written(vm) == []


# ---------------------------------------------------------------- run


def test_run_proposal_and_completion_v6():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_run("my-side-effect")
    assert vm.do_progress(handle) is Progress.EXECUTE_RUN and vm.run_to_execute == handle
    assert vm.do_progress(handle) is Progress.WAITING
    vm.propose_run_completion(handle, b"result")
    out = written(vm)
    assert kinds(out) == ["RunCommandMessage", "ProposeRunCompletionMessage"]
    assert out[0].name == "my-side-effect" and out[1].value == b"result"
    vm.notify_input(frame(completion(pb.RunCompletionNotificationMessage, handle, value=b"result")))
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED and vm.take(handle) == b"result"


def test_run_terminal_failure_proposal():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_run("x")
    vm.do_progress(handle)
    vm.propose_run_completion(handle, Failure(500, "boom"))
    proposal = written(vm)[-1]
    assert proposal.failure.code == 500 and proposal.failure.message == "boom"


def test_eof_before_completion_suspends_on_the_run():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_run("x")
    assert vm.do_progress(handle) is Progress.EXECUTE_RUN
    vm.notify_input_closed()
    assert vm.do_progress(handle) is Progress.WAITING  # still executing: no suspension
    vm.propose_run_completion(handle, b"v")
    with pytest.raises(SuspendedError):
        vm.do_progress(handle)
    out = written(vm)
    assert kinds(out) == ["RunCommandMessage", "ProposeRunCompletionMessage", "SuspensionMessage"]
    assert list(out[2].waiting_completions) == [1]


@pytest.mark.parametrize("between", [False, True])
def test_replayed_run_with_completion_does_not_execute(between):
    journal = [input_command(), pb.RunCommandMessage(result_completion_id=1, name="r")]
    if between:
        journal.append(pb.SleepCommandMessage(result_completion_id=2))
    journal.append(completion(pb.RunCompletionNotificationMessage, 1, value=b"stored"))
    vm = new_vm(start(len(journal)), *journal, eof=True)
    vm.sys_input()
    handle = vm.sys_run("r")
    if between:
        vm.sys_sleep(1)
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED
    assert vm.take(handle) == b"stored"


def test_replayed_run_without_completion_executes_again():
    vm = new_vm(start(2), input_command(), pb.RunCommandMessage(result_completion_id=1, name="r"), eof=True)
    vm.sys_input()
    handle = vm.sys_run("r")
    assert vm.do_progress(handle) is Progress.EXECUTE_RUN
    vm.propose_run_completion(handle, b"v")
    with pytest.raises(SuspendedError):
        vm.do_progress(handle)
    assert kinds(written(vm)) == ["ProposeRunCompletionMessage", "SuspensionMessage"]


def test_retryable_run_failure_with_policy_sets_next_retry_delay():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_run("flaky")
    vm.do_progress(handle)
    with pytest.raises(InvocationFailedError):
        vm.propose_run_retryable_failure(
            handle,
            "boom",
            stacktrace="tb",
            policy=RetryPolicy(initial_interval_ms=1000, exponentiation_factor=1.0, max_attempts=2),
        )
    err = written(vm)[-1]
    assert type(err).__name__ == "ErrorMessage"
    assert err.code == 500 and err.message == "boom" and err.next_retry_delay == 1000
    assert (
        err.related_command_index == 1
        and err.related_command_type == 0x0411
        and err.related_command_name == "flaky"
    )


def test_retryable_run_failure_infinite_policy_has_no_delay():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_run("flaky")
    vm.do_progress(handle)
    with pytest.raises(InvocationFailedError):
        vm.propose_run_retryable_failure(handle, "boom")
    err = written(vm)[-1]
    assert not err.HasField("next_retry_delay")


def test_retry_exhausted_proposes_terminal_failure():
    vm = new_vm(
        start(2, retry_count=1), input_command(), pb.RunCommandMessage(result_completion_id=1, name="r")
    )
    vm.sys_input()
    handle = vm.sys_run("r")
    assert vm.do_progress(handle) is Progress.EXECUTE_RUN
    vm.propose_run_retryable_failure(handle, "my-error", policy=RetryPolicy(max_attempts=2))
    (proposal,) = written(vm)
    assert type(proposal).__name__ == "ProposeRunCompletionMessage"
    assert proposal.failure.code == 500 and proposal.failure.message == "my-error"


def test_retry_info_resets_after_a_new_command():
    vm = new_vm(start(1, retry_count=10, duration_ms=10_000), input_command())
    vm.sys_input()
    vm.sys_sleep(1)
    handle = vm.sys_run("r")
    vm.do_progress(handle)
    with pytest.raises(InvocationFailedError):
        vm.propose_run_retryable_failure(
            handle,
            "e",
            policy=RetryPolicy(
                initial_interval_ms=1000, exponentiation_factor=1.0, max_attempts=2, max_duration_ms=100
            ),
            attempt_duration_ms=99,
        )
    err = written(vm)[-1]
    assert type(err).__name__ == "ErrorMessage" and err.next_retry_delay == 1000


# ---------------------------------------------------------------- non-determinism and protocol errors


def test_field_mismatch_is_570_naming_the_command():
    lazy = pb.GetLazyStateCommandMessage(key=b"my-key", result_completion_id=1)
    vm = new_vm(start(2), input_command(), lazy)
    vm.sys_input()
    with pytest.raises(InvocationFailedError) as info:
        vm.sys_get_state("another-key")
    assert info.value.error.code == 570
    (err,) = written(vm)
    assert err.code == 570 and err.related_command_index == 1 and err.related_command_type == 0x0402
    assert "another-key" in err.message and "my-key" in err.message


def test_type_mismatch_is_570():
    vm = new_vm(start(2), input_command(), pb.SleepCommandMessage(result_completion_id=1))
    vm.sys_input()
    with pytest.raises(InvocationFailedError):
        vm.sys_run("r")
    (err,) = written(vm)
    assert err.code == 570 and "SleepCommandMessage" in err.message and "RunCommandMessage" in err.message


def test_added_await_during_replay_is_570_naming_the_run():
    journal = [
        input_command(),
        pb.RunCommandMessage(result_completion_id=1, name="my-run"),
        pb.SleepCommandMessage(result_completion_id=2),
        completion(pb.SleepCompletionNotificationMessage, 2, void=True),
    ]
    vm = new_vm(start(4), *journal)
    vm.sys_input()
    handle = vm.sys_run("my-run")
    with pytest.raises(InvocationFailedError):
        vm.do_progress(handle)
    (err,) = written(vm)
    assert err.code == 570 and err.related_command_name == "my-run"


def test_eof_mid_replay_is_571():
    vm = new_vm(start(2), input_command(), eof=True)
    assert vm.is_closed and not vm.is_ready
    (err,) = written(vm)
    assert err.code == 571


def test_known_entries_zero_is_500():
    vm = new_vm(start(0))
    (err,) = written(vm)
    assert err.code == 500 and "known_entries" in err.message


def test_message_before_start_is_571():
    vm = new_vm(input_command())
    (err,) = written(vm)
    assert err.code == 571 and "StartMessage" in err.message


def test_command_after_replay_is_571():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    vm.notify_input(frame(pb.SleepCommandMessage(result_completion_id=1)))
    (err,) = written(vm)
    assert err.code == 571
    with pytest.raises(InvocationFailedError):
        vm.sys_sleep(1)


@pytest.mark.parametrize(
    ("message_type", "code"),
    [
        (0x0008, 500),  # unknown control message: cannot be decoded
        (0x0004, 500),  # CommandAck: the SDK never asks for one
        (0x7777, 571),  # unknown command: commands only arrive as the journal to replay
        (0xFC01, 571),  # custom entry: not supported
    ],
)
def test_unknown_message_types(message_type, code):
    from restate_sync.protocol.framing import encode_frame

    vm = new_vm(start(1), input_command())
    vm.notify_input(encode_frame(message_type, b""))
    (err,) = written(vm)
    assert err.code == code and f"0x{message_type:04x}" in err.message


def test_unknown_command_in_the_journal_is_a_mismatch_when_replayed():
    from restate_sync.protocol.framing import encode_frame

    vm = new_vm(start(2), input_command())
    vm.notify_input(encode_frame(0x0777, b""))
    assert vm.is_ready
    vm.sys_input()
    with pytest.raises(InvocationFailedError):
        vm.sys_sleep(1)
    (err,) = written(vm)
    assert err.code == 570 and err.related_command_index == 1 and err.related_command_type == 0x040C


def test_malformed_payload_is_500():
    from restate_sync.protocol.framing import encode_frame

    vm = VM(6)
    vm.notify_input(encode_frame(0x0000, b"\xff\xff\xff"))
    (err,) = written(vm)
    assert err.code == 500 and "decode" in err.message


def test_runtime_sending_end_is_571():
    vm = new_vm(start(1), input_command())
    vm.notify_input(frame(pb.EndMessage()))
    (err,) = written(vm)
    assert err.code == 571


def test_handler_returning_early_while_journal_has_more_is_570():
    vm = new_vm(start(2), input_command(), pb.SleepCommandMessage(result_completion_id=1))
    vm.sys_input()
    with pytest.raises(InvocationFailedError):
        vm.sys_write_output(b"x")
    assert written(vm)[0].code == 570


# ---------------------------------------------------------------- promises


@pytest.mark.parametrize(
    "note, expected",
    [({"value": b"v"}, b"v"), ({"failure": (500, "myerror")}, Failure(500, "myerror"))],
)
def test_get_promise(note, expected):
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_get_promise("p")
    vm.notify_input(frame(completion(pb.GetPromiseCompletionNotificationMessage, handle, **note)))
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED
    assert vm.take(handle) == expected


def test_peek_and_complete_promise():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    peek = vm.sys_peek_promise("p")
    done = vm.sys_complete_promise("p", b"x")
    vm.notify_input(
        frame(completion(pb.PeekPromiseCompletionNotificationMessage, peek, void=True))
        + frame(completion(pb.CompletePromiseCompletionNotificationMessage, done, failure=(409, "already")))
    )
    assert vm.do_progress(peek) is Progress.ANY_COMPLETED and vm.take(peek) is VOID
    assert vm.do_progress(done) is Progress.ANY_COMPLETED and vm.take(done) == Failure(409, "already")
    out = written(vm)
    assert out[1].completion_value.content == b"x"


# ---------------------------------------------------------------- more edge cases from the shared core's tests


def test_v7_start_fields_are_ignored_on_v6():
    message = start(1)
    message.scope = "s"
    message.limit_key = "l"
    message.idempotency_key = "i"
    vm = new_vm(message, input_command(b"x"))
    assert vm.sys_input().input == b"x"
    assert written(vm) == []


def test_lazy_get_then_eof_suspends_on_it():
    vm = new_vm(start(1, partial_state=True), input_command())
    vm.sys_input()
    handle = vm.sys_get_state("k")
    assert not vm.is_completed(handle)
    vm.notify_input_closed()
    with pytest.raises(SuspendedError):
        vm.do_progress(handle)
    out = written(vm)
    assert kinds(out) == ["GetLazyStateCommandMessage", "SuspensionMessage"]
    assert list(out[1].waiting_completions) == [1] and list(out[1].waiting_signals) == [1]


def test_unawaited_call_then_return():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    vm.sys_call("Svc", "h", b"")
    vm.sys_write_output(b"done")
    vm.sys_end()
    assert kinds(written(vm)) == ["CallCommandMessage", "OutputCommandMessage", "EndMessage"]


def test_eager_get_replay_variant_writes_only_the_second():
    journaled = pb.GetEagerStateCommandMessage(key=b"key-0")
    journaled.void.SetInParent()
    vm = new_vm(start(2, partial_state=False), input_command(), journaled)
    vm.sys_input()
    assert vm.take(vm.sys_get_state("key-0")) is VOID
    assert vm.take(vm.sys_get_state("key-0")) is VOID
    assert kinds(written(vm)) == ["GetEagerStateCommandMessage"]


def test_race_a_replayed_run_against_sleeps():
    journal = [
        input_command(),
        pb.RunCommandMessage(result_completion_id=1, name="r"),
        pb.SleepCommandMessage(result_completion_id=2),
        pb.SleepCommandMessage(result_completion_id=3),
        completion(pb.SleepCompletionNotificationMessage, 2, void=True),
    ]
    vm = new_vm(start(len(journal)), *journal, eof=True)
    vm.sys_input()
    run = vm.sys_run("r")
    sleep2 = vm.sys_sleep(1)
    assert vm.do_progress(Combinator(CombinatorKind.FIRST_COMPLETED, (run, sleep2))) is Progress.ANY_COMPLETED
    assert vm.is_completed(sleep2) and vm.is_replaying
    sleep3 = vm.sys_sleep(1)
    assert vm.phase is Phase.PROCESSING
    tree = Combinator(CombinatorKind.FIRST_COMPLETED, (run, sleep3))
    assert vm.do_progress(tree) is Progress.EXECUTE_RUN and vm.run_to_execute == run
    vm.propose_run_completion(run, b"v")
    with pytest.raises(SuspendedError):
        vm.do_progress(tree)
    out = written(vm)
    assert kinds(out) == ["ProposeRunCompletionMessage", "SuspensionMessage"]
    assert sorted(out[1].waiting_completions) == [1, 3]


@pytest.mark.parametrize(
    "policy, retry_count, duration_ms, attempt_ms",
    [
        (RetryPolicy(max_duration_ms=1000), 1, 900, 200),  # duration exhausted
        (RetryPolicy(max_attempts=0), 0, 0, 0),  # no attempts allowed at all
    ],
)
def test_retry_exhaustion_by_duration_or_zero_attempts(policy, retry_count, duration_ms, attempt_ms):
    vm = new_vm(
        start(2, retry_count=retry_count, duration_ms=duration_ms),
        input_command(),
        pb.RunCommandMessage(result_completion_id=1, name="r"),
    )
    vm.sys_input()
    handle = vm.sys_run("r")
    vm.do_progress(handle)
    vm.propose_run_retryable_failure(handle, "my-error", policy=policy, attempt_duration_ms=attempt_ms)
    (proposal,) = written(vm)
    assert type(proposal).__name__ == "ProposeRunCompletionMessage" and proposal.failure.message == "my-error"


def test_added_await_on_a_sleep_during_replay_is_570():
    journal = [
        input_command(),
        pb.SleepCommandMessage(result_completion_id=1),
        pb.SleepCommandMessage(result_completion_id=2),
        completion(pb.SleepCompletionNotificationMessage, 2, void=True),
    ]
    vm = new_vm(start(len(journal)), *journal)
    vm.sys_input()
    first = vm.sys_sleep(1)
    with pytest.raises(InvocationFailedError):
        vm.do_progress(first)  # the recorded run never waited for sleep 1 before sleep 2
    assert written(vm)[0].code == 570


def test_replay_while_cancelling_writes_only_the_missing_signal():
    cancel_first = pb.SendSignalCommandMessage(target_invocation_id="my-id-1", idx=1)
    cancel_first.void.SetInParent()
    journal = [
        input_command(),
        pb.CallCommandMessage(
            service_name="S", handler_name="h", invocation_id_notification_idx=1, result_completion_id=2
        ),
        completion(pb.CallInvocationIdCompletionNotificationMessage, 1, invocation_id="my-id-1"),
        pb.CallCommandMessage(
            service_name="S", handler_name="h", invocation_id_notification_idx=3, result_completion_id=4
        ),
        completion(pb.CallInvocationIdCompletionNotificationMessage, 3, invocation_id="my-id-2"),
        signal(idx=1, void=True),
        cancel_first,
    ]
    vm = new_vm(start(len(journal)), *journal)
    vm.sys_input()
    _, r1 = vm.sys_call("S", "h", b"")
    _, r2 = vm.sys_call("S", "h", b"")
    assert vm.do_progress(Combinator(CombinatorKind.FIRST_COMPLETED, (r1, r2))) is Progress.CANCELLED
    out = written(vm)
    assert kinds(out) == ["SendSignalCommandMessage"]
    assert out[0].target_invocation_id == "my-id-2"


def test_named_signal_arriving_before_it_is_awaited():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    vm.notify_input(frame(signal(name="go", value=b"now")))
    handle = vm.sys_signal("go")
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED and vm.take(handle) == b"now"


def test_suspension_on_a_named_signal():
    vm = new_vm(start(1), input_command(), eof=True)
    vm.sys_input()
    with pytest.raises(SuspendedError):
        vm.do_progress(vm.sys_signal("go"))
    (susp,) = written(vm)
    assert list(susp.waiting_named_signals) == ["go"] and list(susp.waiting_signals) == [1]


def test_first_succeeded_or_all_failed_waits_past_failures():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    _, a = vm.sys_awakeable()
    _, b = vm.sys_awakeable()
    tree = Combinator(CombinatorKind.FIRST_SUCCEEDED_OR_ALL_FAILED, (a, b))
    vm.notify_input(frame(signal(idx=17, failure=(500, "no"))))
    assert vm.do_progress(tree) is Progress.WAITING
    vm.notify_input(frame(signal(idx=18, value=b"yes")))
    assert vm.do_progress(tree) is Progress.ANY_COMPLETED


def test_all_succeeded_or_first_failed_short_circuits():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    _, a = vm.sys_awakeable()
    _, b = vm.sys_awakeable()
    tree = Combinator(CombinatorKind.ALL_SUCCEEDED_OR_FIRST_FAILED, (a, b))
    vm.notify_input(frame(signal(idx=18, failure=(500, "no"))))
    assert vm.do_progress(tree) is Progress.ANY_COMPLETED
    assert not vm.is_completed(a)


# ---------------------------------------------------------------- protocol V7


def frames_with_flags(vm):
    return [(t, f, m.MESSAGE_CLASSES[t].FromString(p)) for t, f, p in FrameDecoder().feed(vm.take_output())]


def test_v7_run_proposal_requests_an_ack_and_the_ack_delivers_the_result():
    vm = new_vm(start(1), input_command(), version=7)
    vm.sys_input()
    handle = vm.sys_run("my-run")
    assert vm.do_progress(handle) is Progress.EXECUTE_RUN
    assert vm.do_progress(handle) is Progress.WAITING  # executing: no AwaitingOn yet
    vm.propose_run_completion(handle, b"val")
    assert vm.do_progress(handle) is Progress.WAITING
    out = frames_with_flags(vm)
    assert [(t, f) for t, f, _ in out] == [(m.RUN, 0), (m.PROPOSE_RUN_COMPLETION, 0x8000), (m.AWAITING_ON, 0)]
    awaiting = out[2][2].awaiting_on
    assert list(awaiting.waiting_completions) == [1] and list(awaiting.waiting_signals) == [1]
    vm.notify_input(frame(pb.ProposeRunCompletionAckMessage(completion_id=1)))
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED
    assert vm.take(handle) == b"val"


def test_v6_run_proposal_has_no_flag_and_waits_for_the_completion():
    vm = new_vm(start(1), input_command(), version=6)
    vm.sys_input()
    handle = vm.sys_run("my-run")
    vm.do_progress(handle)
    vm.propose_run_completion(handle, b"val")
    assert vm.do_progress(handle) is Progress.WAITING
    assert [(t, f) for t, f, _ in frames_with_flags(vm)] == [(m.RUN, 0), (m.PROPOSE_RUN_COMPLETION, 0)]


@pytest.mark.parametrize(
    ("journal", "why"),
    [
        ([], "an ack for a run nobody proposed"),
        ([pb.RunCommandMessage(result_completion_id=1)], "an ack while replaying"),
    ],
)
def test_v7_bad_run_acks_are_protocol_violations(journal, why):
    vm = new_vm(start(1 + len(journal)), input_command(), *journal, version=7)
    vm.notify_input(frame(pb.ProposeRunCompletionAckMessage(completion_id=99)))
    (err,) = written(vm)
    assert err.code == 571, why


def test_v7_suspension_is_the_unresolved_future_tree():
    vm = new_vm(start(1), input_command(), eof=True, version=7)
    vm.sys_input()
    _, awakeable = vm.sys_awakeable()
    named = vm.sys_signal("abc")
    lazy = vm.sys_get_state("k")
    tree = Combinator(CombinatorKind.FIRST_COMPLETED, (awakeable, named, lazy))
    with pytest.raises(SuspendedError):
        vm.do_progress(tree)
    suspension = written(vm)[-1]
    assert not suspension.waiting_completions and not suspension.waiting_signals
    top = suspension.awaiting_on
    assert top.combinator_type == pb.COMBINATOR_TYPE_FIRST_COMPLETED and list(top.waiting_signals) == [1]
    (inner,) = top.nested_futures
    assert list(inner.waiting_completions) == [1]
    assert list(inner.waiting_signals) == [17] and list(inner.waiting_named_signals) == ["abc"]


def test_v6_suspension_flattens_the_same_tree():
    vm = new_vm(start(1), input_command(), eof=True, version=6)
    vm.sys_input()
    _, awakeable = vm.sys_awakeable()
    lazy = vm.sys_get_state("k")
    with pytest.raises(SuspendedError):
        vm.do_progress(Combinator(CombinatorKind.ALL_SUCCEEDED_OR_FIRST_FAILED, (awakeable, lazy)))
    suspension = written(vm)[-1]
    assert list(suspension.waiting_completions) == [1] and list(suspension.waiting_signals) == [1, 17]
    assert not suspension.HasField("awaiting_on")


def test_v7_awaiting_on_shrinks_as_results_arrive():
    vm = new_vm(start(1), input_command(), version=7)
    vm.sys_input()
    handles = [vm.sys_awakeable()[1] for _ in range(3)]
    tree = Combinator(CombinatorKind.ALL_COMPLETED, tuple(handles))
    assert vm.do_progress(tree) is Progress.WAITING
    vm.notify_input(frame(signal(idx=17, void=True)))
    assert vm.do_progress(tree) is Progress.WAITING
    first, second = (msg.awaiting_on.nested_futures[0] for msg in written(vm))
    assert list(first.waiting_signals) == [17, 18, 19]
    assert list(second.waiting_signals) == [19, 18]  # settled children are swap-removed, as in the core


def test_v7_pause_on_retry_exhaustion():
    vm = new_vm(start(2, retry_count=1), input_command(), pb.RunCommandMessage(result_completion_id=1, name="r"),
                version=7)  # fmt: skip
    vm.sys_input()
    handle = vm.sys_run("r")
    vm.do_progress(handle)
    with pytest.raises(InvocationFailedError):
        vm.propose_run_retryable_failure(
            handle, "boom", stacktrace="tb", policy=RetryPolicy(max_attempts=2, on_max_attempts="pause")
        )
    (err,) = written(vm)
    assert err.code == 500 and err.message == "boom" and err.behavior == pb.ERROR_BEHAVIOR_PAUSE
    assert not err.HasField("next_retry_delay") and err.related_command_name == "r"


def test_pause_needs_v7():
    vm = new_vm(
        start(2, retry_count=1), input_command(), pb.RunCommandMessage(result_completion_id=1, name="r")
    )
    vm.sys_input()
    handle = vm.sys_run("r")
    vm.do_progress(handle)
    with pytest.raises(InvocationFailedError):
        vm.propose_run_retryable_failure(
            handle, "boom", policy=RetryPolicy(max_attempts=2, on_max_attempts="pause")
        )
    (err,) = written(vm)
    assert err.code == 573 and err.behavior == pb.ERROR_BEHAVIOR_RETRY


@pytest.mark.parametrize(("version", "code"), [(6, 573), (7, 500)])
def test_notify_error_behaviour_fail(version, code):
    vm = new_vm(start(1), input_command(), version=version)
    vm.sys_input()
    vm.notify_error("unrecoverable", behavior=ErrorBehavior.FAIL)
    (err,) = written(vm)
    assert err.code == code
    assert err.behavior == (pb.ERROR_BEHAVIOR_FAIL if version == 7 else pb.ERROR_BEHAVIOR_RETRY)


def test_v7_scope_and_limit_key_on_calls_and_sends():
    vm = new_vm(start(1), input_command(), version=7)
    vm.sys_input()
    vm.sys_call("S", "h", b"p", scope="sc", limit_key="lk")
    vm.sys_send("S", "h", b"p", scope="sc")
    call, send = written(vm)
    assert (call.scope, call.limit_key) == ("sc", "lk")
    assert send.scope == "sc" and not send.HasField("limit_key")


@pytest.mark.parametrize(
    ("version", "options", "code"),
    [
        (6, {"scope": "sc"}, 573),
        (5, {"limit_key": "lk"}, 573),
        (7, {"scope": ""}, 500),
        (7, {"limit_key": ""}, 500),
    ],
)
def test_bad_scope_or_limit_key(version, options, code):
    vm = new_vm(start(1), input_command(), version=version)
    vm.sys_input()
    with pytest.raises(InvocationFailedError):
        vm.sys_call("S", "h", b"p", **options)
    (err,) = written(vm)
    assert err.code == code


@pytest.mark.parametrize("version", [6, 7])
def test_v7_start_fields_surface_only_on_v7(version):
    message = start(1)
    message.scope, message.limit_key, message.idempotency_key = "sc", "lk", "ik"
    vm = new_vm(message, input_command(), version=version)
    inp = vm.sys_input()
    expected = ("sc", "lk", "ik") if version == 7 else (None, None, None)
    assert (inp.scope, inp.limit_key, inp.idempotency_key) == expected


# ---------------------------------------------------------------- decoding errors are ErrorMessages


def test_a_message_over_the_limit_fails_on_its_header():
    vm = VM(6, max_message_size=100)
    vm.notify_input(encode_frame(m.START, b"\x00" * 101)[:8])
    (err,) = written(vm)
    assert err.code == 571 and "101" in err.message
    assert vm.is_closed and vm._decoder.pending == 0


def test_non_utf8_eager_state_key_is_500():
    message = start(1)
    message.state_map.add(key=b"\xff", value=b"v")
    vm = new_vm(message, input_command())
    (err,) = written(vm)
    assert err.code == 500 and "UTF-8" in err.message


def test_non_utf8_state_keys_in_a_notification_are_decoded_lossily_like_the_core():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_get_state_keys()
    keys = pb.GetLazyStateKeysCompletionNotificationMessage(completion_id=1)
    keys.state_keys.keys.extend([b"ok", b"\xff"])
    vm.notify_input(frame(keys))
    assert vm.do_progress(handle) is Progress.ANY_COMPLETED
    assert vm.take(handle) == ["ok", "\ufffd"]


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"],
    ids=["garbage", "truncated-field", "overlong-varint"],
)
def test_malformed_notification_is_500(payload):
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    vm.notify_input(encode_frame(m.SLEEP_COMPLETION, payload))
    (err,) = written(vm)
    assert err.code == 500


def test_string_field_that_is_not_utf8_is_500():
    vm = VM(6)
    vm.notify_input(encode_frame(m.START, b"\x12\x01\xff"))  # debug_id = b"\xff"
    (err,) = written(vm)
    assert err.code == 500


def test_truncated_frame_at_eof_is_500():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    vm.notify_input(frame(signal(idx=17, value=b"abc"))[:-1])
    vm.notify_input_closed()
    (err,) = written(vm)
    assert err.code == 500 and "inside a message" in err.message


# ---------------------------------------------------------------- agreement fixes found by tests/differential


def test_journal_mismatch_names_the_command_the_handler_executes_now():
    journaled = pb.RunCommandMessage(result_completion_id=1, name="journaled-run")
    vm = new_vm(start(2), input_command(), journaled, eof=True)
    vm.sys_input()
    with pytest.raises(InvocationFailedError):
        vm.sys_sleep(5, name="my-nap")
    (err,) = written(vm)
    assert (err.code, err.related_command_index) == (570, 1)
    assert (err.related_command_name, err.related_command_type) == ("my-nap", 0x040C)


def test_readiness_after_a_protocol_violation_is_the_error():
    vm = new_vm(start(2), input_command())
    vm.notify_input(frame(pb.EndMessage()))
    with pytest.raises(InvocationFailedError):
        vm.is_ready_to_execute()


def test_a_named_signal_sent_twice_is_taken_in_order():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    handle = vm.sys_signal("s")
    sleep = vm.sys_sleep(1)
    vm.notify_input(frame(signal(name="s", value=b"1")) + frame(signal(name="s", value=b"2")))
    vm.notify_input(frame(completion(pb.SleepCompletionNotificationMessage, 1, void=True)))
    assert vm.do_progress(Combinator(CombinatorKind.ALL_COMPLETED, (handle, sleep))) is Progress.ANY_COMPLETED
    assert vm.take(handle) == b"1"
    assert vm.take(handle) == b"2"


def test_cancellation_uses_a_call_id_the_handler_already_took():
    vm = new_vm(start(1), input_command())
    vm.sys_input()
    inv, result = vm.sys_call("S", "h", b"")
    vm.notify_input(
        frame(completion(pb.CallInvocationIdCompletionNotificationMessage, inv, invocation_id="inv_1c"))
    )
    assert vm.do_progress(inv) is Progress.ANY_COMPLETED
    assert vm.take(inv) == "inv_1c"
    vm.notify_input(frame(signal(idx=1, void=True)))
    assert vm.do_progress(result) is Progress.CANCELLED
    _, cancel = written(vm)
    assert cancel.target_invocation_id == "inv_1c" and cancel.idx == 1
