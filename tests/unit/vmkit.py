"""Helpers to drive the VM with real protocol bytes and read back what it wrote."""

from __future__ import annotations

from typing import Any

from restate_sync.protocol import messages as m
from restate_sync.protocol.framing import FrameDecoder, encode_frame
from restate_sync.protocol.messages import pb
from restate_sync.protocol.vm import VM

RAW_ID = bytes(range(24))


def frame(message: Any, flags: int = 0) -> bytes:
    return encode_frame(m.MESSAGE_TYPES[type(message)], message.SerializeToString(), flags)


def start(
    known_entries: int,
    *,
    partial_state: bool = True,
    state: dict[str, bytes] | None = None,
    key: str = "",
    retry_count: int = 0,
    duration_ms: int = 0,
    seed: int = 42,
) -> Any:
    message = pb.StartMessage(
        id=RAW_ID,
        debug_id="inv_1test",
        known_entries=known_entries,
        partial_state=partial_state,
        key=key,
        retry_count_since_last_stored_entry=retry_count,
        duration_since_last_stored_entry=duration_ms,
        random_seed=seed,
    )
    for k, v in (state or {}).items():
        message.state_map.add(key=k.encode(), value=v)
    return message


def input_command(data: bytes = b"my-data", headers: dict[str, str] | None = None) -> Any:
    message = pb.InputCommandMessage()
    message.value.content = data
    for k, v in (headers or {}).items():
        message.headers.add(key=k, value=v)
    return message


def completion(
    cls: Any,
    cid: int,
    *,
    value: bytes | None = None,
    void: bool = False,
    failure: tuple[int, str] | None = None,
    invocation_id: str | None = None,
) -> Any:
    message = cls(completion_id=cid)
    if value is not None:
        message.value.content = value
    if void:
        message.void.SetInParent()
    if failure is not None:
        message.failure.code, message.failure.message = failure
    if invocation_id is not None:
        message.invocation_id = invocation_id
    return message


def signal(
    idx: int | None = None,
    name: str | None = None,
    value: bytes | None = None,
    void: bool = False,
    failure: tuple[int, str] | None = None,
) -> Any:
    message = pb.SignalNotificationMessage()
    if idx is not None:
        message.idx = idx
    if name is not None:
        message.name = name
    if value is not None:
        message.value.content = value
    if void:
        message.void.SetInParent()
    if failure is not None:
        message.failure.code, message.failure.message = failure
    return message


def new_vm(*messages: Any, eof: bool = False, version: int = 6, split: int | None = None) -> VM:
    """A VM fed ``messages`` as bytes (optionally split into ``split``-byte chunks)."""
    vm = VM(version)
    data = b"".join(frame(msg) for msg in messages)
    if split:
        for i in range(0, len(data), split):
            vm.notify_input(data[i : i + split])
    else:
        vm.notify_input(data)
    if eof:
        vm.notify_input_closed()
    return vm


def written(vm: VM) -> list[Any]:
    """Decode everything the VM wrote since the last call."""
    out = []
    for message_type, _flags, payload in FrameDecoder().feed(vm.take_output()):
        out.append(m.MESSAGE_CLASSES[message_type].FromString(payload))
    return out


def kinds(messages: list[Any]) -> list[str]:
    return [type(msg).__name__ for msg in messages]
