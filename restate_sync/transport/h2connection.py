"""The server side of an HTTP/2 connection (RFC 9113, h2c with prior knowledge), sans I/O.

Rules of this file
------------------
* No sockets, greenlets, clocks or logging. Bytes come in through :meth:`H2Connection.receive`,
  which returns the :class:`Event` objects they produced; every frame to send is appended to
  :attr:`H2Connection.out`, which the I/O layer takes with :meth:`H2Connection.data_to_send`.
* Streams change state only through :func:`.h2state.transition`; the states and transitions
  are listed in :mod:`.h2state`.
* Frames are dispatched by type through :data:`_FRAME_HANDLERS`; unknown types are ignored
  (RFC 9113 §4.1). Every handler takes ``(connection, data, start, stop, flags, stream_id)``,
  the payload being ``data[start:stop]``, so no frame is copied before it has to be.
* A connection error raises :class:`.h2state.H2ProtocolError` out of :meth:`receive` after the
  GOAWAY naming it was queued; the connection accepts nothing more. A stream error resets that
  stream (RST_STREAM out, :class:`StreamReset` in the events) and the connection carries on.
* Every limit comes from the :class:`.h2limits.H2Limits` the connection was made with.

Theory of operation
-------------------
:meth:`H2Connection.initiate` queues our SETTINGS and raises the connection's receive window.
:meth:`receive` checks the client preface, then frames: the first must be SETTINGS. A request
header block (HEADERS, then CONTINUATION frames until END_HEADERS, nothing in between) is
decoded with the connection's HPACK :class:`~.hpack_codec.Decoder` whatever becomes of the stream,
because the dynamic table spans the connection. A new stream becomes :class:`RequestReceived`;
its body :class:`DataReceived` (with ``end_stream`` on the last) or, when END_STREAM comes on an
empty DATA frame or on trailers, :class:`StreamEnded`; a reset :class:`StreamReset`.

Flow control: every DATA frame uses up the stream's and the connection's
:class:`~.h2flow.ReceiveWindow`; the I/O layer gives the octets back with
:meth:`acknowledge_received_data` once they are consumed (padding and octets of closed streams
are given back here at once). Outbound, :meth:`send_data` frames as much as the smaller of the
stream's and the connection's :class:`~.h2flow.SendWindow` allows and returns how far it got;
:class:`WindowUpdated` tells the I/O layer that a writer waiting for credit may go on.

A stream's state is dropped as soon as it is CLOSED (both halves ended, or reset), so a
long-lived connection does not accumulate it; the ids of the last streams we reset are kept
for a while, so frames the peer had in flight for them are ignored rather than answered.
"""

from __future__ import annotations

from typing import Any

from . import h2frames as f
from .h2flow import ReceiveWindow, SendWindow
from .h2limits import DEFAULT_LIMITS, H2Limits
from .h2state import RECEIVING, SENDING, TRANSITIONS, H2ProtocolError, StreamInput, StreamState, transition
from .hpack_codec import TABLE_SIZE_ZERO, Decoder, HeaderListTooLargeError, HPACKDecodingError, encode_headers

__all__ = [
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "H2Connection",
    "RequestReceived",
    "SettingsChanged",
    "Stream",
    "StreamEnded",
    "StreamReset",
    "WindowUpdated",
    "response_header_block",
]

_unpack_header = f.FRAME_HEADER.unpack_from
_pack_header = f.FRAME_HEADER.pack
_unpack_u32 = f.U32.unpack_from
_frame_header = f.frame_header
_window_update = f.window_update_frame

_DATA = f.DATA
_HEADERS = f.HEADERS
_END_STREAM = f.END_STREAM
_END_HEADERS = f.END_HEADERS
_OPEN = StreamState.OPEN
_HALF_CLOSED_REMOTE = StreamState.HALF_CLOSED_REMOTE
_CLOSED = StreamState.CLOSED
_RECV_END_STREAM = StreamInput.RECV_END_STREAM
_SEND_END_STREAM = StreamInput.SEND_END_STREAM
# transition() without the call, for the per-frame paths (the same table, TRANSITIONS)
_next = TRANSITIONS.get
_PREFACE_SIZE = len(f.PREFACE)


