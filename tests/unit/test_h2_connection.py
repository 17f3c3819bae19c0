"""The HTTP/2 server connection and its HPACK codec, against independent peers.

The server runs on its own gevent hub in a background thread (``EndpointThread``) with a test
handler; clients are the ``h2`` library (a complete, independent HTTP/2 implementation) or raw
frames written by hand for what ``h2`` will not send (padding, malformed frames). HPACK is
checked against the examples of RFC 7541 Appendix C and against the ``hpack`` library.
"""

from __future__ import annotations

import logging
import random
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import hpack
import pytest

from restate_sync.exchange import DISCONNECTED, EOF
from restate_sync.testing import EndpointThread
from restate_sync.transport import hpack_codec
from restate_sync.transport.h2limits import DEFAULT_LIMITS
from restate_sync.transport.h2server import PREFACE, H2Stream
from restate_sync.transport.hpack_codec import (
    Decoder,
    HeaderListTooLargeError,
    HPACKDecodingError,
    encode_headers,
    huffman_decode,
    huffman_encode,
)

# ============================================================================ HPACK


def _integer(value: int, prefix_bits: int) -> bytes:
    return hpack_codec._integer(value, prefix_bits, 0)


def test_integer_representation_rfc7541_c1() -> None:
    # C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 at an octet boundary
    assert _integer(10, 5) == bytes([0x0A])
    assert _integer(1337, 5) == bytes([0x1F, 0x9A, 0x0A])
    assert _integer(42, 8) == bytes([0x2A])
    assert hpack_codec._varint(bytes([0x9A, 0x0A]), 0, 31) == (1337, 2)
    # as the index of an indexed field (7-bit prefix) inside a block
    decoder = Decoder()
    with pytest.raises(HPACKDecodingError, match="not in the tables"):
        decoder.decode(bytes([0xFF, 0x9A, 0x0A]))


def test_header_field_representations_rfc7541_c2() -> None:
    # C.2.1 literal with indexing
    decoder = Decoder()
    block = bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572")
    assert decoder.decode(block) == [("custom-key", "custom-header")]
    assert decoder.dynamic_table == [("custom-key", "custom-header")]
    assert decoder.dynamic_table_size == 55
    # C.2.2 literal without indexing
    decoder = Decoder()
    assert decoder.decode(bytes.fromhex("040c2f73616d706c652f70617468")) == [(":path", "/sample/path")]
    assert decoder.dynamic_table == []
    # C.2.3 literal never indexed
    decoder = Decoder()
    assert decoder.decode(bytes.fromhex("100870617373776f726406736563726574")) == [("password", "secret")]
    assert decoder.dynamic_table == []
    # C.2.4 indexed
    decoder = Decoder()
    assert decoder.decode(bytes.fromhex("82")) == [(":method", "GET")]
    assert decoder.dynamic_table == []


