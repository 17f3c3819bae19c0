"""A gevent HTTP/2 (h2c, prior knowledge) server for the endpoint.

The server side of RFC 9113, written for the one real peer (the Restate runtime) but robust
against a misbehaving client. Frames are parsed with ``struct`` straight from the received
bytes; header blocks are decoded by :mod:`.hpack_codec` (a byte-at-a-time Huffman automaton);
response header blocks are stateless literals, encoded once per distinct header list.

Threads of control: one greenlet per connection reads the socket and processes frames; one
greenlet per stream runs the endpoint; one writer greenlet per connection sends. Every frame,
whoever produces it (a stream's response, a SETTINGS/PING acknowledgement, a WINDOW_UPDATE), is
appended to the connection's output list and the writer is woken; it runs once the producer
yields, so all frames produced in the meantime by every stream leave in one ``sendall``. While
the reader works through a batch of received frames it wakes the writer only at the end, after
the streams those frames started or fed, so their immediate answers share that ``sendall`` with
our acknowledgements.

Flow control is honoured in both directions. Inbound: we advertise a 4 MiB stream window and
raise the connection window to 16 MiB, account every DATA frame as consumed when it is queued
for its stream, and give the credit back in batches (a WINDOW_UPDATE once half a window has been
used), so large journals never stall. Outbound: DATA is split at the peer's SETTINGS_MAX_FRAME_SIZE
and the smaller of the stream and connection windows; a writer without window parks until a
WINDOW_UPDATE or a SETTINGS_INITIAL_WINDOW_SIZE change (which may also make windows negative).

Streams go idle → open → half-closed (remote) → closed; their state is dropped as soon as both
halves have ended or the stream is reset, so long-lived connections do not accumulate it. The end
of a request body may come as END_STREAM on HEADERS, on a (possibly empty) DATA frame, or on
trailers; the stream's inbox then gets ``EOF``. An RST_STREAM from the peer puts
``DISCONNECTED`` in that stream's inbox, a lost connection in every stream's; writing to a reset
stream is a silent no-op.

The connection is never closed by us while the peer keeps it open (the runtime pools
connections; closing one under load fails every in-flight stream), except after a protocol error:
then we send GOAWAY with the error code, log a warning naming it, and close that connection
(the server keeps serving the others). Stopping the server sends GOAWAY (NO_ERROR) and closes
every connection.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable
from typing import Any, cast

import gevent
from gevent.event import Event
from gevent.hub import Waiter
from gevent.pool import Pool
from gevent.server import StreamServer

from ..exchange import DISCONNECTED, EOF, Inbox
from .hpack_codec import TABLE_SIZE_ZERO, Decoder, HeaderListTooLargeError, HPACKDecodingError, encode_headers

__all__ = ["H2Server", "H2Stream", "parse_bind"]

logger = logging.getLogger("restate_sync.transport")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_READ_SIZE = 65536

# Generous receive windows: the runtime may send large journals in one go.
_STREAM_WINDOW = 4 * 1024 * 1024
_CONNECTION_WINDOW = 16 * 1024 * 1024
_MAX_CONCURRENT_STREAMS = 1000
_MAX_HEADER_LIST_SIZE = 256 * 1024
# a header block (HEADERS + CONTINUATION frames) larger than this ends the connection
_MAX_HEADER_BLOCK = 2 * _MAX_HEADER_LIST_SIZE
_MAX_FRAME_SIZE = 16384  # ours: the protocol default, not changed by our SETTINGS
_DEFAULT_WINDOW = 65535
_MAX_WINDOW = 2**31 - 1
# how many ids of streams we reset are remembered (frames the peer had in flight are ignored)
_RESET_MEMORY = 1024
# how long a connection closed after a protocol error waits for the peer to go away
_LINGER = 1.0

# frame types
_DATA = 0x0
_HEADERS = 0x1
_PRIORITY = 0x2
_RST_STREAM = 0x3
_SETTINGS = 0x4
_PUSH_PROMISE = 0x5
_PING = 0x6
_GOAWAY = 0x7
_WINDOW_UPDATE = 0x8
_CONTINUATION = 0x9

# flags
_END_STREAM = 0x1
_ACK = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8
_PRIORITY_FLAG = 0x20

# settings
_SETTINGS_HEADER_TABLE_SIZE = 0x1
_SETTINGS_ENABLE_PUSH = 0x2
_SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
_SETTINGS_INITIAL_WINDOW_SIZE = 0x4
_SETTINGS_MAX_FRAME_SIZE = 0x5
_SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

# error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB
_ERROR_NAMES = {
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

# frame header: 24-bit length (as 16 + 8 bits), type, flags, reserved bit + 31-bit stream id
_FRAME_HEADER = struct.Struct(">HBBBL")
_unpack_header = _FRAME_HEADER.unpack_from
_pack_header = _FRAME_HEADER.pack
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")
_GOAWAY_BODY = struct.Struct(">LL")


def _frame_header(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return _pack_header(length >> 8, length & 0xFF, frame_type, flags, stream_id)


def _error_name(code: int) -> str:
    return _ERROR_NAMES.get(code, f"error 0x{code:x}")


_SETTINGS_ACK = _frame_header(0, _SETTINGS, _ACK, 0)
_OUR_SETTINGS = (
    _frame_header(18, _SETTINGS, 0, 0)
    + _SETTING.pack(_SETTINGS_MAX_CONCURRENT_STREAMS, _MAX_CONCURRENT_STREAMS)
    + _SETTING.pack(_SETTINGS_INITIAL_WINDOW_SIZE, _STREAM_WINDOW)
    + _SETTING.pack(_SETTINGS_MAX_HEADER_LIST_SIZE, _MAX_HEADER_LIST_SIZE)
    + _frame_header(4, _WINDOW_UPDATE, 0, 0)
    + _U32.pack(_CONNECTION_WINDOW - _DEFAULT_WINDOW)
)

# Encoded response header blocks, shared by all connections (they carry no HPACK state).
_header_blocks: dict[tuple[Any, ...], bytes] = {}
_HEADER_BLOCK_CACHE_SIZE = 256


def _header_block(status: int, headers: list[tuple[str, str]], content_length: int | None) -> bytes:
    key = (status, *headers) if content_length is None else (status, content_length, *headers)
    block = _header_blocks.get(key)
    if block is None:
        response = [(":status", str(status))]
        response += [(name.lower(), value) for name, value in headers]
        if content_length is not None:
            response.append(("content-length", str(content_length)))
        block = encode_headers(response)
        if len(_header_blocks) >= _HEADER_BLOCK_CACHE_SIZE:
            _header_blocks.clear()
        _header_blocks[key] = block
    return block


class _ConnectionError(Exception):
    """A connection error (RFC 9113 §5.4.1): GOAWAY with ``code``, then close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class H2Stream:
    """One HTTP/2 request/response; implements :class:`~restate_sync.endpoint.HttpExchange`."""

    http2 = True

    __slots__ = (
        "_connection",
        "_ended",
        "done",
        "headers",
        "inbox",
        "local_closed",
        "method",
        "path",
        "recv_unacked",
        "remote_closed",
        "reset",
        "send_window",
        "stream_id",
    )

    def __init__(self, connection: H2Connection, stream_id: int, headers: dict[str, str]) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self.headers = headers
        self.method = headers.get(":method", "GET")
        self.path = headers.get(":path", "/")
        self.inbox = Inbox()
        self._ended = False  # the endpoint ended the response (respond with body, or close)
        self.send_window = connection.peer_initial_window
        self.recv_unacked = 0  # request body octets not yet given back with a WINDOW_UPDATE
        self.remote_closed = False  # the request half ended
        self.local_closed = False  # END_STREAM of the response was queued
        self.reset = False  # RST_STREAM sent or received: nothing more goes out
        self.done = False  # the endpoint returned: request body bytes are dropped

    def respond(self, status: int, headers: list[tuple[str, str]], body: bytes | None = None) -> None:
        connection = self._connection
        block = _header_block(status, headers, None if body is None else len(body))
        if body is None:
            connection.send_headers(self, block, end_stream=False)
            return
        self._ended = True
        if body:
            connection.send_headers(self, block, end_stream=False)
            connection.send_data(self, body, end_stream=True)
        else:
            connection.send_headers(self, block, end_stream=True)

    def write(self, data: bytes) -> None:
        if not self._ended:
            self._connection.send_data(self, data, end_stream=False)

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            self._connection.send_data(self, b"", end_stream=True)


