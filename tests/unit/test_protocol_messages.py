"""Wire-level tests for restate_sync/protocol/protocol.proto (docs/protocol.md).

The expected bytes are written out by hand from the field numbers in the fact
sheet, so a wrong field number or a missing ``optional`` in the .proto shows up
here rather than as a confused runtime.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from restate_sync.protocol import protocol_pb2 as pb

REPO_ROOT = Path(__file__).resolve().parents[2]
GEN_SCRIPT = REPO_ROOT / "scripts" / "gen_protocol.py"


def _load_gen_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_gen_protocol_under_test", GEN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# (a) generated code is fresh / generation is deterministic
# ---------------------------------------------------------------------------


def test_committed_generated_code_is_fresh() -> None:
    proc = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"stale generated code:\n{proc.stdout}{proc.stderr}"


def test_check_detects_stale_generated_code(tmp_path: Path) -> None:
    # Work on a copy so the real checkout is never touched.
    gen = _load_gen_script()
    src_dir = REPO_ROOT / "restate_sync" / "protocol"
    dst_dir = tmp_path / "restate_sync" / "protocol"
    dst_dir.mkdir(parents=True)
    for name in ("protocol.proto", "protocol_pb2.py", "protocol_pb2.pyi"):
        shutil.copy(src_dir / name, dst_dir / name)
    gen.REPO_ROOT = tmp_path
    assert gen.check() == []

    with (dst_dir / "protocol_pb2.pyi").open("a") as f:
        f.write("# hand edit\n")
    (dst_dir / "protocol_pb2.py").unlink()
    problems = gen.check()
    assert any("protocol_pb2.pyi" in p and "stale" in p for p in problems), problems
    assert any("protocol_pb2.py " in p and "missing" in p for p in problems), problems
    assert gen.main(["--check"]) == 1


def test_descriptor_has_no_absolute_paths() -> None:
    assert pb.DESCRIPTOR.name == "protocol.proto"
    assert pb.DESCRIPTOR.package == "dev.restate.service.protocol"
    text = (REPO_ROOT / "restate_sync" / "protocol" / "protocol_pb2.py").read_text()
    assert str(REPO_ROOT) not in text


# ---------------------------------------------------------------------------
# (b) hand-encoded wire facts
# ---------------------------------------------------------------------------


def test_sleep_completion_void_is_on_the_wire() -> None:
    msg = pb.SleepCompletionNotificationMessage(completion_id=1)
    # Without touching void the result is missing: empty messages must be present on the wire.
    assert msg.SerializeToString() == bytes.fromhex("0801")
    msg.void.SetInParent()
    assert msg.HasField("void")
    assert msg.SerializeToString() == bytes.fromhex("08012200")


def test_send_signal_cancel_carries_void() -> None:
    msg = pb.SendSignalCommandMessage(target_invocation_id="inv_1abc", idx=pb.BUILT_IN_SIGNAL_CANCEL)
    msg.void.SetInParent()
    expected = b"\x0a\x08inv_1abc" + bytes.fromhex("1001") + bytes.fromhex("2200")
    assert msg.SerializeToString() == expected
    assert msg.WhichOneof("signal_id") == "idx"
    assert msg.WhichOneof("result") == "void"


def test_send_signal_named_with_entry_name_field_12() -> None:
    msg = pb.SendSignalCommandMessage(
        target_invocation_id="i", name="sig", value=pb.Value(content=b"x"), entry_name="n"
    )
    # 1:"i" · 3:"sig" · 5:{1:"x"} · 12:"n"
    expected = b"\x0a\x01i" + b"\x1a\x03sig" + b"\x2a\x03\x0a\x01x" + b"\x62\x01n"
    assert msg.SerializeToString() == expected


def test_error_message_optional_fields_absent_when_unset() -> None:
    msg = pb.ErrorMessage(code=500, message="boom")
    # 1: 500 (varint f4 03) · 2: "boom"; nothing else, behavior RETRY is the default.
    assert msg.SerializeToString() == bytes.fromhex("08f403") + b"\x12\x04boom"
    for field in (
        "related_command_index",
        "related_command_name",
        "related_command_type",
        "next_retry_delay",
    ):
        assert not msg.HasField(field), field


def test_error_message_optional_fields_present_even_when_zero() -> None:
    msg = pb.ErrorMessage(code=570, related_command_index=0, related_command_type=0x0411)
    msg.next_retry_delay = 0
    msg.behavior = pb.ERROR_BEHAVIOR_PAUSE
    # 1: 570 (ba 04) · 4: 0 · 6: 0x0411 (91 08) · 8: 0 · 9: PAUSE
    assert msg.SerializeToString() == bytes.fromhex("08ba04 2000 309108 4000 4801")
    parsed = pb.ErrorMessage.FromString(msg.SerializeToString())
    assert parsed.HasField("related_command_index")
    assert parsed.related_command_index == 0
    assert not parsed.HasField("related_command_name")


def test_call_command_idempotency_key_omitted_when_unset() -> None:
    msg = pb.CallCommandMessage(
        service_name="Greeter",
        handler_name="greet",
        parameter=b"\x01",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    )
    base_head = b"\x0a\x07Greeter" + b"\x12\x05greet" + b"\x1a\x01\x01"
    base_tail = bytes.fromhex("5001 5802")  # 10: 1 · 11: 2
    assert msg.SerializeToString() == base_head + base_tail
    assert not msg.HasField("idempotency_key")
    assert not msg.HasField("scope")
    assert not msg.HasField("limit_key")

    msg.idempotency_key = "k"
    assert msg.SerializeToString() == base_head + b"\x32\x01k" + base_tail

    # Explicit presence: even an empty string is written (the VM must never do that).
    msg.idempotency_key = ""
    assert msg.SerializeToString() == base_head + b"\x32\x00" + base_tail


def test_one_way_call_field_numbers() -> None:
    msg = pb.OneWayCallCommandMessage(
        service_name="S",
        handler_name="h",
        invoke_time=1000,
        key="k",
        idempotency_key="i",
        scope="s",
        limit_key="l",
        invocation_id_notification_idx=3,
        name="n",
    )
    expected = (
        b"\x0a\x01S"
        + b"\x12\x01h"
        + bytes.fromhex("20e807")  # 4: 1000
        + b"\x32\x01k"  # 6: key
        + b"\x3a\x01i"  # 7: idempotency_key
        + b"\x42\x01s"  # 8: scope
        + b"\x4a\x01l"  # 9: limit_key
        + bytes.fromhex("5003")  # 10: invocation_id_notification_idx
        + b"\x62\x01n"  # 12: name
    )
    assert msg.SerializeToString() == expected


def test_propose_run_completion_value_is_raw_bytes() -> None:
    ok = pb.ProposeRunCompletionMessage(result_completion_id=1, value=b"hi")
    # 14: raw bytes, not a Value wrapper.
    assert ok.SerializeToString() == bytes.fromhex("0801") + b"\x72\x02hi"
    empty = pb.ProposeRunCompletionMessage(result_completion_id=1, value=b"")
    assert empty.WhichOneof("result") == "value"
    assert empty.SerializeToString() == bytes.fromhex("0801 7200")
    failed = pb.ProposeRunCompletionMessage(result_completion_id=1, failure=pb.Failure(code=500))
    assert failed.SerializeToString() == bytes.fromhex("0801 7a03 08f403")


def test_get_eager_state_void_is_field_13() -> None:
    msg = pb.GetEagerStateCommandMessage(key=b"k")
    msg.void.CopyFrom(pb.Void())
    assert msg.WhichOneof("result") == "void"
    assert msg.SerializeToString() == b"\x0a\x01k" + bytes.fromhex("6a00")


def test_output_command_value_and_failure_fields() -> None:
    ok = pb.OutputCommandMessage(value=pb.Value(content=b"r"))
    assert ok.SerializeToString() == b"\x72\x03\x0a\x01r"
    failed = pb.OutputCommandMessage(failure=pb.Failure(code=400, message="m"))
    assert failed.SerializeToString() == bytes.fromhex("7a06 089003") + b"\x12\x01m"


def test_suspension_message_v6_flat_and_v7_tree() -> None:
    v6 = pb.SuspensionMessage(waiting_completions=[1, 2], waiting_signals=[1], waiting_named_signals=["a"])
    # Packed repeated uint32: 1: [01 02] · 2: [01] · 3: "a"
    assert v6.SerializeToString() == bytes.fromhex("0a020102 120101") + b"\x1a\x01a"
    assert not v6.HasField("awaiting_on")

    v7 = pb.SuspensionMessage(
        awaiting_on=pb.Future(waiting_completions=[1], combinator_type=pb.COMBINATOR_TYPE_ALL_COMPLETED)
    )
    # 4: Future{1: [01] · 5: ALL_COMPLETED}
    assert v7.SerializeToString() == bytes.fromhex("2205 0a0101 2802")


def test_start_message_v7_optional_strings_and_state_map() -> None:
    # 3: known_entries=1 · 4: StateEntry{1:"k", 2:"v"} · 5: true · 9: seed 7 · 10: scope "s"
    wire = bytes.fromhex("1801") + b"\x22\x06\x0a\x01k\x12\x01v" + bytes.fromhex("2801 4807") + b"\x52\x01s"
    msg = pb.StartMessage.FromString(wire)
    assert msg.known_entries == 1
    assert [(e.key, e.value) for e in msg.state_map] == [(b"k", b"v")]
    assert msg.partial_state is True
    assert msg.random_seed == 7
    assert msg.HasField("scope") and msg.scope == "s"
    assert not msg.HasField("limit_key")
    assert not msg.HasField("idempotency_key")
    assert msg.SerializeToString() == wire


def test_attach_invocation_target_oneof() -> None:
    msg = pb.AttachInvocationCommandMessage(
        workflow_target=pb.WorkflowTarget(workflow_name="W", workflow_key="k"),
        result_completion_id=5,
    )
    assert msg.WhichOneof("target") == "workflow_target"
    assert msg.SerializeToString() == b"\x22\x06\x0a\x01W\x12\x01k" + bytes.fromhex("5805")
    msg.invocation_id = "inv"
    assert msg.WhichOneof("target") == "invocation_id"
    assert msg.SerializeToString() == b"\x0a\x03inv" + bytes.fromhex("5805")


# ---------------------------------------------------------------------------
# Notifications all decode with NotificationTemplate
# ---------------------------------------------------------------------------

_VOID = ("void", pb.Void())
_VALUE = ("value", pb.Value(content=b"\x00payload"))
_FAILURE = ("failure", pb.Failure(code=409, message="conflict"))
_STATE_KEYS = ("state_keys", pb.StateKeys(keys=[b"a", b"b"]))
_INVOCATION_ID = ("invocation_id", "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz")

# (message class, allowed results) as the protocol allows per notification type.
_COMPLETION_NOTIFICATIONS = [
    (pb.GetLazyStateCompletionNotificationMessage, [_VOID, _VALUE]),
    (pb.GetLazyStateKeysCompletionNotificationMessage, [_STATE_KEYS]),
    (pb.GetPromiseCompletionNotificationMessage, [_VALUE, _FAILURE]),
    (pb.PeekPromiseCompletionNotificationMessage, [_VOID, _VALUE, _FAILURE]),
    (pb.CompletePromiseCompletionNotificationMessage, [_VOID, _FAILURE]),
    (pb.SleepCompletionNotificationMessage, [_VOID]),
    (pb.CallCompletionNotificationMessage, [_VALUE, _FAILURE]),
    (pb.CallInvocationIdCompletionNotificationMessage, [_INVOCATION_ID]),
    (pb.RunCompletionNotificationMessage, [_VALUE, _FAILURE]),
    (pb.AttachInvocationCompletionNotificationMessage, [_VALUE, _FAILURE]),
    (pb.GetInvocationOutputCompletionNotificationMessage, [_VOID, _VALUE, _FAILURE]),
]


def _set_result(msg: Any, field: str, value: Any) -> None:
    if isinstance(value, str):
        setattr(msg, field, value)
    else:
        getattr(msg, field).CopyFrom(value)
        getattr(msg, field).SetInParent()


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [(cls, f, v) for cls, results in _COMPLETION_NOTIFICATIONS for f, v in results],
    ids=lambda x: x.__name__ if isinstance(x, type) else (x if isinstance(x, str) and len(x) < 20 else None),
)
def test_completion_notification_decodes_with_template(cls: type[Message], field: str, value: Any) -> None:
    concrete = cls(completion_id=42)
    _set_result(concrete, field, value)
    wire = concrete.SerializeToString()

    template = pb.NotificationTemplate.FromString(wire)
    assert template.WhichOneof("id") == "completion_id"
    assert template.completion_id == 42
    assert template.WhichOneof("result") == field
    assert getattr(template, field) == value

    # And the other way round: the template encodes to identical bytes.
    expected = pb.NotificationTemplate(completion_id=42)
    _set_result(expected, field, value)
    assert expected.SerializeToString() == wire
    assert cls.FromString(expected.SerializeToString()) == concrete


@pytest.mark.parametrize("field_value", [_VOID, _VALUE, _FAILURE], ids=lambda fv: fv[0])
def test_signal_notification_decodes_with_template(field_value: tuple[str, Any]) -> None:
    field, value = field_value
    unnamed = pb.SignalNotificationMessage(idx=17)
    _set_result(unnamed, field, value)
    t = pb.NotificationTemplate.FromString(unnamed.SerializeToString())
    assert t.WhichOneof("id") == "signal_id"
    assert t.signal_id == 17
    assert t.WhichOneof("result") == field
    assert getattr(t, field) == value

    named = pb.SignalNotificationMessage(name="approved")
    _set_result(named, field, value)
    t = pb.NotificationTemplate.FromString(named.SerializeToString())
    assert t.WhichOneof("id") == "signal_name"
    assert t.signal_name == "approved"
    assert t.WhichOneof("result") == field


def test_cancel_signal_notification_bytes() -> None:
    # SignalNotification{idx: 1, void} as the runtime sends it on cancellation.
    t = pb.NotificationTemplate.FromString(bytes.fromhex("1001 2200"))
    assert t.WhichOneof("id") == "signal_id"
    assert t.signal_id == pb.BUILT_IN_SIGNAL_CANCEL
    assert t.WhichOneof("result") == "void"


def test_template_reports_missing_result() -> None:
    t = pb.NotificationTemplate.FromString(bytes.fromhex("0801"))
    assert t.WhichOneof("id") == "completion_id"
    assert t.WhichOneof("result") is None


_TEMPLATE_NAME_FOR = {"idx": "signal_id", "name": "signal_name"}


@pytest.mark.parametrize(
    "cls",
    [cls for cls, _ in _COMPLETION_NOTIFICATIONS] + [pb.SignalNotificationMessage],
    ids=lambda c: c.__name__,
)
def test_notification_field_numbers_match_template(cls: type[Message]) -> None:
    template_fields = pb.NotificationTemplate.DESCRIPTOR.fields_by_name
    for f in cls.DESCRIPTOR.fields:
        t = template_fields[_TEMPLATE_NAME_FOR.get(f.name, f.name)]
        assert f.number == t.number, (cls.__name__, f.name)
        assert f.type == t.type, (cls.__name__, f.name)
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            assert f.message_type.full_name == t.message_type.full_name


# ---------------------------------------------------------------------------
# Schema sanity: names the VM code relies on, presence of `opt` fields
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("StartMessage", "scope"),
        ("StartMessage", "limit_key"),
        ("StartMessage", "idempotency_key"),
        ("WorkflowTarget", "scope"),
        ("IdempotentRequestTarget", "service_key"),
        ("IdempotentRequestTarget", "scope"),
        ("ErrorMessage", "related_command_index"),
        ("ErrorMessage", "related_command_name"),
        ("ErrorMessage", "related_command_type"),
        ("ErrorMessage", "next_retry_delay"),
        ("CallCommandMessage", "idempotency_key"),
        ("CallCommandMessage", "scope"),
        ("CallCommandMessage", "limit_key"),
        ("OneWayCallCommandMessage", "idempotency_key"),
        ("OneWayCallCommandMessage", "scope"),
        ("OneWayCallCommandMessage", "limit_key"),
    ],
)
def test_opt_fields_have_explicit_presence(message: str, field: str) -> None:
    fd = pb.DESCRIPTOR.message_types_by_name[message].fields_by_name[field]
    assert fd.has_presence
    # A synthetic oneof, not a real one.
    assert fd.containing_oneof is not None and fd.containing_oneof.name == f"_{field}"


def test_enum_values() -> None:
    assert pb.CombinatorType.Value("COMBINATOR_TYPE_ALL_SUCCEEDED_OR_FIRST_FAILED") == 4
    assert pb.CombinatorType.Value("COMBINATOR_TYPE_UNKNOWN") == 0
    assert pb.ErrorBehavior.Value("ERROR_BEHAVIOR_FAIL") == 2
    assert pb.BuiltInSignal.Value("BUILT_IN_SIGNAL_CANCEL") == 1
    assert pb.ServiceProtocolVersion.Value("SERVICE_PROTOCOL_VERSION_V7") == 7
    assert pb.ServiceProtocolVersion.Value("SERVICE_PROTOCOL_VERSION_UNSPECIFIED") == 0
