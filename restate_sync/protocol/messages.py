"""Message type ids of the service protocol and the protobuf classes behind them.

The ids are fixed by the protocol (docs/protocol.md, "Framing"): ``0x0000–0x03FF`` control messages,
``0x0400–0x7FFF`` commands, ``0x8000–0xFBFF`` notifications.
"""

from __future__ import annotations

from typing import Any

from . import protocol_pb2 as pb

__all__ = [
    "MESSAGE_CLASSES",
    "MESSAGE_NAMES",
    "is_command",
    "is_notification",
    "pb",
]

# control
START = 0x0000
SUSPENSION = 0x0001
ERROR = 0x0002
END = 0x0003
COMMAND_ACK = 0x0004
PROPOSE_RUN_COMPLETION = 0x0005
AWAITING_ON = 0x0006
PROPOSE_RUN_COMPLETION_ACK = 0x0007
# commands
INPUT = 0x0400
OUTPUT = 0x0401
GET_LAZY_STATE = 0x0402
SET_STATE = 0x0403
CLEAR_STATE = 0x0404
CLEAR_ALL_STATE = 0x0405
GET_LAZY_STATE_KEYS = 0x0406
GET_EAGER_STATE = 0x0407
GET_EAGER_STATE_KEYS = 0x0408
GET_PROMISE = 0x0409
PEEK_PROMISE = 0x040A
COMPLETE_PROMISE = 0x040B
SLEEP = 0x040C
CALL = 0x040D
ONE_WAY_CALL = 0x040E
SEND_SIGNAL = 0x0410
RUN = 0x0411
ATTACH_INVOCATION = 0x0412
GET_INVOCATION_OUTPUT = 0x0413
COMPLETE_AWAKEABLE = 0x0414
# notifications
GET_LAZY_STATE_COMPLETION = 0x8002
GET_LAZY_STATE_KEYS_COMPLETION = 0x8006
GET_PROMISE_COMPLETION = 0x8009
PEEK_PROMISE_COMPLETION = 0x800A
COMPLETE_PROMISE_COMPLETION = 0x800B
SLEEP_COMPLETION = 0x800C
CALL_COMPLETION = 0x800D
CALL_INVOCATION_ID_COMPLETION = 0x800E
RUN_COMPLETION = 0x8011
ATTACH_INVOCATION_COMPLETION = 0x8012
GET_INVOCATION_OUTPUT_COMPLETION = 0x8013
SIGNAL_NOTIFICATION = 0xFBFF

MESSAGE_CLASSES: dict[int, Any] = {
    START: pb.StartMessage,
    SUSPENSION: pb.SuspensionMessage,
    ERROR: pb.ErrorMessage,
    END: pb.EndMessage,
    COMMAND_ACK: pb.CommandAckMessage,
    PROPOSE_RUN_COMPLETION: pb.ProposeRunCompletionMessage,
    AWAITING_ON: pb.AwaitingOnMessage,
    PROPOSE_RUN_COMPLETION_ACK: pb.ProposeRunCompletionAckMessage,
    INPUT: pb.InputCommandMessage,
    OUTPUT: pb.OutputCommandMessage,
    GET_LAZY_STATE: pb.GetLazyStateCommandMessage,
    SET_STATE: pb.SetStateCommandMessage,
    CLEAR_STATE: pb.ClearStateCommandMessage,
    CLEAR_ALL_STATE: pb.ClearAllStateCommandMessage,
    GET_LAZY_STATE_KEYS: pb.GetLazyStateKeysCommandMessage,
    GET_EAGER_STATE: pb.GetEagerStateCommandMessage,
    GET_EAGER_STATE_KEYS: pb.GetEagerStateKeysCommandMessage,
    GET_PROMISE: pb.GetPromiseCommandMessage,
    PEEK_PROMISE: pb.PeekPromiseCommandMessage,
    COMPLETE_PROMISE: pb.CompletePromiseCommandMessage,
    SLEEP: pb.SleepCommandMessage,
    CALL: pb.CallCommandMessage,
    ONE_WAY_CALL: pb.OneWayCallCommandMessage,
    SEND_SIGNAL: pb.SendSignalCommandMessage,
    RUN: pb.RunCommandMessage,
    ATTACH_INVOCATION: pb.AttachInvocationCommandMessage,
    GET_INVOCATION_OUTPUT: pb.GetInvocationOutputCommandMessage,
    COMPLETE_AWAKEABLE: pb.CompleteAwakeableCommandMessage,
    GET_LAZY_STATE_COMPLETION: pb.GetLazyStateCompletionNotificationMessage,
    GET_LAZY_STATE_KEYS_COMPLETION: pb.GetLazyStateKeysCompletionNotificationMessage,
    GET_PROMISE_COMPLETION: pb.GetPromiseCompletionNotificationMessage,
    PEEK_PROMISE_COMPLETION: pb.PeekPromiseCompletionNotificationMessage,
    COMPLETE_PROMISE_COMPLETION: pb.CompletePromiseCompletionNotificationMessage,
    SLEEP_COMPLETION: pb.SleepCompletionNotificationMessage,
    CALL_COMPLETION: pb.CallCompletionNotificationMessage,
    CALL_INVOCATION_ID_COMPLETION: pb.CallInvocationIdCompletionNotificationMessage,
    RUN_COMPLETION: pb.RunCompletionNotificationMessage,
    ATTACH_INVOCATION_COMPLETION: pb.AttachInvocationCompletionNotificationMessage,
    GET_INVOCATION_OUTPUT_COMPLETION: pb.GetInvocationOutputCompletionNotificationMessage,
    SIGNAL_NOTIFICATION: pb.SignalNotificationMessage,
}

MESSAGE_TYPES: dict[Any, int] = {cls: type_id for type_id, cls in MESSAGE_CLASSES.items()}
MESSAGE_NAMES: dict[int, str] = {type_id: cls.DESCRIPTOR.name for type_id, cls in MESSAGE_CLASSES.items()}


def is_command(message_type: int) -> bool:
    """Whether ``message_type`` lies in the command range."""
    return 0x0400 <= message_type <= 0x7FFF


def is_notification(message_type: int) -> bool:
    """Whether ``message_type`` lies in the notification range."""
    return 0x8000 <= message_type <= 0xFBFF


def message_name(message_type: int) -> str:
    """A readable name for a type id, known or not."""
    return MESSAGE_NAMES.get(message_type, f"unknown message 0x{message_type:04x}")
