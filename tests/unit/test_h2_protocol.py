"""The sans-I/O HTTP/2 connection (``h2connection``), without sockets or greenlets.

Bytes go from an ``h2`` client connection (or frames built with ``hyperframe``/by hand) straight
into :class:`H2Connection.receive`; what the connection queues goes back into the ``h2`` client,
which checks it as an independent implementation would.
"""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from restate_sync.transport import h2frames as f
from restate_sync.transport.h2connection import (
    ConnectionTerminated,
    DataReceived,
    H2Connection,
    RequestReceived,
    SettingsChanged,
    StreamEnded,
    StreamReset,
    WindowUpdated,
    response_header_block,
)
from restate_sync.transport.h2flow import ReceiveWindow, SendWindow
from restate_sync.transport.h2limits import H2Limits
from restate_sync.transport.h2state import (
    RECEIVING,
    SENDING,
    TRANSITIONS,
    H2ProtocolError,
    StreamInput,
    StreamState,
    transition,
)

REQUEST = [(":method", "POST"), (":path", "/invoke/S/h"), (":scheme", "http"), (":authority", "x")]


def parse_frames(data: bytes) -> list[Frame]:
    frames = []
    pos = 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
        frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
        frames.append(frame)
        pos += 9 + length
    return frames


class Pair:
    """An ``h2`` client wired to our connection in memory."""

    def __init__(self, limits: H2Limits | None = None, client_settings: dict[int, int] | None = None) -> None:
        self.server = H2Connection(limits or H2Limits())
        self.server.initiate()
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        if client_settings:
            self.client.local_settings = h2.settings.Settings(client=True, initial_values=client_settings)
        self.client.initiate_connection()
        self.events: list[Any] = []
        self.to_server()
        self.to_client()

    def to_server(self) -> list[Any]:
        events = self.server.receive(self.client.data_to_send())
        self.events += events
        return events

    def to_client(self) -> list[Any]:
        return self.client.receive_data(self.server.data_to_send())

    def open(self, end_stream: bool = False, headers: list[tuple[str, str]] | None = None) -> Any:
        stream_id = self.client.get_next_available_stream_id()
        self.client.send_headers(stream_id, headers or REQUEST, end_stream=end_stream)
        events = self.to_server()
        (event,) = [e for e in events if isinstance(e, RequestReceived)]
        return event.stream


# ---------------------------------------------------------------------------- the state table


def test_transition_table_is_the_rfc_server_side_lifecycle() -> None:
    S, I = StreamState, StreamInput  # noqa: E741
    assert transition(S.IDLE, I.RECV_HEADERS) is S.OPEN
    assert transition(S.IDLE, I.RECV_HEADERS_END) is S.HALF_CLOSED_REMOTE
    assert transition(S.OPEN, I.RECV_END_STREAM) is S.HALF_CLOSED_REMOTE
    assert transition(S.HALF_CLOSED_REMOTE, I.SEND_END_STREAM) is S.CLOSED
    assert transition(S.OPEN, I.SEND_END_STREAM) is S.HALF_CLOSED_LOCAL
    assert transition(S.HALF_CLOSED_LOCAL, I.RECV_END_STREAM) is S.CLOSED
    for state in (S.OPEN, S.HALF_CLOSED_REMOTE, S.HALF_CLOSED_LOCAL):
        assert transition(state, I.RECV_RST_STREAM) is S.CLOSED
        assert transition(state, I.SEND_RST_STREAM) is S.CLOSED
    # nothing leaves CLOSED, nothing but a request opens a stream, no half ends twice
    assert all(transition(S.CLOSED, event) is None for event in I)
    assert transition(S.IDLE, I.RECV_END_STREAM) is None
    assert transition(S.HALF_CLOSED_REMOTE, I.RECV_END_STREAM) is None
    assert transition(S.HALF_CLOSED_LOCAL, I.SEND_END_STREAM) is None
    assert len(TRANSITIONS) == 12
    assert S.HALF_CLOSED_REMOTE not in RECEIVING and S.HALF_CLOSED_LOCAL in RECEIVING
    assert S.HALF_CLOSED_LOCAL not in SENDING and S.HALF_CLOSED_REMOTE in SENDING


# ---------------------------------------------------------------------------- windows


