"""Message framing of the Restate service protocol.

Every message is an 8-byte big-endian header followed by its protobuf payload::

    [ type: u16 ][ flags: u16 ][ payload length: u32 ][ payload ... ]

:func:`encode_frame` builds one frame; :class:`FrameDecoder` turns a byte stream split at
arbitrary positions back into ``(type, flags, payload)`` triples.

A message may not be larger than :data:`DEFAULT_MAX_MESSAGE_SIZE` (32 MiB + 1 MiB: restate-server's
default ``networking.message-size-limit`` of 32 MiB bounds every journal entry and the eager
state it sends, plus room for the envelope). Set ``RESTATE_SYNC_MAX_MESSAGE_SIZE`` (bytes) to
change it, e.g. after raising the server's limit. A frame whose header declares more is rejected
as soon as the header is read, before any of its payload is buffered.
"""

from __future__ import annotations

import os
import struct

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HEADER_SIZE",
    "MAX_MESSAGE_SIZE_ENV",
    "REQUESTED_ACK",
    "FrameDecoder",
    "FramingError",
    "configured_max_message_size",
    "encode_frame",
]

_HEADER = struct.Struct(">HHI")
HEADER_SIZE = _HEADER.size
#: Flag bit asking the runtime to acknowledge a message (V7: set on run proposals only).
REQUESTED_ACK = 0x8000

DEFAULT_MAX_MESSAGE_SIZE = 33 * 1024 * 1024
MAX_MESSAGE_SIZE_ENV = "RESTATE_SYNC_MAX_MESSAGE_SIZE"
_MAX_ALLOWED = 0xFFFFFFFF  # the header's length field is a u32

_configured: int | None = None


def configured_max_message_size() -> int:
    """The message size limit: ``RESTATE_SYNC_MAX_MESSAGE_SIZE`` if set (read once), else the default."""
    global _configured
    if _configured is None:
        raw = os.environ.get(MAX_MESSAGE_SIZE_ENV, "").strip()
        if not raw:
            _configured = DEFAULT_MAX_MESSAGE_SIZE
        elif not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= _MAX_ALLOWED):
            raise ValueError(
                f"{MAX_MESSAGE_SIZE_ENV} must be a number of bytes between 1 and {_MAX_ALLOWED}, got {raw!r}"
            )
        else:
            _configured = int(raw)
    return _configured


class FramingError(Exception):
    """The byte stream cannot be split into messages; ``code`` is the ErrorMessage code to send."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.code = code


def encode_frame(message_type: int, payload: bytes, flags: int = 0) -> bytes:
    """Return the header plus ``payload`` for one message."""
    return _HEADER.pack(message_type, flags, len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: feed it chunks, get complete frames out.

    Chunks may split a frame anywhere, including inside the header. The decoder keeps at most
    one incomplete frame buffered, and never more than ``max_message_size`` payload bytes of it.
    """

    __slots__ = ("_buffer", "_max", "_need")

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if not 0 < max_message_size <= _MAX_ALLOWED:
            raise ValueError(f"max_message_size must be between 1 and {_MAX_ALLOWED}, got {max_message_size}")
        self._buffer = bytearray()
        self._need = HEADER_SIZE
        self._max = max_message_size

    @property
    def pending(self) -> int:
        """Number of buffered bytes that do not form a complete frame yet."""
        return len(self._buffer)

    def reset(self) -> None:
        """Drop whatever is buffered (the stream is abandoned)."""
        self._buffer = bytearray()
        self._need = HEADER_SIZE

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """Consume ``data``; return every frame it completed, in order.

        Raises :class:`FramingError` (code 571) when a header declares more than the limit.
        """
        buffer = self._buffer
        if not buffer and type(data) is bytes:
            return self._feed_whole(data)
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
                if length > self._max:
                    raise self._too_large(message_type, length)
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

    def _too_large(self, message_type: int, length: int) -> FramingError:
        return FramingError(
            f"message type 0x{message_type:04x} declares {length} bytes, more than the "
            f"{self._max} allowed (set {MAX_MESSAGE_SIZE_ENV} to raise the limit)",
            code=571,
        )

    def _feed_whole(self, data: bytes) -> list[tuple[int, int, bytes]]:
        """:meth:`feed` with nothing buffered (the usual case: a chunk holds whole messages):
        frames are cut from ``data`` itself; only an incomplete rest is buffered."""
        frames: list[tuple[int, int, bytes]] = []
        offset = 0
        end = len(data)
        while end - offset >= HEADER_SIZE:
            message_type, flags, length = _HEADER.unpack_from(data, offset)
            if length > self._max:
                raise self._too_large(message_type, length)
            start = offset + HEADER_SIZE
            stop = start + length
            if stop > end:
                self._need = HEADER_SIZE + length
                break
            frames.append((message_type, flags, data[start:stop]))
            offset = stop
        if offset < end:
            self._buffer += data[offset:] if offset else data
        return frames