_REQUESTS = [
    [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
    [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ],
    [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ],
]
_REQUEST_TABLES = [
    ([(":authority", "www.example.com")], 57),
    ([("cache-control", "no-cache"), (":authority", "www.example.com")], 110),
    ([("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")], 164),
]
_RESPONSES = [
    [
        (":status", "302"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ],
    [
        (":status", "307"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ],
    [
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
    ],
]
_RESPONSE_TABLES = [
    (
        [
            ("location", "https://www.example.com"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("cache-control", "private"),
            (":status", "302"),
        ],
        222,
    ),
    (
        [
            (":status", "307"),
            ("location", "https://www.example.com"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("cache-control", "private"),
        ],
        222,
    ),
    (
        [
            ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
            ("content-encoding", "gzip"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ],
        215,
    ),
]


@pytest.mark.parametrize(
    ("blocks", "expected", "tables", "table_size"),
    [
        pytest.param(
            [
                "828684410f7777772e6578616d706c652e636f6d",
                "828684be58086e6f2d6361636865",
                "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
            ],
            _REQUESTS,
            _REQUEST_TABLES,
            4096,
            id="C.3-requests-without-huffman",
        ),
        pytest.param(
            [
                "828684418cf1e3c2e5f23a6ba0ab90f4ff",
                "828684be5886a8eb10649cbf",
                "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
            ],
            _REQUESTS,
            _REQUEST_TABLES,
            4096,
            id="C.4-requests-with-huffman",
        ),
        pytest.param(
            [
                "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a32312047"
                "4d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
                "4803333037c1c0bf",
                "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970773866"
                "6f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630"
                "303b2076657273696f6e3d31",
            ],
            _RESPONSES,
            _RESPONSE_TABLES,
            256,
            id="C.5-responses-without-huffman",
        ),
        pytest.param(
            [
                "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863"
                "c78f0b97c8e9ae82ae43d3",
                "4883640effc1c0bf",
                "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b3"
                "35dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
            ],
            _RESPONSES,
            _RESPONSE_TABLES,
            256,
            id="C.6-responses-with-huffman",
        ),
    ],
)
def test_rfc7541_appendix_c_sequences(
    blocks: list[str], expected: list[Any], tables: list[Any], table_size: int
) -> None:
    decoder = Decoder(max_table_size=table_size)
    for block, headers, (table, size) in zip(blocks, expected, tables, strict=True):
        assert decoder.decode(bytes.fromhex(block)) == headers
        assert decoder.dynamic_table == table
        assert decoder.dynamic_table_size == size


def test_huffman_matches_the_hpack_library_both_ways() -> None:
    from hpack.huffman import HuffmanEncoder
    from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
    from hpack.huffman_table import decode_huffman

    reference = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)
    rng = random.Random(7)
    samples = [b"", bytes(range(256)), b"inv_1h5Rka0dlUQP0WRM4gk2DnUyDgPgd1Jwfz"]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) for _ in range(500)]
    for sample in samples:
        encoded = reference.encode(sample)
        assert huffman_encode(sample) == encoded
        assert huffman_decode(encoded) == sample
        assert decode_huffman(huffman_encode(sample)) == sample


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "padding"),  # 8 bits of padding
        (huffman_encode(b"a") + b"\xff", "padding"),  # a padding octet after a complete string
        (bytes([0x00]), "padding"),  # '0' (00000) then padding 000: not ones
        (b"\xff\xff\xff\xff", "EOS"),  # EOS (30 ones) inside the string
    ],
)
def test_huffman_rejects_invalid_strings(data: bytes, message: str) -> None:
    with pytest.raises(HPACKDecodingError, match=message):
        huffman_decode(data)


def test_decoder_resizes_and_evicts() -> None:
    encoder = hpack.Encoder()
    decoder = Decoder()
    for i in range(200):  # far more than fits in 4096 octets
        headers = [("x-counter", str(i)), ("x-id", uuid.uuid4().hex)]
        assert decoder.decode(encoder.encode(headers)) == headers
    assert decoder.dynamic_table_size <= 4096
    assert decoder.dynamic_table_size == encoder.header_table._current_size
    # a size update to 0 empties the table, one back up re-enables indexing
    assert decoder.decode(b"\x20") == []
    assert decoder.dynamic_table == [] and decoder.dynamic_table_size == 0
    assert decoder.decode(
        b"\x3f\xe1\x1f" + bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572")
    ) == [("custom-key", "custom-header")]
    assert decoder.table_size == 4096 and decoder.dynamic_table_size == 55
    # an entry larger than the table empties it
    decoder = Decoder(max_table_size=100)
    decoder.decode(bytes.fromhex("400a637573746f6d2d6b65790d637573746f6d2d686561646572"))
    big = b"\x40\x01a\x7f\x00" + b"x" * 127
    assert decoder.decode(big) == [("a", "x" * 127)]
    assert decoder.dynamic_table == [] and decoder.dynamic_table_size == 0


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x80", "not in the tables"),  # index 0
        (b"\xbe", "not in the tables"),  # index 62, empty dynamic table
        (b"\x0f\x30\x00", "beyond the dynamic table"),  # literal whose name index is 63
        (b"\x3f\xe2\x1f", "exceeds the limit"),  # size update to 4097
        (b"\x82\x20", "after a header field"),
        (b"\x04\x05/ab", "past the end"),
        (b"\x04", "truncated"),
        (b"\x00\x03ab", "past the end"),
        (b"\xff\xff\xff\xff\xff\xff\x01", "integer too large"),
        (b"\x04\x81\xff", "padding"),
    ],
)
def test_decoder_rejects_invalid_blocks(block: bytes, message: str) -> None:
    with pytest.raises(HPACKDecodingError, match=message):
        Decoder().decode(block)


def test_decoder_limits_the_header_list_size() -> None:
    decoder = Decoder(max_header_list_size=1000)
    entry = b"\x40\x01a\x7f\x49" + b"x" * 200  # 1 + 200 + 32 octets, indexed
    assert decoder.decode(entry) == [("a", "x" * 200)]
    assert len(decoder.decode(b"\xbe" * 4)) == 4  # 932 octets
    with pytest.raises(HeaderListTooLargeError):
        decoder.decode(b"\xbe" * 5)  # 1165 octets


