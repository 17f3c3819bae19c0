"""HTTP/2 wire vocabulary (RFC 9113 §4, §6, §7): frame types, flags, settings, error codes, and
the builders of the frames the server sends.

Nothing here holds state; :mod:`.h2connection` decides what to send and when.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "FRAME_NAMES",
    "PREFACE",
    "error_name",
    "frame_header",
    "goaway_frame",
    "rst_stream_frame",
    "settings_frame",
    "window_update_frame",
]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 §3.4); a SETTINGS frame must follow it."""

# frame types
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

FRAME_NAMES: Final = {
    DATA: "DATA",
    HEADERS: "HEADERS",
    PRIORITY: "PRIORITY",
    RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS",
    PUSH_PROMISE: "PUSH_PROMISE",
    PING: "PING",
    GOAWAY: "GOAWAY",
    WINDOW_UPDATE: "WINDOW_UPDATE",
    CONTINUATION: "CONTINUATION",
}

# flags
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

# settings
SETTINGS_HEADER_TABLE_SIZE: Final = 0x1
SETTINGS_ENABLE_PUSH: Final = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS: Final = 0x3
SETTINGS_INITIAL_WINDOW_SIZE: Final = 0x4
SETTINGS_MAX_FRAME_SIZE: Final = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE: Final = 0x6

# error codes
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
SETTINGS_TIMEOUT: Final = 0x4
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
ENHANCE_YOUR_CALM: Final = 0xB

_ERROR_NAMES: Final = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}

DEFAULT_WINDOW: Final = 65535
"""Initial flow-control window of every stream and of the connection (RFC 9113 §6.9.2)."""
MAX_WINDOW: Final = 2**31 - 1
DEFAULT_MAX_FRAME_SIZE: Final = 16384
MAX_MAX_FRAME_SIZE: Final = 2**24 - 1

# frame header: 24-bit length (as 16 + 8 bits), type, flags, reserved bit + 31-bit stream id
FRAME_HEADER: Final = struct.Struct(">HBBBL")
U32: Final = struct.Struct(">L")
SETTING: Final = struct.Struct(">HL")
GOAWAY_BODY: Final = struct.Struct(">LL")

_pack_header = FRAME_HEADER.pack
_pack_u32 = U32.pack


def error_name(code: int) -> str:
    return _ERROR_NAMES.get(code, f"error 0x{code:x}")


def frame_name(frame_type: int) -> str:
    return FRAME_NAMES.get(frame_type, f"frame type 0x{frame_type:x}")


def frame_header(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return _pack_header(length >> 8, length & 0xFF, frame_type, flags, stream_id)


def settings_frame(settings: list[tuple[int, int]]) -> bytes:
    return frame_header(6 * len(settings), SETTINGS, 0, 0) + b"".join(SETTING.pack(*s) for s in settings)


SETTINGS_ACK_FRAME: Final = frame_header(0, SETTINGS, ACK, 0)


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return _pack_header(0, 4, WINDOW_UPDATE, 0, stream_id) + _pack_u32(increment)


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    return _pack_header(0, 4, RST_STREAM, 0, stream_id) + _pack_u32(code)


def ping_ack_frame(opaque: bytes) -> bytes:
    return _pack_header(0, 8, PING, ACK, 0) + opaque


def goaway_frame(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame_header(8 + len(debug), GOAWAY, 0, 0) + GOAWAY_BODY.pack(last_stream_id, code) + debug