def test_receive_window_gives_credit_back_in_batches() -> None:
    window = ReceiveWindow(1000)
    assert window.receive(400) and window.receive(600)
    assert not ReceiveWindow(1000).receive(1001)
    assert window.consume(300) == 0  # below half the window: nothing yet
    assert window.consume(300) == 600  # all consumed so far, in one increment
    assert window.outstanding == 400
    assert window.receive(600)  # the peer may use the credit again
    assert not window.receive(1)


def test_send_window_overflow_is_reported() -> None:
    window = SendWindow(65535)
    assert window.grow(2**31 - 1 - 65535)
    assert not window.grow(1)
    window = SendWindow(10)
    window.available -= 20  # a SETTINGS change may make it negative
    assert window.grow(5) and window.available == -5


# ---------------------------------------------------------------------------- handshake and requests


def test_server_preface_settings_and_connection_window() -> None:
    pair = Pair(H2Limits(max_concurrent_streams=7, stream_window=100_000, connection_window=1_000_000))
    settings = pair.client.remote_settings
    assert settings.max_concurrent_streams == 7
    assert settings.initial_window_size == 100_000
    assert pair.client.outbound_flow_control_window == 1_000_000
    # the client's SETTINGS were acknowledged and reported
    assert [type(e) for e in pair.events] == [SettingsChanged]


def test_request_with_body_trailers_and_response() -> None:
    pair = Pair()
    stream = pair.open()
    assert pair.events[-1].headers[":path"] == "/invoke/S/h"
    assert pair.events[-1].end_stream is False
    assert stream.state is StreamState.OPEN
    pair.client.send_data(stream.stream_id, b"hello")
    pair.client.send_data(stream.stream_id, b"world", end_stream=True)
    events = pair.to_server()
    assert [(type(e), e.data, e.end_stream) for e in events] == [
        (DataReceived, b"hello", False),
        (DataReceived, b"world", True),
    ]
    assert stream.state is StreamState.HALF_CLOSED_REMOTE
    block = response_header_block(200, [("content-type", "text/plain")], None)
    pair.server.send_headers(stream, block, end_stream=False)
    assert pair.server.send_data(stream, b"answer", end_stream=True) == 6
    assert stream.state is StreamState.CLOSED and stream.stream_id not in pair.server.streams
    received = pair.to_client()
    response = next(e for e in received if isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[":status"] == "200"
    assert b"".join(e.data for e in received if isinstance(e, h2.events.DataReceived)) == b"answer"
    assert any(isinstance(e, h2.events.StreamEnded) for e in received)


def test_trailers_and_empty_data_end_the_request() -> None:
    pair = Pair()
    a = pair.open()
    b = pair.open()
    pair.client.send_headers(a.stream_id, [("x-trailer", "1")], end_stream=True)
    pair.client.end_stream(b.stream_id)
    events = pair.to_server()
    assert [(type(e), e.stream) for e in events] == [(StreamEnded, a), (StreamEnded, b)]


def test_reset_by_the_peer_and_writes_after_it_are_dropped() -> None:
    pair = Pair()
    stream = pair.open()
    pair.client.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)
    (event,) = pair.to_server()
    assert isinstance(event, StreamReset) and event.remote and event.code == h2.errors.ErrorCodes.CANCEL
    assert stream.state is StreamState.CLOSED and not pair.server.streams
    assert pair.server.send_data(stream, b"late", end_stream=True) == 4
    assert pair.server.data_to_send() == b""


def test_malformed_request_and_refused_stream_are_stream_errors() -> None:
    encoder = hpack.Encoder()
    connection = H2Connection(H2Limits(max_concurrent_streams=1))
    connection.receive(f.PREFACE + SettingsFrame(0).serialize())
    connection.data_to_send()
    first = HeadersFrame(1, encoder.encode(REQUEST), flags=["END_HEADERS"]).serialize()
    second = HeadersFrame(3, encoder.encode(REQUEST), flags=["END_HEADERS", "END_STREAM"]).serialize()
    assert [type(e) for e in connection.receive(first + second)] == [RequestReceived]  # 3 is over the limit
    (frame,) = parse_frames(connection.data_to_send())
    assert isinstance(frame, RstStreamFrame) and frame.stream_id == 3
    assert frame.error_code == f.REFUSED_STREAM
    # a request without :path is malformed: that stream only
    raw = H2Connection()
    raw.receive(f.PREFACE + SettingsFrame(0).serialize())
    raw.data_to_send()
    block = encoder.encode([(":method", "GET")])
    assert raw.receive(HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize()) == []
    (frame,) = parse_frames(raw.data_to_send())
    assert isinstance(frame, RstStreamFrame) and frame.error_code == f.PROTOCOL_ERROR


