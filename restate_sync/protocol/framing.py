"""Message framing of the Restate service protocol.

Every message is an 8-byte big-endian header followed by its protobuf payload::

    [ type: u16 ][ flags: u16 ][ payload length: u32 ][ payload ... ]

:func:`encode_frame` builds one frame; :class:`FrameDecoder` turns a byte stream split at
arbitrary positions back into ``(type, flags, payload)`` triples.
"""

from __future__ import annotations

import struct

__all__ = ["HEADER_SIZE", "MAX_MESSAGE_SIZE", "FrameDecoder", "FramingError", "encode_frame"]

_HEADER = struct.Struct(">HHI")
HEADER_SIZE = _HEADER.size
#: Upper bound on a single message; anything larger is treated as a corrupt stream.
MAX_MESSAGE_SIZE = 1 << 30


class FramingError(Exception):
    """The byte stream cannot be split into messages."""


def encode_frame(message_type: int, payload: bytes, flags: int = 0) -> bytes:
    """Return the header plus ``payload`` for one message."""
    return _HEADER.pack(message_type, flags, len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: feed it chunks, get complete frames out.

    Chunks may split a frame anywhere, including inside the header. The decoder keeps at most
    one incomplete frame buffered.
    """

    __slots__ = ("_buffer", "_need")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._need = HEADER_SIZE

    @property
    def pending(self) -> int:
        """Number of buffered bytes that do not form a complete frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Consume ``data``; return every frame it completed, in order."""
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._need:
            return []
        frames: list[tuple[int, int, bytes]] = []
        view = memoryview(buffer)
        offset = 0
        end = len(buffer)
        try:
            while end - offset >= HEADER_SIZE:
                message_type, flags, length = _HEADER.unpack_from(view, offset)
                if length > MAX_MESSAGE_SIZE:
                    raise FramingError(
                        f"message type 0x{message_type:04x} declares {length} bytes, "
                        f"more than the {MAX_MESSAGE_SIZE} allowed"
                    )
                start = offset + HEADER_SIZE
                if end - start < length:
                    self._need = HEADER_SIZE + length
                    break
                frames.append((message_type, flags, bytes(view[start : start + length])))
                offset = start + length
            else:
                self._need = HEADER_SIZE
        finally:
            view.release()
        if offset:
            del buffer[:offset]
            if len(buffer) < HEADER_SIZE:
                self._need = HEADER_SIZE
        return frames