def test_decoder_text_names_values_and_cache() -> None:
    decoder = Decoder()
    # upper-case literal names are lower-cased; non-UTF-8 values fall back to Latin-1
    block = b"\x00\x05X-Foo\x03\xe9t\xe9" + b"\x00\x03x-u\x05" + "été".encode()
    assert decoder.decode(block) == [("x-foo", "été"), ("x-u", "été")]
    # repeated non-indexed Huffman literals (like :path) decode the same from the cache
    path = (
        b"\x04"
        + bytes([0x80 | len(huffman_encode(b"/invoke/Greeter/greet"))])
        + huffman_encode(b"/invoke/Greeter/greet")
    )
    for _ in range(3):
        assert decoder.decode(path) == [(":path", "/invoke/Greeter/greet")]
    # never-indexed values are not kept
    secret = huffman_encode(b"secret")
    decoder.decode(b"\x10\x08password" + bytes([0x80 | len(secret)]) + secret)
    assert secret not in decoder._cache


def test_encoder_output_is_stateless_and_decodable() -> None:
    headers = [
        (":status", "200"),
        ("content-type", "application/vnd.restate.invocation.v5"),
        ("x-restate-server", "restate-sdk-python-gevent/1.0"),
        ("content-length", "1234"),
        (":status", "418"),
        ("x-" + "a" * 300, "é" * 200),
    ]
    block = encode_headers(headers)
    reference = hpack.Decoder()
    assert [(n, v) for n, v in reference.decode(block)] == headers
    assert len(reference.header_table.dynamic_entries) == 0
    assert Decoder().decode(block) == headers
    assert encode_headers([(":status", "200")]) == b"\x88"  # a static table reference
    assert encode_headers(headers) == block


# ============================================================================ the server