class Stream:
    """The protocol state of one stream; :attr:`user` is the I/O layer's (its exchange)."""

    __slots__ = ("inbound", "outbound", "responded", "state", "stream_id", "user")

    def __init__(self, stream_id: int, state: StreamState, send_window: int, receive_window: int) -> None:
        self.stream_id = stream_id
        self.state = state
        self.outbound = SendWindow(send_window)
        self.inbound = ReceiveWindow(receive_window)
        self.responded = False  # response headers queued (a reset before that is premature)
        self.user: Any = None

    def __repr__(self) -> str:
        return f"<Stream {self.stream_id} {self.state.label}>"


# ------------------------------------------------------------------------------------ events


class Event:
    __slots__ = ()

    def __repr__(self) -> str:
        names: tuple[str, ...] = type(self).__slots__
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__name__}({fields})"


class RequestReceived(Event):
    """A new stream's request header block; ``end_stream``: the request has no body."""

    __slots__ = ("end_stream", "headers", "stream")

    def __init__(self, stream: Stream, headers: dict[str, str], end_stream: bool) -> None:
        self.stream = stream
        self.headers = headers
        self.end_stream = end_stream


class DataReceived(Event):
    """Request body octets (never empty); ``end_stream``: the last of them."""

    __slots__ = ("data", "end_stream", "stream")

    def __init__(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        self.stream = stream
        self.data = data
        self.end_stream = end_stream


class StreamEnded(Event):
    """The request ended without more body (END_STREAM on an empty DATA frame or on trailers)."""

    __slots__ = ("stream",)

    def __init__(self, stream: Stream) -> None:
        self.stream = stream


class StreamReset(Event):
    """The stream is gone: reset by the peer (``remote``) or by us for a stream error."""

    __slots__ = ("code", "remote", "stream")

    def __init__(self, stream: Stream, code: int, remote: bool) -> None:
        self.stream = stream
        self.code = code
        self.remote = remote


class WindowUpdated(Event):
    """Outbound credit grew (``stream_id`` 0: the connection's)."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class SettingsChanged(Event):
    """The peer's SETTINGS frame (acknowledged already): ``{identifier: value}``."""

    __slots__ = ("changed",)

    def __init__(self, changed: dict[int, int]) -> None:
        self.changed = changed


class ConnectionTerminated(Event):
    """The peer sent GOAWAY: streams up to ``last_stream_id`` carry on, it opens no more."""

    __slots__ = ("code", "debug", "last_stream_id")

    def __init__(self, code: int, last_stream_id: int, debug: bytes) -> None:
        self.code = code
        self.last_stream_id = last_stream_id
        self.debug = debug


# ------------------------------------------------------------------------------------ headers

# Encoded response header blocks, shared by all connections (they carry no HPACK state).
_header_blocks: dict[tuple[Any, ...], bytes] = {}
_HEADER_BLOCK_CACHE_SIZE = 256


def response_header_block(status: int, headers: list[tuple[str, str]], content_length: int | None) -> bytes:
    """The HPACK block of a response head (stateless, so cached and shared)."""
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


class _HeaderBlock:
    """A header block in progress (HEADERS without END_HEADERS, then CONTINUATION frames)."""

    __slots__ = ("continuations", "end_stream", "error", "fragments", "size", "stream_id")

    def __init__(self, stream_id: int, fragment: bytes, end_stream: bool, error: int) -> None:
        self.stream_id = stream_id
        self.fragments = [fragment]
        self.size = len(fragment)
        self.end_stream = end_stream
        self.error = error  # a stream error the block's HEADERS frame already implies (0: none)
        self.continuations = 0


# ------------------------------------------------------------------------------------ connection


class H2Connection:
    """One server connection's protocol state. See the module docstring."""

    def __init__(self, limits: H2Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.streams: dict[int, Stream] = {}
        #: frames to send, in order; the I/O layer takes them with data_to_send()
        self.out: list[Any] = []
        #: octets in :attr:`out`
        self.out_size = 0
        self.outbound = SendWindow(f.DEFAULT_WINDOW)
        self.inbound = ReceiveWindow(limits.connection_window)
        self.peer_initial_window = f.DEFAULT_WINDOW
        self.peer_max_frame_size = f.DEFAULT_MAX_FRAME_SIZE
        self.last_stream_id = 0
        #: no more input is accepted (a connection error, or close())
        self.closed = False
        # ids of streams we reset -> whether the peer had opened them (then late trailers are fine)
        self._reset_ids: dict[int, bool] = {}
        self._decoder = Decoder(max_header_list_size=limits.max_header_list_size)
        self._table_size_update = False  # the peer lowered SETTINGS_HEADER_TABLE_SIZE
        self._pending = b""  # received bytes that do not make a whole frame yet
        self._preface_seen = False
        self._settings_seen = False
        self._header_block: _HeaderBlock | None = None
        self._premature_resets = 0  # streams reset by the peer before a response, net of completed ones
        self._events: list[Event] = []

    @property
    def settings_received(self) -> bool:
        """The client preface and its first SETTINGS frame arrived."""
        return self._settings_seen

    @property
    def header_block(self) -> object | None:
        """The request header block in progress (an opaque token, the same until it completes)."""
        return self._header_block

    # ------------------------------------------------------------------ output

    def initiate(self) -> None:
        """Queue the server's connection preface: our SETTINGS and the connection window raise."""
        limits = self.limits
        self._queue(
            f.settings_frame(
                [
                    (f.SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams),
                    (f.SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window),
                    (f.SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
                ]
            )
        )
        if limits.connection_window > f.DEFAULT_WINDOW:
            self._queue(_window_update(0, limits.connection_window - f.DEFAULT_WINDOW))

    def _queue(self, frame: bytes) -> None:
        self.out.append(frame)
        self.out_size += len(frame)

    def data_to_send(self) -> bytes:
        """Everything queued so far, as one buffer (and the queue emptied)."""
        out = self.out
        if not out:
            return b""
        self.out = []
        self.out_size = 0
        return out[0] if len(out) == 1 and isinstance(out[0], bytes) else b"".join(out)

    def send_headers(self, stream: Stream, block: bytes, end_stream: bool) -> None:
        """Queue a response header block (split into CONTINUATION frames if needed)."""
        if stream.state not in SENDING:
            return  # the stream was reset or the response already ended: silently dropped
        if self._table_size_update:
            self._table_size_update = False
            block = TABLE_SIZE_ZERO + block
        flags = _END_STREAM if end_stream else 0
        stream_id = stream.stream_id
        stream.responded = True
        max_frame = self.peer_max_frame_size
        size = len(block)
        self.out_size += 9 * (1 + size // max_frame) + size
        if size <= max_frame:
            self.out.append(
                _pack_header(size >> 8, size & 0xFF, _HEADERS, flags | _END_HEADERS, stream_id) + block
            )
        else:  # HEADERS + CONTINUATION frames, contiguous
            out = self.out
            frame_type = f.HEADERS
            for offset in range(0, len(block), max_frame):
                fragment = block[offset : offset + max_frame]
                if offset + max_frame >= len(block):
                    flags |= f.END_HEADERS
                out.append(_frame_header(len(fragment), frame_type, flags, stream_id))
                out.append(fragment)
                frame_type = f.CONTINUATION
                flags = 0
        if end_stream:
            self._local_end(stream)

    def send_data(
        self, stream: Stream, data: bytes, end_stream: bool, pos: int = 0, budget: int = f.MAX_WINDOW
    ) -> int:
        """Queue ``data[pos:]`` as far as the flow-control windows and ``budget`` octets allow.

        Returns the position reached: ``len(data)`` means done (END_STREAM sent if asked for),
        or dropped because the stream can no longer send; less means the windows (or the
        budget) are exhausted: call again with that position after a :class:`WindowUpdated`
        (or once there is room).
        """
        total = len(data)
        if stream.state not in SENDING:
            return total
        remaining = total - pos
        if not remaining:
            if end_stream:  # an empty DATA frame needs no window
                self.out.append(_pack_header(0, 0, f.DATA, f.END_STREAM, stream.stream_id))
                self.out_size += 9
                self._local_end(stream)
            return total
        window = stream.outbound.available
        connection_window = self.outbound.available
        if connection_window < window:
            window = connection_window
        if budget < window:
            window = budget
        if window <= 0:
            return pos
        size = window if window < remaining else remaining
        self.out_size += size + 9 * (1 + size // self.peer_max_frame_size)
        stream.outbound.available -= size
        self.outbound.available -= size
        stream_id = stream.stream_id
        last = size == remaining
        max_frame = self.peer_max_frame_size
        if size == total and size <= max_frame:  # the common case: one frame, no copy
            header = _pack_header(size >> 8, size & 0xFF, _DATA, _END_STREAM if end_stream else 0, stream_id)
            self.out += (header, data)
        else:
            view = memoryview(data)
            out = self.out
            stop = pos + size
            while pos < stop:
                n = min(max_frame, stop - pos)
                flags = f.END_STREAM if end_stream and last and pos + n == stop else 0
                out.append(_frame_header(n, f.DATA, flags, stream_id))
                out.append(view[pos : pos + n])
                pos += n
        if last and end_stream:
            self._local_end(stream)
        return pos if not last else total

    def reset_stream(self, stream: Stream, code: int) -> None:
        """Reset a stream on the application's behalf (no event: the caller knows)."""
        if stream.state is not _CLOSED:
            self._reset(stream, code)

    def close(self, code: int = f.NO_ERROR, message: str = "") -> None:
        """Queue GOAWAY (``code``, the last stream we processed); no more input is accepted."""
        if self.closed:
            return
        self.closed = True
        self._queue(f.goaway_frame(self.last_stream_id, code, message.encode("utf-8", "replace")[:256]))

    def acknowledge_received_data(self, stream: Stream, octets: int) -> None:
        """The application consumed ``octets`` of ``stream``'s body: give the credit back (batched)."""
        increment = self.inbound.consume(octets)
        if increment:
            self._queue(_window_update(0, increment))
        if stream.state in RECEIVING:  # no use giving a finished request more window
            increment = stream.inbound.consume(octets)
            if increment:
                self._queue(_window_update(stream.stream_id, increment))

    def _local_end(self, stream: Stream) -> None:
        state = _next((stream.state, _SEND_END_STREAM))
        assert state is not None, stream
        stream.state = state
        if state is _CLOSED:
            self.streams.pop(stream.stream_id, None)
            if self._premature_resets:  # a stream served to the end makes up for a premature reset
                self._premature_resets -= 1

    def _send_reset(self, stream_id: int, code: int, opened: bool = True) -> None:
        self._queue(f.rst_stream_frame(stream_id, code))
        reset_ids = self._reset_ids
        reset_ids[stream_id] = opened
        if len(reset_ids) > self.limits.reset_memory:
            del reset_ids[next(iter(reset_ids))]

    def _reset(self, stream: Stream, code: int) -> None:
        stream.state = _CLOSED
        self.streams.pop(stream.stream_id, None)
        self._send_reset(stream.stream_id, code)

    def _stream_error(self, stream: Stream, code: int) -> None:
        """A stream error (RFC 9113 §5.4.2): RST_STREAM out, StreamReset to the application."""
        self._reset(stream, code)
        self._events.append(StreamReset(stream, code, False))

    def _credit_connection(self, octets: int) -> None:
        """Give back connection credit for octets no application will consume."""
        increment = self.inbound.consume(octets)
        if increment:
            self._queue(_window_update(0, increment))

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes) -> list[Event]:
        """Process received bytes; returns the events they produced, in order.

        Raises :class:`H2ProtocolError` on a connection error (GOAWAY already queued).
        """
        if self.closed:
            return []
        if self._pending:
            data = self._pending + data
            self._pending = b""
        events: list[Event] = []
        self._events = events
        try:
            self._receive(data)
        except H2ProtocolError as exc:
            self.close(exc.code, str(exc))
            raise
        return events

    def _receive(self, data: bytes) -> None:
        pos = 0
        end = len(data)
        if not self._preface_seen:
            if end < _PREFACE_SIZE:
                if not f.PREFACE.startswith(data):
                    raise H2ProtocolError(f.PROTOCOL_ERROR, "preface", "connection", "not the HTTP/2 preface")
                self._pending = data
                return
            if data[:_PREFACE_SIZE] != f.PREFACE:
                raise H2ProtocolError(f.PROTOCOL_ERROR, "preface", "connection", "not the HTTP/2 preface")
            self._preface_seen = True
            pos = _PREFACE_SIZE
        handlers = _FRAME_HANDLERS
        while end - pos >= 9:
            high, low, frame_type, flags, stream_id = _unpack_header(data, pos)
            length = (high << 8) | low
            if length > f.DEFAULT_MAX_FRAME_SIZE:
                raise H2ProtocolError(
                    f.FRAME_SIZE_ERROR,
                    f.frame_name(frame_type),
                    "connection",
                    f"frame of {length} octets exceeds SETTINGS_MAX_FRAME_SIZE",
                )
            start = pos + 9
            stop = start + length
            if stop > end:
                break
            pos = stop
            stream_id &= 0x7FFFFFFF
            if not self._settings_seen:
                if frame_type != f.SETTINGS or flags & f.ACK:
                    raise H2ProtocolError(
                        f.PROTOCOL_ERROR,
                        f.frame_name(frame_type),
                        "connection",
                        "the client preface must start with SETTINGS",
                    )
                self._settings_seen = True
            if self._header_block is not None and frame_type != f.CONTINUATION:
                raise H2ProtocolError(
                    f.PROTOCOL_ERROR,
                    f.frame_name(frame_type),
                    "header block in progress",
                    "header block interrupted by another frame",
                )
            handler = handlers.get(frame_type)
            if handler is not None:  # unknown frame types are ignored (RFC 9113 §4.1)
                handler(self, data, start, stop, flags, stream_id)
        if pos < end:
            self._pending = data[pos:]

    def _state_of(self, stream_id: int) -> str:
        """The label of a stream's state, for error messages."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            return stream.state.label
        if stream_id > self.last_stream_id:
            return StreamState.IDLE.label
        return StreamState.CLOSED.label

    def _error(self, code: int, frame_type: int, stream_id: int, message: str) -> H2ProtocolError:
        state = self._state_of(stream_id) if stream_id else "connection"
        return H2ProtocolError(code, f.frame_name(frame_type), state, message)

    def _on_data(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if not stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.DATA, 0, "DATA on stream 0")
        length = stop - start  # the whole payload counts against the windows, padding included
        if length and not self.inbound.receive(length):
            raise self._error(f.FLOW_CONTROL_ERROR, f.DATA, 0, "DATA beyond the connection window")
        if flags & f.PADDED:
            if not length:
                raise self._error(
                    f.FRAME_SIZE_ERROR, f.DATA, stream_id, "padded DATA frame without a pad length"
                )
            pad = data[start]
            start += 1
            if pad > stop - start:
                raise self._error(f.PROTOCOL_ERROR, f.DATA, stream_id, "DATA padding exceeds the payload")
            stop -= pad
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream_id:
                raise self._error(f.PROTOCOL_ERROR, f.DATA, stream_id, f"DATA on idle stream {stream_id}")
            self._credit_connection(length)
            if stream_id not in self._reset_ids:
                self._send_reset(stream_id, f.STREAM_CLOSED, opened=False)
            return
        if stream.state not in RECEIVING:
            self._credit_connection(length)
            self._stream_error(stream, f.STREAM_CLOSED)
            return
        if length:
            if not stream.inbound.receive(length):
                self._credit_connection(length)
                self._stream_error(stream, f.FLOW_CONTROL_ERROR)
                return
            if stop - start < length:  # padding is never delivered: its credit comes back now
                self.acknowledge_received_data(stream, length - (stop - start))
        end_stream = flags & f.END_STREAM
        if end_stream:
            state = _next((stream.state, _RECV_END_STREAM))
            assert state is not None
            stream.state = state
            if state is _CLOSED:
                del self.streams[stream_id]
        if stop > start:
            self._events.append(DataReceived(stream, data[start:stop], bool(end_stream)))
        elif end_stream:
            self._events.append(StreamEnded(stream))

    def _on_headers(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if not stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.HEADERS, 0, "HEADERS on stream 0")
        if flags & f.PADDED:
            if start == stop:
                raise self._error(
                    f.FRAME_SIZE_ERROR, f.HEADERS, stream_id, "padded HEADERS frame without a pad length"
                )
            pad = data[start]
            start += 1
            if pad > stop - start:
                raise self._error(
                    f.PROTOCOL_ERROR, f.HEADERS, stream_id, "HEADERS padding exceeds the payload"
                )
            stop -= pad
        error = 0
        if flags & f.PRIORITY_FLAG:  # stream dependency and weight: ignored (RFC 9113 §5.3.2)
            if stop - start < 5:
                raise self._error(
                    f.FRAME_SIZE_ERROR, f.HEADERS, stream_id, "HEADERS too short for its priority fields"
                )
            if _unpack_u32(data, start)[0] & 0x7FFFFFFF == stream_id:
                error = f.PROTOCOL_ERROR  # a stream cannot depend on itself (RFC 9113 §5.3.1)
            start += 5
        block = data[start:stop]
        end_stream = bool(flags & f.END_STREAM)
        if flags & f.END_HEADERS:
            self._on_header_block(stream_id, block, end_stream, error)
        else:
            self._header_block = _HeaderBlock(stream_id, block, end_stream, error)

    def _on_continuation(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        block = self._header_block
        if block is None:
            raise self._error(
                f.PROTOCOL_ERROR, f.CONTINUATION, stream_id, "CONTINUATION without a header block in progress"
            )
        if stream_id != block.stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.CONTINUATION, stream_id, "CONTINUATION on another stream")
        block.continuations += 1
        if block.continuations > self.limits.max_continuation_frames:
            raise self._error(
                f.ENHANCE_YOUR_CALM,
                f.CONTINUATION,
                stream_id,
                f"more than {self.limits.max_continuation_frames} CONTINUATION frames in one header block",
            )
        block.fragments.append(data[start:stop])
        block.size += stop - start
        limit = self.limits.max_header_block
        if block.size > limit:
            raise self._error(
                f.ENHANCE_YOUR_CALM, f.CONTINUATION, stream_id, f"header block larger than {limit} octets"
            )
        if flags & f.END_HEADERS:
            self._header_block = None
            self._on_header_block(stream_id, b"".join(block.fragments), block.end_stream, block.error)

    def _on_header_block(self, stream_id: int, block: bytes, end_stream: bool, error: int = 0) -> None:
        # decoded whatever becomes of the stream: the dynamic table spans the connection
        try:
            fields = self._decoder.decode(block)
        except HeaderListTooLargeError as exc:
            raise self._error(f.ENHANCE_YOUR_CALM, f.HEADERS, stream_id, str(exc)) from None
        except HPACKDecodingError as exc:
            raise self._error(f.COMPRESSION_ERROR, f.HEADERS, stream_id, f"header block: {exc}") from None
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers
            if error:
                self._stream_error(stream, error)
            elif stream.state not in RECEIVING:
                self._stream_error(stream, f.STREAM_CLOSED)
            elif not end_stream:
                self._stream_error(stream, f.PROTOCOL_ERROR)  # trailers must end the stream
            else:
                state = transition(stream.state, StreamInput.RECV_END_STREAM)
                assert state is not None
                stream.state = state
                if state is _CLOSED:
                    del self.streams[stream_id]
                self._events.append(StreamEnded(stream))
            return
        if not stream_id & 1:
            raise self._error(
                f.PROTOCOL_ERROR, f.HEADERS, stream_id, f"HEADERS on even stream id {stream_id}"
            )
        if stream_id <= self.last_stream_id:
            if self._reset_ids.get(stream_id):
                return  # trailers of a stream we reset
            raise self._error(
                f.PROTOCOL_ERROR,
                f.HEADERS,
                stream_id,
                f"HEADERS on stream {stream_id}, not above the last stream {self.last_stream_id}",
            )
        self.last_stream_id = stream_id
        if error:
            self._send_reset(stream_id, error)
            return
        if len(self.streams) >= self.limits.max_concurrent_streams:
            self._send_reset(stream_id, f.REFUSED_STREAM)
            return
        headers = dict(fields)
        if ":method" not in headers or ":path" not in headers:
            self._send_reset(stream_id, f.PROTOCOL_ERROR)  # malformed request (RFC 9113 §8.1.1)
            return
        state = transition(
            StreamState.IDLE, StreamInput.RECV_HEADERS_END if end_stream else StreamInput.RECV_HEADERS
        )
        assert state is not None
        stream = Stream(stream_id, state, self.peer_initial_window, self.limits.stream_window)
        self.streams[stream_id] = stream
        self._events.append(RequestReceived(stream, headers, end_stream))

    def _on_window_update(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if stop - start != 4:
            raise self._error(
                f.FRAME_SIZE_ERROR, f.WINDOW_UPDATE, stream_id, f"WINDOW_UPDATE of {stop - start} octets"
            )
        increment = _unpack_u32(data, start)[0] & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                raise self._error(f.PROTOCOL_ERROR, f.WINDOW_UPDATE, 0, "WINDOW_UPDATE with increment 0")
            if not self.outbound.grow(increment):
                raise self._error(f.FLOW_CONTROL_ERROR, f.WINDOW_UPDATE, 0, "connection window above 2^31-1")
            self._events.append(WindowUpdated(0))
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream_id:
                raise self._error(
                    f.PROTOCOL_ERROR, f.WINDOW_UPDATE, stream_id, f"WINDOW_UPDATE on idle stream {stream_id}"
                )
            return  # a closed stream: allowed, ignored
        if not increment:
            self._stream_error(stream, f.PROTOCOL_ERROR)
        elif not stream.outbound.grow(increment):
            self._stream_error(stream, f.FLOW_CONTROL_ERROR)
        else:
            self._events.append(WindowUpdated(stream_id))

    def _on_settings(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.SETTINGS, 0, "SETTINGS on a stream")
        length = stop - start
        if flags & f.ACK:
            if length:
                raise self._error(
                    f.FRAME_SIZE_ERROR, f.SETTINGS, 0, "SETTINGS acknowledgement with a payload"
                )
            return
        if length % 6:
            raise self._error(f.FRAME_SIZE_ERROR, f.SETTINGS, 0, f"SETTINGS of {length} octets")
        changed: dict[int, int] = {}
        unpack = f.SETTING.unpack_from
        initial_window = self.peer_initial_window
        for offset in range(start, stop, 6):
            identifier, value = unpack(data, offset)
            if identifier == f.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise self._error(
                        f.FLOW_CONTROL_ERROR, f.SETTINGS, 0, f"SETTINGS_INITIAL_WINDOW_SIZE {value}"
                    )
                initial_window = value  # applied once, after the frame (only the last value counts)
            elif identifier == f.SETTINGS_MAX_FRAME_SIZE:
                if not f.DEFAULT_MAX_FRAME_SIZE <= value <= f.MAX_MAX_FRAME_SIZE:
                    raise self._error(f.PROTOCOL_ERROR, f.SETTINGS, 0, f"SETTINGS_MAX_FRAME_SIZE {value}")
                self.peer_max_frame_size = value
            elif identifier == f.SETTINGS_HEADER_TABLE_SIZE:
                # we never index, but an HPACK decoder whose table shrank may insist on hearing
                # about it: the next header block starts with a size update to 0
                if value < 4096:
                    self._table_size_update = True
            elif identifier == f.SETTINGS_ENABLE_PUSH and value > 1:
                raise self._error(f.PROTOCOL_ERROR, f.SETTINGS, 0, f"SETTINGS_ENABLE_PUSH {value}")
            # MAX_CONCURRENT_STREAMS (we never push), MAX_HEADER_LIST_SIZE (our headers are
            # tiny) and unknown settings: nothing to do
            changed[identifier] = value
        delta = initial_window - self.peer_initial_window
        if delta:
            self.peer_initial_window = initial_window
            for stream in self.streams.values():  # one walk per SETTINGS frame, not per entry
                if not stream.outbound.grow(delta):
                    raise self._error(f.FLOW_CONTROL_ERROR, f.SETTINGS, 0, "a stream window above 2^31-1")
        self._queue(f.SETTINGS_ACK_FRAME)
        self._events.append(SettingsChanged(changed))

    def _on_rst_stream(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if stop - start != 4:
            raise self._error(
                f.FRAME_SIZE_ERROR, f.RST_STREAM, stream_id, f"RST_STREAM of {stop - start} octets"
            )
        if not stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.RST_STREAM, 0, "RST_STREAM on stream 0")
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            if stream_id > self.last_stream_id:
                raise self._error(
                    f.PROTOCOL_ERROR, f.RST_STREAM, stream_id, f"RST_STREAM on idle stream {stream_id}"
                )
            return
        state = transition(stream.state, StreamInput.RECV_RST_STREAM)
        assert state is not None
        stream.state = state
        self._events.append(StreamReset(stream, _unpack_u32(data, start)[0], True))
        if not stream.responded:
            self._premature_resets += 1
            if self._premature_resets > self.limits.max_premature_resets:
                raise H2ProtocolError(
                    f.ENHANCE_YOUR_CALM,
                    "RST_STREAM",
                    stream.state.label,
                    f"more than {self.limits.max_premature_resets} streams reset before a response",
                )

    def _on_priority(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if not stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.PRIORITY, 0, "PRIORITY on stream 0")
        if stop - start != 5:
            code = f.FRAME_SIZE_ERROR
        elif _unpack_u32(data, start)[0] & 0x7FFFFFFF == stream_id:
            code = f.PROTOCOL_ERROR  # a stream cannot depend on itself (RFC 9113 §5.3.1)
        else:
            return  # the priority itself is ignored (RFC 9113 §5.3.2)
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._stream_error(stream, code)
        else:
            self._send_reset(stream_id, code, opened=False)

    def _on_ping(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.PING, 0, "PING on a stream")
        if stop - start != 8:
            raise self._error(f.FRAME_SIZE_ERROR, f.PING, 0, f"PING of {stop - start} octets")
        if not flags & f.ACK:
            self._queue(f.ping_ack_frame(data[start:stop]))

    def _on_goaway(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        if stream_id:
            raise self._error(f.PROTOCOL_ERROR, f.GOAWAY, 0, "GOAWAY on a stream")
        if stop - start < 8:
            raise self._error(f.FRAME_SIZE_ERROR, f.GOAWAY, 0, f"GOAWAY of {stop - start} octets")
        last_stream_id, code = f.GOAWAY_BODY.unpack_from(data, start)
        # streams up to last_stream_id carry on; the peer closes the connection when done
        self._events.append(ConnectionTerminated(code, last_stream_id & 0x7FFFFFFF, data[start + 8 : stop]))

    def _on_push_promise(self, data: bytes, start: int, stop: int, flags: int, stream_id: int) -> None:
        raise self._error(f.PROTOCOL_ERROR, f.PUSH_PROMISE, stream_id, "PUSH_PROMISE from a client")


_FRAME_HANDLERS: dict[int, Any] = {
    f.DATA: H2Connection._on_data,
    f.HEADERS: H2Connection._on_headers,
    f.PRIORITY: H2Connection._on_priority,
    f.RST_STREAM: H2Connection._on_rst_stream,
    f.SETTINGS: H2Connection._on_settings,
    f.PUSH_PROMISE: H2Connection._on_push_promise,
    f.PING: H2Connection._on_ping,
    f.GOAWAY: H2Connection._on_goaway,
    f.WINDOW_UPDATE: H2Connection._on_window_update,
    f.CONTINUATION: H2Connection._on_continuation,
}