class H2Connection:
    """Serves one client connection until the peer closes it (or breaks the protocol)."""

    def __init__(self, sock: socket.socket, handler: Callable[[H2Stream], None]) -> None:
        self.sock = sock
        self.handler = handler
        self.streams: dict[int, H2Stream] = {}
        self.peer_initial_window = _DEFAULT_WINDOW
        self._peer_max_frame = _MAX_FRAME_SIZE
        self._send_window = _DEFAULT_WINDOW  # connection-level, outbound
        self._recv_unacked = 0  # connection-level inbound octets not yet given back
        self._last_stream_id = 0
        self._reset_ids: dict[int, None] = {}
        self._decoder = Decoder(max_header_list_size=_MAX_HEADER_LIST_SIZE)
        self._table_size_update = False  # the peer lowered SETTINGS_HEADER_TABLE_SIZE
        self._pending = b""  # received bytes that do not make a whole frame yet
        self._settings_seen = False
        # a header block in progress: (stream id, fragments, octets, END_STREAM)
        self._continuation: tuple[int, list[bytes], int, bool] | None = None
        self._out: list[bytes] = []
        self._writer_waiter: Waiter | None = None
        self._window_event: Event | None = None
        self._loop = gevent.get_hub().loop
        # While the reader processes received frames, the writer is woken only at the end: its
        # wake-up then comes after those of the streams the frames started or fed, so what they
        # answer straight away leaves in the same sendall as our acknowledgements.
        self._receiving = False
        self._closed = False

    # ------------------------------------------------------------------ writing

    def _queue(self, frame: bytes) -> None:
        self._out.append(frame)
        waiter = self._writer_waiter
        if waiter is not None and not self._receiving:
            self._writer_waiter = None
            self._loop.run_callback(waiter.switch, None)

    def _queue_all(self, frames: list[bytes]) -> None:
        self._out += frames
        waiter = self._writer_waiter
        if waiter is not None and not self._receiving:
            self._writer_waiter = None
            self._loop.run_callback(waiter.switch, None)

    def _writer(self) -> None:
        sock = self.sock
        while True:
            out = self._out
            if out:
                self._out = []
                try:
                    _send_all(sock, out[0] if len(out) == 1 else b"".join(out))
                except OSError as exc:
                    if not self._closed:
                        logger.info("connection to %s lost while writing: %s", _peer(sock), exc)
                        self._closed = True
                        self._window_changed()
                        try:
                            sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
                        except OSError:
                            pass
                    return
                continue
            if self._closed:
                return
            waiter = Waiter()
            self._writer_waiter = waiter
            waiter.get()

    def _wake_writer(self) -> None:
        waiter = self._writer_waiter
        if waiter is not None:
            self._writer_waiter = None
            self._loop.run_callback(waiter.switch, None)

    def _window_changed(self) -> None:
        """Wake the writers parked for flow-control window."""
        event = self._window_event
        if event is not None:
            self._window_event = None
            event.set()

    def send_headers(self, stream: H2Stream, block: bytes, end_stream: bool) -> None:
        if self._closed or stream.reset or stream.local_closed:
            return
        if self._table_size_update:
            self._table_size_update = False
            block = TABLE_SIZE_ZERO + block
        flags = _END_STREAM if end_stream else 0
        stream_id = stream.stream_id
        max_frame = self._peer_max_frame
        if len(block) <= max_frame:
            self._queue(_frame_header(len(block), _HEADERS, flags | _END_HEADERS, stream_id) + block)
        else:  # HEADERS + CONTINUATION frames, contiguous
            frames = []
            frame_type = _HEADERS
            for offset in range(0, len(block), max_frame):
                fragment = block[offset : offset + max_frame]
                if offset + max_frame >= len(block):
                    flags |= _END_HEADERS
                frames.append(_frame_header(len(fragment), frame_type, flags, stream_id))
                frames.append(fragment)
                frame_type = _CONTINUATION
                flags = 0
            self._queue_all(frames)
        if end_stream:
            self._local_end(stream)

    def send_data(self, stream: H2Stream, data: bytes, end_stream: bool) -> None:
        """Send ``data`` on a stream, waiting for flow-control window as needed."""
        total = len(data)
        stream_id = stream.stream_id
        pos = 0
        view: memoryview | None = None
        while True:
            if self._closed or stream.reset or stream.local_closed:
                return
            remaining = total - pos
            if not remaining:
                if end_stream:  # an empty DATA frame needs no window
                    self._queue(_frame_header(0, _DATA, _END_STREAM, stream_id))
                    self._local_end(stream)
                return
            window = min(stream.send_window, self._send_window)
            if window <= 0:
                # the frames queued so far leave while we wait
                event = self._window_event
                if event is None:
                    event = self._window_event = Event()
                event.wait()
                continue
            size = min(window, remaining)
            stream.send_window -= size
            self._send_window -= size
            last = pos + size == total
            max_frame = self._peer_max_frame
            if size == total and size <= max_frame:  # the common case: one frame, no copy
                flags = _END_STREAM if end_stream else 0
                self._queue_all([_frame_header(size, _DATA, flags, stream_id), data])
                pos = total
            else:
                if view is None:
                    view = memoryview(data)
                frames: list[Any] = []
                stop = pos + size
                while pos < stop:
                    n = min(max_frame, stop - pos)
                    flags = _END_STREAM if end_stream and last and pos + n == stop else 0
                    frames.append(_frame_header(n, _DATA, flags, stream_id))
                    frames.append(view[pos : pos + n])
                    pos += n
                self._queue_all(frames)
            if last:
                if end_stream:
                    self._local_end(stream)
                return

    def _local_end(self, stream: H2Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self.streams.pop(stream.stream_id, None)

    # ------------------------------------------------------------------ stream errors

    def _send_reset(self, stream_id: int, code: int) -> None:
        self._queue(_frame_header(4, _RST_STREAM, 0, stream_id) + _U32.pack(code))
        reset_ids = self._reset_ids
        reset_ids[stream_id] = None
        if len(reset_ids) > _RESET_MEMORY:
            del reset_ids[next(iter(reset_ids))]

    def _reset(self, stream: H2Stream, code: int) -> None:
        """A stream error: RST_STREAM to the peer, DISCONNECTED to the stream."""
        if stream.reset:
            return
        stream.reset = True
        self.streams.pop(stream.stream_id, None)
        if not (stream.local_closed and stream.remote_closed):
            self._send_reset(stream.stream_id, code)
        stream.inbox.put(DISCONNECTED)
        self._window_changed()

    # ------------------------------------------------------------------ reading

    def serve(self, initial: bytes) -> None:
        """Serve the connection; ``initial`` holds the bytes read so far (the preface first)."""
        self._queue(_OUR_SETTINGS)
        writer = gevent.spawn(self._writer)
        sock = self.sock
        data = initial[len(PREFACE) :]
        failed = False
        try:
            while True:
                if data:
                    self._receiving = True
                    try:
                        self._receive(data)
                    except _ConnectionError as exc:
                        logger.warning(
                            "HTTP/2 protocol error from %s: %s: %s; closing the connection",
                            _peer(sock),
                            _error_name(exc.code),
                            exc,
                        )
                        self._goaway(exc.code, str(exc))
                        failed = True
                        return
                    self._receiving = False
                    if self._out:
                        self._wake_writer()
                try:
                    data = sock.recv(_READ_SIZE)
                except OSError as exc:
                    if not self._closed:
                        logger.info("connection from %s lost: %s", _peer(sock), exc)
                    return
                if not data:
                    return
        except gevent.GreenletExit:  # the server stops
            self._goaway(NO_ERROR, "")
            raise
        finally:
            self._closed = True
            streams = list(self.streams.values())
            self.streams.clear()
            for stream in streams:
                stream.inbox.put(DISCONNECTED)
            self._window_changed()
            self._wake_writer()
            writer.join(timeout=1)
            if failed:
                self._linger()

    def _goaway(self, code: int, message: str) -> None:
        debug = message.encode("utf-8", "replace")[:256]
        self._queue(
            _frame_header(8 + len(debug), _GOAWAY, 0, 0)
            + _GOAWAY_BODY.pack(self._last_stream_id, code)
            + debug
        )

    def _linger(self) -> None:
        """After GOAWAY: stop sending and let the peer close first (briefly), so it reads it."""
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            with gevent.Timeout(_LINGER, False):  # pyright: ignore[reportArgumentType]  # False: no exception
                while sock.recv(_READ_SIZE):
                    pass
        except OSError:
            pass

    def _receive(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        end = len(data)
        pos = 0
        while end - pos >= 9:
            high, low, frame_type, flags, stream_id = _unpack_header(data, pos)
            length = (high << 8) | low
            if length > _MAX_FRAME_SIZE:
                raise _ConnectionError(
                    FRAME_SIZE_ERROR, f"frame of {length} octets exceeds SETTINGS_MAX_FRAME_SIZE"
                )
            start = pos + 9
            stop = start + length
            if stop > end:
                break
            pos = stop
            stream_id &= 0x7FFFFFFF
            if not self._settings_seen:
                if frame_type != _SETTINGS or flags & _ACK:
                    raise _ConnectionError(PROTOCOL_ERROR, "the client preface must start with SETTINGS")
                self._settings_seen = True
            if self._continuation is not None and frame_type != _CONTINUATION:
                raise _ConnectionError(PROTOCOL_ERROR, "header block interrupted by another frame")
            if frame_type == _DATA:
                self._on_data(data, start, stop, flags, stream_id)
            elif frame_type == _HEADERS:
                self._on_headers(data, start, stop, flags, stream_id)
            elif frame_type == _WINDOW_UPDATE:
                self._on_window_update(data, start, length, stream_id)
            elif frame_type == _SETTINGS:
                self._on_settings(data, start, length, flags, stream_id)
            elif frame_type == _RST_STREAM:
                self._on_rst_stream(data, start, length, stream_id)
            elif frame_type == _PING:
                if stream_id:
                    raise _ConnectionError(PROTOCOL_ERROR, "PING on a stream")
                if length != 8:
                    raise _ConnectionError(FRAME_SIZE_ERROR, f"PING of {length} octets")
                if not flags & _ACK:
                    self._queue(_frame_header(8, _PING, _ACK, 0) + data[start:stop])
            elif frame_type == _CONTINUATION:
                self._on_continuation(data, start, stop, flags, stream_id)
            elif frame_type == _PRIORITY:
                self._on_priority(length, stream_id)
            elif frame_type == _GOAWAY:
                self._on_goaway(data, start, length, stream_id)
            elif frame_type == _PUSH_PROMISE:
                raise _ConnectionError(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
            # unknown frame types are ignored (RFC 9113 §4.1)
        if pos < end:
            self._pending = data[pos:]

    def _on_data(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if not stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "DATA on stream 0")
        length = stop - start  # the whole payload counts against the windows, padding included
        unacked = self._recv_unacked + length
        if unacked > _CONNECTION_WINDOW:
            raise _ConnectionError(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        if unacked >= _CONNECTION_WINDOW // 2:
            self._queue(_frame_header(4, _WINDOW_UPDATE, 0, 0) + _U32.pack(unacked))
            unacked = 0
        self._recv_unacked = unacked
        if flags & _PADDED:
            if not length:
                raise _ConnectionError(FRAME_SIZE_ERROR, "padded DATA frame without a pad length")
            pad = data[start]
            start += 1
            if pad > stop - start:
                raise _ConnectionError(PROTOCOL_ERROR, "DATA padding exceeds the payload")
            stop -= pad
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            if stream_id not in self._reset_ids:
                self._send_reset(stream_id, STREAM_CLOSED)
            return
        if stream.remote_closed:
            self._reset(stream, STREAM_CLOSED)
            return
        stream_unacked = stream.recv_unacked + length
        if stream_unacked > _STREAM_WINDOW:
            self._reset(stream, FLOW_CONTROL_ERROR)
            return
        if stop > start and not stream.done:
            stream.inbox.put(data[start:stop])
        if flags & _END_STREAM:
            stream.remote_closed = True
            if not stream.done:
                stream.inbox.put(EOF)
            if stream.local_closed:
                del self.streams[stream_id]
        elif stream_unacked >= _STREAM_WINDOW // 2:
            self._queue(_frame_header(4, _WINDOW_UPDATE, 0, stream_id) + _U32.pack(stream_unacked))
            stream_unacked = 0
        stream.recv_unacked = stream_unacked

    def _on_headers(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if not stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0")
        if flags & _PADDED:
            if start == stop:
                raise _ConnectionError(FRAME_SIZE_ERROR, "padded HEADERS frame without a pad length")
            pad = data[start]
            start += 1
            if pad > stop - start:
                raise _ConnectionError(PROTOCOL_ERROR, "HEADERS padding exceeds the payload")
            stop -= pad
        if flags & _PRIORITY_FLAG:  # stream dependency and weight: ignored (RFC 9113 §5.3.2)
            if stop - start < 5:
                raise _ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority fields")
            start += 5
        block = data[start:stop]
        end_stream = bool(flags & _END_STREAM)
        if flags & _END_HEADERS:
            self._on_header_block(stream_id, block, end_stream)
        else:
            self._continuation = (stream_id, [block], len(block), end_stream)

    def _on_continuation(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        continuation = self._continuation
        if continuation is None:
            raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION without a header block in progress")
        block_stream, fragments, size, end_stream = continuation
        if stream_id != block_stream:
            raise _ConnectionError(PROTOCOL_ERROR, "CONTINUATION on another stream")
        fragments.append(data[start:stop])
        size += stop - start
        if size > _MAX_HEADER_BLOCK:
            raise _ConnectionError(ENHANCE_YOUR_CALM, f"header block larger than {_MAX_HEADER_BLOCK} octets")
        if flags & _END_HEADERS:
            self._continuation = None
            self._on_header_block(stream_id, b"".join(fragments), end_stream)
        else:
            self._continuation = (block_stream, fragments, size, end_stream)

    def _on_header_block(self, stream_id: int, block: bytes, end_stream: bool) -> None:
        # decoded whatever becomes of the stream: the dynamic table spans the connection
        try:
            fields = self._decoder.decode(block)
        except HeaderListTooLargeError as exc:
            raise _ConnectionError(ENHANCE_YOUR_CALM, str(exc)) from None
        except HPACKDecodingError as exc:
            raise _ConnectionError(COMPRESSION_ERROR, f"header block: {exc}") from None
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers
            if stream.remote_closed:
                self._reset(stream, STREAM_CLOSED)
            elif not end_stream:
                self._reset(stream, PROTOCOL_ERROR)  # trailers must end the stream
            else:
                stream.remote_closed = True
                if not stream.done:
                    stream.inbox.put(EOF)
                if stream.local_closed:
                    del self.streams[stream_id]
            return
        if not stream_id & 1:
            raise _ConnectionError(PROTOCOL_ERROR, f"HEADERS on even stream id {stream_id}")
        if stream_id <= self._last_stream_id:
            if stream_id in self._reset_ids:
                return  # trailers of a stream we reset
            raise _ConnectionError(
                PROTOCOL_ERROR,
                f"HEADERS on stream {stream_id}, not above the last stream {self._last_stream_id}",
            )
        self._last_stream_id = stream_id
        if len(self.streams) >= _MAX_CONCURRENT_STREAMS:
            self._send_reset(stream_id, REFUSED_STREAM)
            return
        headers = dict(fields)
        if ":method" not in headers or ":path" not in headers:
            self._send_reset(stream_id, PROTOCOL_ERROR)  # malformed request (RFC 9113 §8.1.1)
            return
        stream = H2Stream(self, stream_id, headers)
        self.streams[stream_id] = stream
        if end_stream:
            stream.remote_closed = True
            stream.inbox.put(EOF)
        gevent.spawn(self._run_stream, stream)

    def _on_window_update(self, data: bytes, start: int, length: int, stream_id: int) -> None:
        if length != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, f"WINDOW_UPDATE of {length} octets")
        increment = _U32.unpack_from(data, start)[0] & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                raise _ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE with increment 0")
            self._send_window += increment
            if self._send_window > _MAX_WINDOW:
                raise _ConnectionError(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._window_changed()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self._last_stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}")
            return  # a closed stream: allowed, ignored
        if not increment:
            self._reset(stream, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > _MAX_WINDOW:
            self._reset(stream, FLOW_CONTROL_ERROR)
            return
        self._window_changed()

    def _on_settings(self, data: bytes, start: int, length: int, flags: int, stream_id: int) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & _ACK:
            if length:
                raise _ConnectionError(FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        if length % 6:
            raise _ConnectionError(FRAME_SIZE_ERROR, f"SETTINGS of {length} octets")
        for offset in range(start, start + length, 6):
            identifier, value = _SETTING.unpack_from(data, offset)
            if identifier == _SETTINGS_INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise _ConnectionError(FLOW_CONTROL_ERROR, f"SETTINGS_INITIAL_WINDOW_SIZE {value}")
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                if delta:
                    for stream in self.streams.values():
                        stream.send_window += delta
                        if stream.send_window > _MAX_WINDOW:
                            raise _ConnectionError(FLOW_CONTROL_ERROR, "a stream window above 2^31-1")
            elif identifier == _SETTINGS_MAX_FRAME_SIZE:
                if not _MAX_FRAME_SIZE <= value <= 2**24 - 1:
                    raise _ConnectionError(PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value}")
                self._peer_max_frame = value
            elif identifier == _SETTINGS_HEADER_TABLE_SIZE:
                # we never index, but an HPACK decoder whose table shrank may insist on hearing
                # about it: the next header block starts with a size update to 0
                if value < 4096:
                    self._table_size_update = True
            elif identifier == _SETTINGS_ENABLE_PUSH and value > 1:
                raise _ConnectionError(PROTOCOL_ERROR, f"SETTINGS_ENABLE_PUSH {value}")
            # MAX_CONCURRENT_STREAMS (we never push), MAX_HEADER_LIST_SIZE (our headers are
            # tiny) and unknown settings: nothing to do
        self._queue(_SETTINGS_ACK)
        self._window_changed()

    def _on_rst_stream(self, data: bytes, start: int, length: int, stream_id: int) -> None:
        if length != 4:
            raise _ConnectionError(FRAME_SIZE_ERROR, f"RST_STREAM of {length} octets")
        if not stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "RST_STREAM on stream 0")
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            if stream_id > self._last_stream_id:
                raise _ConnectionError(PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}")
            return
        stream.reset = True
        stream.inbox.put(DISCONNECTED)
        self._window_changed()

    def _on_priority(self, length: int, stream_id: int) -> None:
        if not stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "PRIORITY on stream 0")
        if length != 5:
            stream = self.streams.get(stream_id)
            if stream is not None:
                self._reset(stream, FRAME_SIZE_ERROR)
            else:
                self._send_reset(stream_id, FRAME_SIZE_ERROR)
        # the priority itself is ignored (RFC 9113 §5.3.2)

    def _on_goaway(self, data: bytes, start: int, length: int, stream_id: int) -> None:
        if stream_id:
            raise _ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
        if length < 8:
            raise _ConnectionError(FRAME_SIZE_ERROR, f"GOAWAY of {length} octets")
        last_stream_id, code = _GOAWAY_BODY.unpack_from(data, start)
        logger.info(
            "peer %s is closing the HTTP/2 connection (%s, last stream %d)",
            _peer(self.sock),
            _error_name(code),
            last_stream_id & 0x7FFFFFFF,
        )
        # streams up to last_stream_id carry on; the peer closes the connection when done

    def _run_stream(self, stream: H2Stream) -> None:
        try:
            self.handler(stream)
        except Exception:
            logger.exception("error while serving %s %s", stream.method, stream.path)
            if not stream._ended:
                self._reset(stream, INTERNAL_ERROR)
        else:
            if not stream._ended and not stream.reset:
                stream.close()  # the endpoint returned without ending the response
        finally:
            # the stream stays known until the request half ends too (its DATA is dropped)
            stream.done = True


def _send_all(sock: socket.socket, data: bytes) -> None:
    """``sendall`` without gevent's per-call ``getsockopt``: plain sends, looping on partial writes."""
    sent = sock.send(data)
    if sent < len(data):
        view = memoryview(data)
        while sent < len(data):
            sent += sock.send(view[sent:])


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "?"


class H2Server:
    """A gevent ``StreamServer`` speaking h2c with prior knowledge."""

    def __init__(self, handler: Callable[[Any], None], listener: Any) -> None:
        self.handler = handler
        # A pool lets stop() kill the connection greenlets, which closes their sockets: the
        # runtime keeps pooled connections to a deployment that merely stopped listening.
        self._server = StreamServer(listener, self._handle_connection, spawn=Pool())

    @property
    def address(self) -> tuple[str, int]:
        return cast("tuple[str, int]", self._server.address)

    def start(self) -> None:
        self._server.start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self, timeout: float | None = None) -> None:
        self._server.stop(timeout=timeout)

    def _handle_connection(self, sock: socket.socket, address: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            initial = _read_preface(sock)
        except OSError:
            return
        if initial is None:
            return
        if initial[: len(PREFACE)] != PREFACE:
            if PREFACE.startswith(initial):
                logger.info("connection from %s:%s closed inside the HTTP/2 preface", *address[:2])
                return
            # not HTTP/2 with prior knowledge: HTTP/1.1 (request/response mode) on the same port
            from .http1 import serve_http1

            serve_http1(sock, self.handler, initial, f"{address[0]}:{address[1]}")
            return
        H2Connection(sock, self.handler).serve(initial)


def _read_preface(sock: socket.socket) -> bytes | None:
    """Read until the HTTP/2 preface is complete or clearly absent; None if the peer left."""
    data = b""
    while len(data) < len(PREFACE):
        chunk = sock.recv(_READ_SIZE)
        if not chunk:
            return data or None
        data += chunk
        if not PREFACE.startswith(data[: len(PREFACE)]):
            return data
    return data


def parse_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bind address must be HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)