class Recorder:
    """What the handlers saw, for the test thread to wait on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: list[tuple[str, str, Any]] = []

    def put(self, tag: str, kind: str, value: Any) -> None:
        with self._cond:
            self._items.append((tag, kind, value))
            self._cond.notify_all()

    def wait(self, tag: str, kind: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        def found() -> list[Any]:
            return [v for t, k, v in self._items if t == tag and k == kind]

        with self._cond:
            assert self._cond.wait_for(lambda: len(found()) >= count, timeout), (tag, kind, found())
            return found()


RECORD = Recorder()
PATTERN = bytes(range(256)) * 4096  # 1 MiB


def _handler(exchange: H2Stream) -> None:
    path, _, query = exchange.path.partition("?")
    tag = exchange.headers.get("x-tag", "")
    if path == "/get":
        RECORD.put(tag, "first", exchange.inbox.get(timeout=5))
        exchange.respond(200, [("content-type", "text/plain")], b"hello")
    elif path == "/echo":
        chunks = []
        while True:
            item = exchange.inbox.get(timeout=20)
            if item is EOF:
                break
            if item is None or item is DISCONNECTED:
                RECORD.put(tag, "echo", item)
                return
            chunks.append(item)
        RECORD.put(tag, "chunks", len(chunks))
        exchange.respond(
            200,
            [
                ("content-type", "application/octet-stream"),
                ("x-method", exchange.method),
                ("x-echo", exchange.headers.get("x-echo", "")),
            ],
            b"".join(chunks),
        )
    elif path == "/big":
        size = int(query)
        exchange.respond(200, [("content-type", "application/octet-stream")])
        for offset in range(0, size, 100_000):
            exchange.write(PATTERN[offset : min(offset + 100_000, size)])
        exchange.close()
        RECORD.put(tag, "big", size)
    elif path == "/hold":
        exchange.respond(200, [("content-type", "text/plain")])
        exchange.write(b"started")
        while True:
            item = exchange.inbox.get(timeout=20)
            if item is None or item is DISCONNECTED:
                break
        exchange.write(b"after")  # a no-op on a reset stream or a lost connection
        exchange.close()
        RECORD.put(tag, "hold", item)
    elif path == "/streams":
        count = len(exchange._connection.streams)
        exchange.respond(200, [("content-type", "text/plain")], str(count).encode())
    elif path == "/fail":
        exchange.respond(200, [("content-type", "text/plain")])
        raise RuntimeError("handler failure")
    else:
        exchange.respond(404, [("content-type", "text/plain")], b"")


def _start_server() -> EndpointThread:
    return EndpointThread(SimpleNamespace(handle=_handler)).start()  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server() -> Iterator[EndpointThread]:
    thread = _start_server()
    yield thread
    thread.stop()


@pytest.fixture
def address(server: EndpointThread) -> tuple[str, int]:
    assert server.address is not None
    return server.address


class Client:
    """An ``h2`` client connection on a blocking socket; flow control is left to the test."""

    def __init__(
        self, address: tuple[str, int], settings: dict[int, int] | None = None, handshake: bool = True
    ) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()
        self.closed = False
        if handshake:  # the server's SETTINGS received, ours acknowledged
            self.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def receive(self, timeout: float = 10.0) -> list[Any]:
        """The events of one read; [] on timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except TimeoutError:
            return []
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        self.flush()
        return events

    def until(self, predicate: Callable[[Any], bool], timeout: float = 10.0) -> list[Any]:
        """Events until one matches ``predicate`` (that one included)."""
        seen: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.receive(deadline - time.monotonic())
            seen += events
            if any(predicate(e) for e in events):
                return seen
            if self.closed:
                break
        raise AssertionError(f"no matching event; got {seen}")

    def open(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        end_stream: bool = True,
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        request = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "test")]
        request += list((headers or {}).items())
        self.conn.send_headers(stream_id, request, end_stream=end_stream)
        self.flush()
        return stream_id

    def response(self, stream_id: int, acknowledge: bool = True) -> tuple[dict[str, str], bytes]:
        headers: dict[str, str] = {}
        body = bytearray()
        while True:
            events = self.receive()
            if not events and self.closed:
                raise AssertionError("connection closed")
            for event in events:
                if getattr(event, "stream_id", None) != stream_id:
                    continue
                if isinstance(event, h2.events.ResponseReceived):
                    headers = dict(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    if acknowledge and event.flow_controlled_length:
                        self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                        self.flush()
                elif isinstance(event, h2.events.StreamEnded):
                    return headers, bytes(body)
                elif isinstance(event, h2.events.StreamReset):
                    raise AssertionError(f"stream {stream_id} reset: {event.error_code!r}")

    def request(self, path: str, **kwargs: Any) -> tuple[dict[str, str], bytes]:
        return self.response(self.open(path, **kwargs))


@pytest.fixture
def client(address: tuple[str, int]) -> Iterator[Client]:
    c = Client(address)
    yield c
    c.close()


def _tag() -> str:
    return uuid.uuid4().hex


def test_preface_and_settings_exchange(address: tuple[str, int]) -> None:
    c = Client(address, handshake=False)
    events = c.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
    changed = [e for e in events if isinstance(e, h2.events.RemoteSettingsChanged)]
    assert changed
    assert c.conn.remote_settings.max_concurrent_streams == DEFAULT_LIMITS.max_concurrent_streams == 100
    assert c.conn.remote_settings.initial_window_size == 4 * 1024 * 1024
    assert c.conn.outbound_flow_control_window == 16 * 1024 * 1024
    c.close()


def test_get_with_end_stream_on_headers(client: Client) -> None:
    tag = _tag()
    headers, body = client.request("/get", headers={"x-tag": tag})
    assert headers[":status"] == "200"
    assert headers["content-type"] == "text/plain"
    assert headers["content-length"] == "5"
    assert body == b"hello"
    assert RECORD.wait(tag, "first") == [EOF]
    # and again on the same connection
    assert client.request("/get")[1] == b"hello"


def test_post_body_in_many_data_frames(client: Client) -> None:
    tag = _tag()
    stream_id = client.open("/echo", "POST", {"x-tag": tag, "x-echo": "Ünïcode ✓"}, end_stream=False)
    body = PATTERN[:100_000]
    for offset in range(0, len(body), 1000):
        client.conn.send_data(stream_id, body[offset : offset + 1000], end_stream=offset + 1000 >= len(body))
    client.flush()
    headers, echoed = client.response(stream_id)
    assert echoed == body
    assert headers["x-method"] == "POST"
    assert headers["x-echo"] == "Ünïcode ✓"
    assert headers["content-length"] == str(len(body))
    assert RECORD.wait(tag, "chunks")[0] >= 2


def test_large_request_body_is_not_stalled_and_window_updates_are_batched(client: Client) -> None:
    size = 20 * 1024 * 1024  # more than the stream (4 MiB) and connection (16 MiB) windows
    body = PATTERN * 20
    stream_id = client.open("/echo", "POST", end_stream=False)
    sent = 0
    updates = 0
    frames = 0
    while sent < size:
        window = min(client.conn.local_flow_control_window(stream_id), client.conn.max_outbound_frame_size)
        if window <= 0:
            events = client.receive()
            assert events, "the server stopped granting window"
            updates += sum(isinstance(e, h2.events.WindowUpdated) for e in events)
            continue
        n = min(window, size - sent)
        client.conn.send_data(stream_id, body[sent : sent + n], end_stream=sent + n == size)
        sent += n
        frames += 1
        if frames % 64 == 0:
            client.flush()
    client.flush()
    _, echoed = client.response(stream_id)
    assert echoed == body
    assert frames >= 1280
    assert updates <= 20  # a handful of batched updates, not one per frame


def _data_events(events: list[Any], stream_id: int) -> int:
    return sum(
        len(e.data) for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id
    )


def _no_data_for(c: Client, stream_id: int, seconds: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        assert _data_events(c.receive(left), stream_id) == 0, "the server sent beyond the window"


def test_large_response_with_small_client_windows(address: tuple[str, int]) -> None:
    c = Client(address, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    tag = _tag()
    stream_id = c.open("/big?1048576", headers={"x-tag": tag})
    body = bytearray()
    granted = 16384
    while True:
        events = c.receive()
        assert events or not c.closed
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                body += event.data
                # h2 itself raises FlowControlError if the server exceeds a window
                assert len(body) <= granted
            if isinstance(event, h2.events.StreamEnded):
                break
        else:
            if len(body) == granted:
                if granted == 16384:  # the writer is parked: nothing comes until we grant more
                    _no_data_for(c, stream_id)
                c.conn.increment_flow_control_window(16384, stream_id=stream_id)
                c.conn.increment_flow_control_window(16384)
                c.flush()
                granted += 16384
            continue
        break
    assert bytes(body) == PATTERN
    assert RECORD.wait(tag, "big") == [1048576]
    c.close()


def test_initial_window_size_change_mid_stream_can_make_windows_negative(address: tuple[str, int]) -> None:
    c = Client(address, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 32768})
    c.conn.increment_flow_control_window(1 << 20)  # the connection window is not the limit here
    stream_id = c.open("/big?200000")
    received = 0
    while received < 32768:
        received += _data_events(c.receive(), stream_id)
    assert received == 32768
    _no_data_for(c, stream_id)
    # 32768 in flight, window 16384: the server's stream window is now -16384
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
    c.flush()
    c.until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
    c.conn.increment_flow_control_window(16384, stream_id=stream_id)  # back to 0 only
    c.flush()
    _no_data_for(c, stream_id)
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    c.flush()
    events = c.until(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == stream_id)
    received += _data_events(events, stream_id)
    assert received == 200000
    c.close()


def test_ping_is_acknowledged(client: Client) -> None:
    client.conn.ping(b"12345678")
    client.flush()
    events = client.until(lambda e: isinstance(e, h2.events.PingAckReceived))
    assert [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)] == [b"12345678"]


def test_rst_stream_mid_response_disconnects_that_stream_only(client: Client) -> None:
    tag, other = _tag(), _tag()
    held = client.open("/hold", headers={"x-tag": tag})
    kept = client.open("/hold", headers={"x-tag": other}, end_stream=False)
    client.until(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == held)
    client.conn.reset_stream(held, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    assert RECORD.wait(tag, "hold") == [DISCONNECTED]
    # the connection and the other stream carry on
    assert client.request("/get")[1] == b"hello"
    client.conn.end_stream(kept)
    client.conn.reset_stream(kept)
    client.flush()
    assert RECORD.wait(other, "hold") == [DISCONNECTED]
    assert client.request("/streams")[1] == b"1"


def test_many_concurrent_streams_on_one_connection(client: Client) -> None:
    bodies = {}
    for i in range(DEFAULT_LIMITS.max_concurrent_streams):  # as many as the server allows at once
        stream_id = client.open("/echo", "POST", end_stream=False)
        body = f"request {i} ".encode() * (i + 1)
        bodies[stream_id] = body
        client.conn.send_data(stream_id, body[: len(body) // 2])
        client.conn.send_data(stream_id, body[len(body) // 2 :], end_stream=True)
    client.flush()
    results: dict[int, bytearray] = {sid: bytearray() for sid in bodies}
    ended: set[int] = set()
    while len(ended) < len(bodies):
        events = client.receive()
        assert events, "responses stopped coming"
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                results[event.stream_id] += event.data
                client.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                raise AssertionError(f"stream {event.stream_id} reset")
        client.flush()
    assert {sid: bytes(b) for sid, b in results.items()} == bodies
    # every finished stream's state is gone: only the /streams request itself is left
    assert client.request("/streams")[1] == b"1"


def test_continuation_frames_both_ways(client: Client) -> None:
    value = "".join(random.Random(3).choice("abcdefghij0123456789") for _ in range(60_000))
    stream_id = client.open("/echo", "POST", {"x-echo": value}, end_stream=False)
    client.conn.send_data(stream_id, b"body", end_stream=True)
    client.flush()
    headers, body = client.response(stream_id)
    assert body == b"body"
    assert headers["x-echo"] == value  # our response header block needed CONTINUATION frames too


def test_trailers_end_the_request(client: Client) -> None:
    tag = _tag()
    stream_id = client.open("/echo", "POST", {"x-tag": tag}, end_stream=False)
    client.conn.send_data(stream_id, b"journal")
    client.conn.send_headers(stream_id, [("x-trailer", "yes")], end_stream=True)
    client.flush()
    assert client.response(stream_id)[1] == b"journal"
    assert RECORD.wait(tag, "chunks") == [1]


def test_empty_data_frame_ends_the_request(client: Client) -> None:
    stream_id = client.open("/echo", "POST", end_stream=False)
    client.conn.send_data(stream_id, b"abc")
    client.conn.end_stream(stream_id)
    client.flush()
    assert client.response(stream_id)[1] == b"abc"


def test_connection_loss_disconnects_every_stream(address: tuple[str, int]) -> None:
    c = Client(address)
    tags = [_tag() for _ in range(3)]
    streams = [c.open("/hold", headers={"x-tag": tag}, end_stream=False) for tag in tags]
    started: set[int] = set()
    while len(started) < len(streams):
        started |= {e.stream_id for e in c.receive() if isinstance(e, h2.events.DataReceived)}
    c.close()
    for tag in tags:
        assert RECORD.wait(tag, "hold") == [DISCONNECTED]


def test_handler_failure_resets_the_stream(client: Client) -> None:
    stream_id = client.open("/fail")
    events = client.until(lambda e: isinstance(e, h2.events.StreamReset))
    reset = [e for e in events if isinstance(e, h2.events.StreamReset)]
    assert reset[0].stream_id == stream_id
    assert reset[0].error_code == h2.errors.ErrorCodes.INTERNAL_ERROR
    assert client.request("/get")[1] == b"hello"


def test_http1_is_still_served_on_the_same_port(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /get HTTP/1.1\r\nhost: x\r\n\r\n")
        response = b""
        while b"hello" not in response:
            chunk = sock.recv(65536)
            assert chunk
            response += chunk
    assert response.startswith(b"HTTP/1.1 200")


def test_stop_closes_connections() -> None:
    thread = _start_server()
    assert thread.address is not None
    c = Client(thread.address)
    assert c.request("/get")[1] == b"hello"
    tag = _tag()
    c.open("/hold", headers={"x-tag": tag}, end_stream=False)
    c.until(lambda e: isinstance(e, h2.events.DataReceived))
    thread.stop()
    events: list[Any] = []
    while not c.closed:
        events += c.receive()
    terminated = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert terminated and terminated[0].error_code == h2.errors.ErrorCodes.NO_ERROR
    assert RECORD.wait(tag, "hold") == [DISCONNECTED]
    c.close()


# ---------------------------------------------------------------------------- raw frames

_DATA, _HEADERS, _PRIORITY, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _PING, _GOAWAY, _WINDOW_UPDATE = range(9)
_CONTINUATION = 9
_END_STREAM = 0x1
_END_HEADERS = 0x4
_PADDED = 0x8
_PRIORITY_FLAG = 0x20


def frame(
    frame_type: int, flags: int, stream_id: int, payload: bytes = b"", length: int | None = None
) -> bytes:
    size = len(payload) if length is None else length
    return struct.pack(">HBBBL", size >> 8, size & 0xFF, frame_type, flags, stream_id) + payload


def setting(identifier: int, value: int) -> bytes:
    return struct.pack(">HL", identifier, value)


class RawClient:
    def __init__(self, address: tuple[str, int], settings: bytes | None = b"") -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.buffer = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.sock.sendall(PREFACE + (frame(_SETTINGS, 0, 0, settings) if settings is not None else b""))

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def block(self, path: str, method: str = "GET", **headers: str) -> bytes:
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "x")]
        return self.encoder.encode(fields + list(headers.items()))

    def read_frame(self) -> tuple[int, int, int, bytes] | None:
        while True:
            if len(self.buffer) >= 9:
                high, low, frame_type, flags, stream_id = struct.unpack_from(">HBBBL", self.buffer)
                length = (high << 8) | low
                if len(self.buffer) >= 9 + length:
                    payload = self.buffer[9 : 9 + length]
                    self.buffer = self.buffer[9 + length :]
                    return frame_type, flags, stream_id & 0x7FFFFFFF, payload
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buffer += data

    def frames(self, until: Callable[[int, int, int, bytes], bool]) -> list[tuple[int, int, int, bytes]]:
        seen = []
        while True:
            f = self.read_frame()
            assert f is not None, f"connection closed; got {seen}"
            seen.append(f)
            if until(*f):
                return seen

    def close(self) -> None:
        self.sock.close()


def test_padded_and_priority_frames(address: tuple[str, int]) -> None:
    c = RawClient(address)
    block = c.block("/echo", "POST")
    priority = struct.pack(">LB", 0, 15)
    c.send(
        frame(
            _HEADERS, _PADDED | _PRIORITY_FLAG | _END_HEADERS, 1, bytes([7]) + priority + block + b"\0" * 7
        ),
        frame(_PRIORITY, 0, 1, struct.pack(">LB", 0, 200)),
        frame(_DATA, _PADDED, 1, bytes([3]) + b"abc" + b"\0\0\0"),
        frame(_DATA, _PADDED, 1, bytes([0]) + b"def"),
        frame(_DATA, _PADDED | _END_STREAM, 1, bytes([4]) + b"\0" * 4),  # empty, padded, ends the request
    )
    frames = c.frames(lambda t, f, s, p: s == 1 and f & _END_STREAM == _END_STREAM)
    body = b"".join(p for t, f, s, p in frames if t == _DATA and s == 1)
    assert body == b"abcdef"
    headers = dict(c.decoder.decode(b"".join(p for t, f, s, p in frames if t == _HEADERS and s == 1)))
    assert headers[":status"] == "200"
    c.close()


def test_raw_continuation_frames(address: tuple[str, int]) -> None:
    c = RawClient(address)
    block = c.block("/get", **{"x-tag": "raw"})
    third = len(block) // 3
    c.send(
        frame(_HEADERS, _END_STREAM, 1, block[:third]),
        frame(_CONTINUATION, 0, 1, block[third : 2 * third]),
        frame(_CONTINUATION, _END_HEADERS, 1, block[2 * third :]),
    )
    frames = c.frames(lambda t, f, s, p: s == 1 and f & _END_STREAM == _END_STREAM)
    assert b"".join(p for t, f, s, p in frames if t == _DATA) == b"hello"
    c.close()


def test_header_table_size_reduction_is_signalled(address: tuple[str, int]) -> None:
    c = RawClient(address, setting(1, 0))
    c.send(frame(_HEADERS, _END_STREAM | _END_HEADERS, 1, c.block("/get")))
    frames = c.frames(lambda t, f, s, p: t == _HEADERS and s == 1)
    assert frames[-1][3][:1] == b"\x20"  # a dynamic table size update to 0 comes first
    c.send(frame(_HEADERS, _END_STREAM | _END_HEADERS, 3, c.block("/get")))
    frames = c.frames(lambda t, f, s, p: t == _HEADERS and s == 3)
    assert frames[-1][3][:1] != b"\x20"
    c.close()


def test_streams_beyond_the_concurrency_limit_are_refused(address: tuple[str, int]) -> None:
    c = RawClient(address)
    tag = _tag()
    limit = DEFAULT_LIMITS.max_concurrent_streams
    c.send(
        *(
            frame(_HEADERS, _END_HEADERS, 2 * i + 1, c.block("/hold", **{"x-tag": tag}))
            for i in range(limit + 1)
        )
    )
    frames = c.frames(lambda t, f, s, p: t == _RST_STREAM)
    assert frames[-1][2] == 2 * limit + 1
    assert struct.unpack(">L", frames[-1][3])[0] == 0x7  # REFUSED_STREAM
    c.close()
    assert RECORD.wait(tag, "hold", count=limit) == [DISCONNECTED] * limit


def test_frames_on_closed_streams(address: tuple[str, int]) -> None:
    c = RawClient(address)
    c.send(frame(_HEADERS, _END_STREAM | _END_HEADERS, 1, c.block("/get")))
    c.frames(lambda t, f, s, p: s == 1 and f & _END_STREAM == _END_STREAM)
    # stream 1 is closed: WINDOW_UPDATE and RST_STREAM are ignored, DATA gets STREAM_CLOSED
    c.send(
        frame(_WINDOW_UPDATE, 0, 1, struct.pack(">L", 100)), frame(_RST_STREAM, 0, 1, struct.pack(">L", 0))
    )
    c.send(frame(_DATA, 0, 1, b"late"))
    frames = c.frames(lambda t, f, s, p: t == _RST_STREAM)
    assert frames[-1][2] == 1 and struct.unpack(">L", frames[-1][3])[0] == 0x5
    # the connection is fine
    c.send(frame(_HEADERS, _END_STREAM | _END_HEADERS, 3, c.block("/get")))
    c.frames(lambda t, f, s, p: s == 3 and f & _END_STREAM == _END_STREAM)
    c.close()


_MALFORMED: list[Any] = [
    ("oversized frame", lambda c: frame(_DATA, 0, 1, length=20000), "FRAME_SIZE_ERROR", 0x6),
    ("short ping", lambda c: frame(_PING, 0, 0, b"1234"), "FRAME_SIZE_ERROR", 0x6),
    ("settings length", lambda c: frame(_SETTINGS, 0, 0, b"\0" * 5), "FRAME_SIZE_ERROR", 0x6),
    ("even stream", lambda c: frame(_HEADERS, 5, 2, c.block("/get")), "PROTOCOL_ERROR", 0x1),
    ("push promise", lambda c: frame(_PUSH_PROMISE, 4, 1, b"\0\0\0\2"), "PROTOCOL_ERROR", 0x1),
    ("zero window update", lambda c: frame(_WINDOW_UPDATE, 0, 0, b"\0\0\0\0"), "PROTOCOL_ERROR", 0x1),
    ("bad hpack", lambda c: frame(_HEADERS, 5, 1, b"\x80"), "COMPRESSION_ERROR", 0x9),
    ("data on idle stream", lambda c: frame(_DATA, 0, 5, b"x"), "PROTOCOL_ERROR", 0x1),
    ("stray continuation", lambda c: frame(_CONTINUATION, 4, 1, b"\x82"), "PROTOCOL_ERROR", 0x1),
    (
        "interrupted header block",
        lambda c: frame(_HEADERS, 0, 1, c.block("/get")) + frame(_PING, 0, 0, b"\0" * 8),
        "PROTOCOL_ERROR",
        0x1,
    ),
    (
        "initial window too large",
        lambda c: frame(_SETTINGS, 0, 0, setting(4, 2**31)),
        "FLOW_CONTROL_ERROR",
        0x3,
    ),
    ("max frame size too small", lambda c: frame(_SETTINGS, 0, 0, setting(5, 100)), "PROTOCOL_ERROR", 0x1),
    (
        "connection window overflow",
        lambda c: frame(_WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 1)),
        "FLOW_CONTROL_ERROR",
        0x3,
    ),
    (
        "stream ids not increasing",
        lambda c: frame(_HEADERS, 5, 5, c.block("/get")) + frame(_HEADERS, 5, 3, c.block("/get")),
        "PROTOCOL_ERROR",
        0x1,
    ),
    (
        "padding longer than the frame",
        lambda c: (
            frame(_HEADERS, 4, 1, c.block("/echo", "POST")) + frame(_DATA, _PADDED, 1, bytes([9]) + b"ab")
        ),
        "PROTOCOL_ERROR",
        0x1,
    ),
    ("no settings first", None, "PROTOCOL_ERROR", 0x1),
]


@pytest.mark.parametrize(("case", "make", "name", "code"), _MALFORMED, ids=[m[0] for m in _MALFORMED])
def test_malformed_frames_end_the_connection_with_goaway(
    address: tuple[str, int],
    caplog: pytest.LogCaptureFixture,
    case: str,
    make: Callable[[RawClient], bytes] | None,
    name: str,
    code: int,
) -> None:
    with caplog.at_level(logging.WARNING, logger="restate_sync.transport"):
        if make is None:
            c = RawClient(address, settings=None)
            c.send(frame(_PING, 0, 0, b"\0" * 8))
        else:
            c = RawClient(address)
            c.send(make(c))
        frames = c.frames(lambda t, f, s, p: t == _GOAWAY)
        error = struct.unpack_from(">LL", frames[-1][3])[1]
        assert error == code
        assert c.read_frame() is None  # then the server closes the connection
        c.close()
        deadline = time.monotonic() + 5
        while name not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "HTTP/2 protocol error from 127.0.0.1:" in caplog.text
        assert name in caplog.text
    # the server carries on
    c2 = Client(address)
    assert c2.request("/get")[1] == b"hello"
    c2.close()