def test_data_on_a_half_closed_stream_is_a_stream_error() -> None:
    connection = H2Connection()
    encoder = hpack.Encoder()
    connection.receive(f.PREFACE + SettingsFrame(0).serialize())
    connection.data_to_send()
    block = encoder.encode(REQUEST)
    events = connection.receive(
        HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
        + DataFrame(1, b"x").serialize()
    )
    assert [type(e) for e in events] == [RequestReceived, StreamReset]
    assert events[1].code == f.STREAM_CLOSED and not events[1].remote
    frames = parse_frames(connection.data_to_send())
    assert [type(fr) for fr in frames] == [RstStreamFrame]


def test_continuation_frames_are_joined() -> None:
    connection = H2Connection()
    connection.receive(f.PREFACE + SettingsFrame(0).serialize())
    block = hpack.Encoder().encode([*REQUEST, ("x-big", "v" * 3000)])
    data = HeadersFrame(1, block[:10]).serialize()
    data += ContinuationFrame(1, block[10:2000]).serialize()
    data += ContinuationFrame(1, block[2000:], flags=["END_HEADERS"]).serialize()
    # fed one byte at a time: frames may arrive split anywhere
    events: list[Any] = []
    for i in range(len(data)):
        events += connection.receive(data[i : i + 1])
    (event,) = events
    assert event.headers["x-big"] == "v" * 3000


# ---------------------------------------------------------------------------- flow control


def test_send_data_stops_at_the_window_and_resumes_after_window_update() -> None:
    pair = Pair(client_settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    pair.to_client()
    stream = pair.open(end_stream=True)
    pair.server.send_headers(stream, response_header_block(200, [], None), end_stream=False)
    data = bytes(range(256)) * 10  # 2560 octets
    assert pair.server.send_data(stream, data, end_stream=True) == 1000
    assert pair.server.send_data(stream, data, end_stream=True, pos=1000) == 1000  # still no window
    received = pair.to_client()
    assert sum(len(e.data) for e in received if isinstance(e, h2.events.DataReceived)) == 1000
    pair.client.increment_flow_control_window(5000, stream_id=stream.stream_id)
    events = pair.to_server()
    assert [type(e) for e in events] == [WindowUpdated]
    assert pair.server.send_data(stream, data, end_stream=True, pos=1000) == len(data)
    received = pair.to_client()
    assert sum(len(e.data) for e in received if isinstance(e, h2.events.DataReceived)) == 1560
    assert any(isinstance(e, h2.events.StreamEnded) for e in received)


def test_large_data_is_split_at_the_peer_max_frame_size() -> None:
    pair = Pair()
    stream = pair.open(end_stream=True)
    pair.server.send_headers(stream, response_header_block(200, [], None), end_stream=False)
    pair.server.send_data(stream, b"x" * 40000, end_stream=True)
    frames = [fr for fr in parse_frames(pair.server.data_to_send()) if isinstance(fr, DataFrame)]
    assert [len(fr.data) for fr in frames] == [16384, 16384, 7232]
    assert [("END_STREAM" in fr.flags) for fr in frames] == [False, False, True]


def test_initial_window_change_moves_every_stream_window() -> None:
    pair = Pair()
    a = pair.open()
    b = pair.open()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    events = pair.to_server()
    assert [type(e) for e in events] == [SettingsChanged]
    assert a.outbound.available == b.outbound.available == 10
    pair.server.send_data(a, b"x" * 10, end_stream=False)
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    pair.to_server()
    assert a.outbound.available == -10 and b.outbound.available == 0


def test_received_data_is_credited_back_in_batches() -> None:
    pair = Pair(H2Limits(stream_window=100_000, connection_window=1_000_000))
    pair.to_client()
    stream = pair.open()
    for _ in range(4):
        pair.client.send_data(stream.stream_id, b"x" * 16000)
    events = pair.to_server()
    for event in events:
        pair.server.acknowledge_received_data(event.stream, len(event.data))
    # 64,000 octets: past half the stream window, below half the connection window
    updates = [fr for fr in parse_frames(pair.server.data_to_send()) if isinstance(fr, WindowUpdateFrame)]
    assert [(u.stream_id, u.window_increment) for u in updates] == [(stream.stream_id, 64000)]


def test_padding_is_credited_at_once() -> None:
    connection = H2Connection(H2Limits(stream_window=65535, connection_window=65535))
    connection.receive(f.PREFACE + SettingsFrame(0).serialize())
    block = hpack.Encoder().encode(REQUEST)
    padded = DataFrame(1, b"", flags=["PADDED"])
    padded.pad_length = 255  # 256 flow-controlled octets, none delivered
    events = connection.receive(
        HeadersFrame(1, block, flags=["END_HEADERS"]).serialize() + padded.serialize() * 130
    )
    assert [type(e) for e in events] == [RequestReceived]  # the application gets nothing to consume
    updates = [fr for fr in parse_frames(connection.data_to_send()) if isinstance(fr, WindowUpdateFrame)]
    # credit comes back without the application: once half of each window (32,768 octets) is used
    assert sorted((u.stream_id, u.window_increment) for u in updates) == [(0, 32768), (1, 32768)]


# ---------------------------------------------------------------------------- other frames


def test_ping_is_answered_and_goaway_reported() -> None:
    connection = H2Connection()
    events = connection.receive(
        f.PREFACE
        + SettingsFrame(0).serialize()
        + PingFrame(0, b"12345678").serialize()
        + GoAwayFrame(0, last_stream_id=0, error_code=0, additional_data=b"bye").serialize()
    )
    assert [type(e) for e in events] == [SettingsChanged, ConnectionTerminated]
    assert events[1].debug == b"bye"
    frames = parse_frames(connection.data_to_send())
    assert isinstance(frames[0], SettingsFrame) and "ACK" in frames[0].flags
    assert (
        isinstance(frames[1], PingFrame) and "ACK" in frames[1].flags and frames[1].opaque_data == b"12345678"
    )


def test_unknown_frame_types_are_ignored() -> None:
    connection = H2Connection()
    unknown = struct.pack(">HBBBL", 0, 3, 0xFA, 0, 0) + b"abc"
    assert [type(e) for e in connection.receive(f.PREFACE + SettingsFrame(0).serialize() + unknown)] == [
        SettingsChanged
    ]


def test_close_sends_goaway_with_the_last_stream() -> None:
    pair = Pair()
    pair.open(end_stream=True)
    pair.server.close()
    assert pair.server.receive(b"anything") == []  # no more input once closed
    events = pair.to_client()
    terminated = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert terminated.error_code == 0 and terminated.last_stream_id == 1


# ---------------------------------------------------------------------------- connection errors


@pytest.mark.parametrize(
    ("frames", "code", "frame", "state"),
    [
        (b"GET / HTTP/1.1\r\n\r\nxxxxxxx", f.PROTOCOL_ERROR, "preface", "connection"),
        (PingFrame(0).serialize(), f.PROTOCOL_ERROR, "PING", "connection"),
        (SettingsFrame(0).serialize() + DataFrame(1, b"x").serialize(), f.PROTOCOL_ERROR, "DATA", "idle"),
        (
            SettingsFrame(0).serialize() + WindowUpdateFrame(0, window_increment=0).serialize(),
            f.PROTOCOL_ERROR,
            "WINDOW_UPDATE",
            "connection",
        ),
        (
            SettingsFrame(0).serialize() + RstStreamFrame(7).serialize(),
            f.PROTOCOL_ERROR,
            "RST_STREAM",
            "idle",
        ),
        (
            SettingsFrame(0).serialize() + HeadersFrame(1, b"\x82").serialize() + PingFrame(0).serialize(),
            f.PROTOCOL_ERROR,
            "PING",
            "header block in progress",
        ),
        (
            SettingsFrame(0).serialize() + HeadersFrame(1, b"\x80", flags=["END_HEADERS"]).serialize(),
            f.COMPRESSION_ERROR,
            "HEADERS",
            "idle",
        ),
        (
            SettingsFrame(0).serialize() + f.frame_header(20000, f.DATA, 0, 1),
            f.FRAME_SIZE_ERROR,
            "DATA",
            "",
        ),
    ],
    ids=[
        "not-a-preface",
        "no-settings-first",
        "data-idle",
        "zero-window-update",
        "rst-idle",
        "interrupted",
        "hpack",
        "size",
    ],
)
def test_connection_errors_name_the_frame_and_the_state(
    frames: bytes, code: int, frame: str, state: str
) -> None:
    connection = H2Connection()
    data = frames if frames.startswith(b"GET") else f.PREFACE + frames
    with pytest.raises(H2ProtocolError) as info:
        connection.receive(data)
    assert info.value.code == code
    assert info.value.frame == frame
    if state:
        assert info.value.state == state
        assert f"{frame} in state {state}" in str(info.value)
    goaway = [fr for fr in parse_frames(connection.data_to_send()) if isinstance(fr, GoAwayFrame)]
    assert goaway and goaway[0].error_code == code
    assert connection.closed and connection.receive(b"more") == []


def test_data_beyond_the_connection_window_is_a_connection_error() -> None:
    connection = H2Connection(H2Limits(stream_window=65535, connection_window=65535))
    connection.receive(f.PREFACE + SettingsFrame(0).serialize())
    block = hpack.Encoder().encode(REQUEST)
    data = HeadersFrame(1, block, flags=["END_HEADERS"]).serialize()
    data += DataFrame(1, b"x" * 16384).serialize() * 4 + DataFrame(1, b"x" * 16384).serialize()
    with pytest.raises(H2ProtocolError) as info:
        connection.receive(data)
    assert info.value.code == f.FLOW_CONTROL_ERROR


# ---------------------------------------------------------------------------- limits


def _ready(limits: H2Limits | None = None) -> tuple[H2Connection, hpack.Encoder]:
    connection = H2Connection(limits or H2Limits())
    connection.initiate()
    connection.receive(f.PREFACE + SettingsFrame(0).serialize())
    connection.data_to_send()
    return connection, hpack.Encoder()


def test_continuation_frames_per_header_block_are_capped() -> None:
    connection, encoder = _ready(H2Limits(max_continuation_frames=64))
    block = encoder.encode(REQUEST)
    allowed = HeadersFrame(1, block).serialize() + ContinuationFrame(1, b"").serialize() * 63
    allowed += ContinuationFrame(1, b"", flags=["END_HEADERS"]).serialize()
    assert [type(e) for e in connection.receive(allowed)] == [RequestReceived]
    flood = HeadersFrame(3, encoder.encode(REQUEST)).serialize() + ContinuationFrame(3, b"").serialize() * 65
    with pytest.raises(H2ProtocolError) as info:
        connection.receive(flood)
    assert info.value.code == f.ENHANCE_YOUR_CALM and info.value.frame == "CONTINUATION"


def test_rapid_reset_is_answered_with_enhance_your_calm() -> None:
    connection, encoder = _ready(H2Limits(max_premature_resets=10))
    data = b""
    for i in range(10):
        data += HeadersFrame(2 * i + 1, encoder.encode(REQUEST), flags=["END_HEADERS"]).serialize()
        data += RstStreamFrame(2 * i + 1, error_code=8).serialize()
    events = connection.receive(data)
    assert [type(e) for e in events] == [RequestReceived, StreamReset] * 10
    data = HeadersFrame(21, encoder.encode(REQUEST), flags=["END_HEADERS"]).serialize()
    data += RstStreamFrame(21, error_code=8).serialize()
    with pytest.raises(H2ProtocolError) as info:
        connection.receive(data)
    assert info.value.code == f.ENHANCE_YOUR_CALM and info.value.frame == "RST_STREAM"
    goaway = [fr for fr in parse_frames(connection.data_to_send()) if isinstance(fr, GoAwayFrame)]
    assert goaway[0].error_code == f.ENHANCE_YOUR_CALM and goaway[0].last_stream_id == 21


def test_resets_after_a_response_and_completed_streams_do_not_count() -> None:
    connection, encoder = _ready(H2Limits(max_premature_resets=2))
    stream_id = 1
    for _ in range(20):
        # reset after the response head: fine, whatever the number
        (event,) = connection.receive(
            HeadersFrame(stream_id, encoder.encode(REQUEST), flags=["END_HEADERS"]).serialize()
        )
        connection.send_headers(event.stream, response_header_block(200, [], None), end_stream=False)
        connection.receive(RstStreamFrame(stream_id, error_code=8).serialize())
        stream_id += 2
        # a premature reset, made up for by a stream served to the end
        connection.receive(
            HeadersFrame(stream_id, encoder.encode(REQUEST), flags=["END_HEADERS"]).serialize()
            + RstStreamFrame(stream_id, error_code=8).serialize()
        )
        stream_id += 2
        (event,) = connection.receive(
            HeadersFrame(stream_id, encoder.encode(REQUEST), flags=["END_HEADERS", "END_STREAM"]).serialize()
        )
        connection.send_headers(event.stream, response_header_block(200, [], None), end_stream=True)
        stream_id += 2
    assert not connection.closed


def test_settings_apply_the_initial_window_once_per_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    connection, encoder = _ready()
    for i in range(3):
        connection.receive(
            HeadersFrame(2 * i + 1, encoder.encode(REQUEST), flags=["END_HEADERS"]).serialize()
        )
    grows: list[int] = []
    original = SendWindow.grow

    def counting(self: SendWindow, increment: int) -> bool:
        grows.append(increment)
        return original(self, increment)

    monkeypatch.setattr(SendWindow, "grow", counting)
    payload = b"".join(struct.pack(">HL", 4, 1000 + i) for i in range(2000))  # 2,000 entries
    (event,) = connection.receive(f.frame_header(len(payload), f.SETTINGS, 0, 0) + payload)
    assert isinstance(event, SettingsChanged) and event.changed[4] == 2999
    assert grows == [2999 - 65535] * 3  # one adjustment per stream, not one per entry
    assert all(s.outbound.available == 2999 for s in connection.streams.values())


def test_output_size_is_tracked_and_budget_bounds_a_write() -> None:
    pair = Pair()
    stream = pair.open(end_stream=True)
    pair.to_client()
    pair.server.send_headers(stream, response_header_block(200, [], None), end_stream=False)
    assert pair.server.send_data(stream, b"x" * 50_000, end_stream=True, budget=20_000) == 20_000
    size = pair.server.out_size
    assert abs(size - len(pair.server.data_to_send())) <= 9
    assert pair.server.out_size == 0


def test_header_list_size_counts_static_table_references() -> None:
    from restate_sync.transport.hpack_codec import Decoder, HeaderListTooLargeError

    decoder = Decoder(max_header_list_size=1000)
    assert len(decoder.decode(b"\x82" * 23)) == 23  # 23 × (7 + 3 + 32) = 966 octets
    with pytest.raises(HeaderListTooLargeError):
        decoder.decode(b"\x82" * 24)  # 1008: one input octet counts 42


def test_huffman_cache_is_byte_bounded_and_filled_after_the_size_check() -> None:
    from restate_sync.transport import hpack_codec
    from restate_sync.transport.hpack_codec import Decoder, HeaderListTooLargeError, huffman_encode

    def literal(value: bytes) -> bytes:  # :path, literal without indexing, Huffman-coded value
        coded = huffman_encode(value)
        assert len(coded) < 127
        return b"\x04" + bytes([0x80 | len(coded)]) + coded

    decoder = Decoder(max_header_list_size=100_000)
    for i in range(5000):
        decoder.decode(literal(f"/invoke/S/{i:08d}".encode() * 4))
        assert decoder._cache_bytes <= hpack_codec.CACHE_BYTES
    assert 0 < len(decoder._cache) < 5000
    # values of a header list that fails the size check are not kept
    decoder = Decoder(max_header_list_size=200)
    with pytest.raises(HeaderListTooLargeError):
        decoder.decode(literal(b"a" * 90) + literal(b"b" * 90))
    assert decoder._cache == {} and decoder._cache_bytes == 0


# ---------------------------------------------------------------------------- rate-limited logging


def test_rate_limited_log_bounds_records_per_key(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from restate_sync._ratelimit import RateLimitedLog, truncate

    now = [0.0]
    log = RateLimitedLog(logging.getLogger("test.ratelimit"), burst=3, interval=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.ratelimit"):
        logged = [log.warning("a", "error %d %s", i, "x" * 1000) for i in range(100)]
        assert logged == [True] * 3 + [False] * 97
        assert log.warning("b", "another kind")  # a budget per key
        now[0] = 61.0
        assert log.warning("a", "again")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 5
    assert all(len(m) < 700 for m in messages)  # long arguments are cut
    assert "further similar messages suppressed" in messages[2]
    assert "97 similar messages suppressed" in messages[4]
    assert truncate("abc", 2) == "ab… (1 more characters)"
