"""Attacks on the HTTP/2 server and its HPACK decoder, each bounded in frames and seconds.

After every attack the harness checks that the process lives, answers a fresh request within
2 s, and that its peak RSS and its log stayed within the bound the attack states (see
``harness.py``). Grouped as in the hardening issue: memory, CPU, time, logs, and the attacks
the server withstood before (kept so that none regresses).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import hpack
import pytest

from restate_sync.transport.hpack_codec import huffman_encode

from .harness import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    INVOKE_HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    MiB,
    RawH2,
    Target,
    frame,
    invocation_body,
    setting,
)

PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR = 0x1, 0x3, 0x6
COMPRESSION_ERROR, ENHANCE_YOUR_CALM, NO_ERROR = 0x9, 0xB, 0x0

pytestmark = pytest.mark.timeout(120)


def _rst_codes(client: RawH2, seconds: float) -> dict[int, int]:
    """stream id -> RST_STREAM code, for what arrives within ``seconds``."""
    codes: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        got = client.read_frame(left)
        if got is None:
            break
        if got[0] == RST_STREAM:
            codes[got[2]] = struct.unpack(">L", got[3])[0]
    return codes


def _send_for(client: RawH2, data: bytes, seconds: float) -> int:
    """Send as much of ``data`` as the server takes within ``seconds`` (it may stop reading)."""
    client.sock.settimeout(0.2)
    sent = 0
    deadline = time.monotonic() + seconds
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += client.sock.send(view[sent : sent + 65536])
        except (TimeoutError, BlockingIOError):
            continue
        except OSError:
            break
    return sent


# ============================================================================ memory


def test_request_body_credit_is_returned_only_as_the_invocation_consumes_it(target: Target) -> None:
    # The handler naps in a run block for 3 s and reads nothing meanwhile: the peer may have at
    # most one stream window (4 MiB) in flight; 12 MiB sent regardless is a stream error.
    with target.attack("credit on one stream", max_rss_growth=24 * MiB):
        client = RawH2(target.address)
        client.send(
            frame(HEADERS, END_HEADERS, 1, client.block("/invoke/Sleeper/nap", "POST", **INVOKE_HEADERS))
        )
        client.send(frame(DATA, 0, 1, invocation_body(b"3")))
        chunk = frame(DATA, 0, 1, b"\0" * 16000)
        client.send(chunk * 768)  # 12 MB, far beyond the stream window
        codes = _rst_codes(client, 5)
        assert codes.get(1) == FLOW_CONTROL_ERROR, codes
        client.close()


def test_credit_across_streams_is_bounded_by_the_connection_window(target: Target) -> None:
    # Twelve napping streams, 3.5 MiB each (inside every stream window): the connection window
    # (16 MiB) ends it with FLOW_CONTROL_ERROR instead of 42 MiB held.
    with target.attack("credit across streams", max_rss_growth=48 * MiB):
        client = RawH2(target.address)
        chunk_count = 3_500_000 // 16000
        for i in range(12):
            stream_id = 2 * i + 1
            block = client.block("/invoke/Sleeper/nap", "POST", **INVOKE_HEADERS)
            client.send(
                frame(HEADERS, END_HEADERS, stream_id, block),
                frame(DATA, 0, stream_id, invocation_body(b"3")),
            )
            if not client.send(frame(DATA, 0, stream_id, b"\0" * 16000) * chunk_count):
                break
        assert client.goaway_code(10) == FLOW_CONTROL_ERROR
        client.close()


def test_output_queue_is_bounded_when_the_peer_never_reads(target: Target) -> None:
    # 1,200,000 PINGs (20 MB) never read: the answers would be 20 MB of queued frames; the server
    # stops reading once 1 MiB is queued, so the attacker's own sends stall.
    with target.attack("never-reading peer", max_rss_growth=16 * MiB):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(target.address)
        client = RawH2.__new__(RawH2)
        client.sock, client.buffer, client.closed, client.encoder = sock, b"", False, hpack.Encoder()
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        flood = frame(PING, 0, 0, b"12345678") * 1_200_000
        sent = _send_for(client, flood, seconds=4)
        assert sent < len(flood), "the server kept reading a peer that never reads"
        client.close()


def test_huffman_cache_stays_small_with_huge_distinct_literals(target: Target) -> None:
    # 260 requests, each with a distinct 60 KB Huffman-coded header value sent without indexing:
    # a cache keeping 256 entries of any size would hold 15 MB for this connection alone.
    with target.attack("Huffman cache", max_rss_growth=12 * MiB):
        client = RawH2(target.address)
        base = client.block("/health")
        for i in range(260):
            value = huffman_encode(f"{i:06d}".encode() + b"a" * 60000)
            block = base + b"\x00\x05x-big" + _hpack_length(len(value), huffman=True) + value
            pieces = [block[k : k + 16000] for k in range(0, len(block), 16000)]
            frames = [frame(HEADERS, END_STREAM, 2 * i + 1, pieces[0])]
            frames += [frame(CONTINUATION, 0, 2 * i + 1, p) for p in pieces[1:-1]]
            frames.append(frame(CONTINUATION, END_HEADERS, 2 * i + 1, pieces[-1]))
            client.send(*frames)
            got = client.until(HEADERS, 5)  # answered, one at a time
            assert got is not None and got[2] == 2 * i + 1, got
        client.close()


def _hpack_length(length: int, huffman: bool) -> bytes:
    first = 0x80 if huffman else 0
    if length < 127:
        return bytes([first | length])
    out = bytearray([first | 127])
    length -= 127
    while length >= 128:
        out.append((length & 0x7F) | 0x80)
        length >>= 7
    out.append(length)
    return bytes(out)


# ============================================================================ CPU


def _open_streams(client: RawH2, count: int) -> None:
    """``count`` streams left open by the client (answered by the server, request half open)."""
    for i in range(count):
        client.send(frame(HEADERS, END_HEADERS, 2 * i + 1, client.block("/health")))


def test_settings_initial_window_entries_cost_one_walk_per_frame(target: Target) -> None:
    # 100 open streams × 20 SETTINGS frames of 2,730 INITIAL_WINDOW_SIZE entries: one walk per
    # frame is 2,000 window adjustments, one per entry would be 5.5 million.
    with target.attack("SETTINGS window walk", max_rss_growth=8 * MiB):
        client = RawH2(target.address)
        _open_streams(client, 100)
        cpu = target.cpu_seconds()
        for k in range(20):
            payload = b"".join(setting(0x4, 65535 + (i + k) % 2) for i in range(2730))
            client.send(frame(SETTINGS, 0, 0, payload))
        acks = 0
        deadline = time.monotonic() + 10
        while acks < 21 and time.monotonic() < deadline:
            got = client.read_frame(deadline - time.monotonic())
            assert got is not None
            acks += got[0] == SETTINGS and got[1] == 1
        used = target.cpu_seconds() - cpu
        assert used < 0.5, f"{used:.2f}s of CPU for 20 SETTINGS frames"
        client.close()


def test_rapid_reset_gets_goaway_enhance_your_calm(target: Target) -> None:
    # CVE-2023-44487: HEADERS then RST_STREAM, 1,000 times; past 100 premature resets the
    # connection is told to calm down.
    with target.attack("rapid reset", max_rss_growth=12 * MiB):
        client = RawH2(target.address)
        frames = []
        for i in range(1000):
            frames.append(frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1, client.block("/health")))
            frames.append(frame(RST_STREAM, 0, 2 * i + 1, struct.pack(">L", 8)))
        client.send(*frames)
        assert client.goaway_code(5) == ENHANCE_YOUR_CALM
        client.close()


def test_continuation_flood_is_cut_off(target: Target) -> None:
    with target.attack("CONTINUATION flood", max_rss_growth=8 * MiB):
        client = RawH2(target.address)
        client.send(frame(HEADERS, 0, 1, client.block("/health")))
        client.send(frame(CONTINUATION, 0, 1) * 100_000)  # empty, never END_HEADERS
        assert client.goaway_code(5) == ENHANCE_YOUR_CALM
        client.close()


def test_static_table_references_count_toward_the_header_list(target: Target) -> None:
    # 48,000 one-octet references to ":method: GET" would be a 2 MB header list
    with target.attack("static-indexed header fields", max_rss_growth=8 * MiB):
        client = RawH2(target.address)
        block = client.block("/health") + b"\x82" * 48000
        pieces = [block[k : k + 16000] for k in range(0, len(block), 16000)]
        frames = [frame(HEADERS, END_STREAM, 1, pieces[0])]
        frames += [frame(CONTINUATION, 0, 1, p) for p in pieces[1:-1]]
        frames.append(frame(CONTINUATION, END_HEADERS, 1, pieces[-1]))
        client.send(*frames)
        assert client.goaway_code(5) == ENHANCE_YOUR_CALM
        client.close()


# ============================================================================ time


@pytest.fixture(scope="module")
def impatient() -> Any:
    """A server with short timeouts (1-2 s) and a cap of 20 connections."""
    limits = {"preface_timeout": 1.0, "head_timeout": 1.0, "idle_timeout": 2.0, "max_connections": 20}
    with Target(limits=limits) as served:
        yield served


def test_preface_timeout(impatient: Target) -> None:
    with impatient.attack("silent and preface-only connections"):
        silent = socket.create_connection(impatient.address, timeout=5)
        preface_only = RawH2(impatient.address, settings=None)
        preface_only.send(PREFACE)
        started = time.monotonic()
        assert silent.recv(100) == b""  # closed without a word
        assert preface_only.goaway_code(5) == ENHANCE_YOUR_CALM
        assert preface_only.wait_closed(5)
        assert time.monotonic() - started < 4
        silent.close()
        preface_only.close()


def test_head_timeout(impatient: Target) -> None:
    with impatient.attack("header block never finished"):
        client = RawH2(impatient.address)
        client.send(frame(HEADERS, 0, 1, client.block("/health")))  # no END_HEADERS, then silence
        started = time.monotonic()
        assert client.goaway_code(5) == ENHANCE_YOUR_CALM
        assert time.monotonic() - started < 4
        client.close()


def test_idle_timeout_spares_connections_with_open_streams(impatient: Target) -> None:
    with impatient.attack("idle connections"):
        idle = RawH2(impatient.address)
        busy = RawH2(impatient.address)
        # a 4 s nap: twice the idle timeout, with no frame from the peer meanwhile
        busy.send(
            frame(HEADERS, END_HEADERS, 1, busy.block("/invoke/Sleeper/nap", "POST", **INVOKE_HEADERS)),
            frame(DATA, END_STREAM, 1, invocation_body(b"4")),
        )
        started = time.monotonic()
        assert idle.goaway_code(5) == NO_ERROR
        assert idle.wait_closed(3)
        assert time.monotonic() - started < 4.5
        ended = None
        deadline = time.monotonic() + 10
        while ended is None and time.monotonic() < deadline:
            got = busy.read_frame(deadline - time.monotonic())
            assert got is not None and got[0] != GOAWAY, got
            if got[2] == 1 and got[1] & END_STREAM:
                ended = time.monotonic() - started
        assert ended is not None and ended > 3.5  # the nap was served to the end
        idle.close()
        busy.close()


def test_connection_cap_stops_accepting() -> None:
    with Target(limits={"max_connections": 20}) as capped, capped.attack("connection cap"):
        clients = [RawH2(capped.address) for _ in range(30)]  # connected: the kernel's backlog
        deadline = time.monotonic() + 1.0
        served = [c for c in clients if c.until(SETTINGS, max(0.05, deadline - time.monotonic())) is not None]
        assert len(served) == 20
        waiting = [c for c in clients if c not in served]
        for c in served:
            c.close()
        assert all(c.until(SETTINGS, 3) is not None for c in waiting)  # accepted once room was made
        for c in waiting:
            c.close()


# ============================================================================ logs


def test_goaway_flood_is_not_logged_at_info(target: Target) -> None:
    with target.attack("GOAWAY flood", max_log_bytes=4096):
        for _ in range(300):
            client = RawH2(target.address)
            client.send(frame(GOAWAY, 0, 0, struct.pack(">LL", 0, 0) + b"x" * 1000))
            client.close()


def test_protocol_error_flood_is_rate_limited(target: Target) -> None:
    with target.attack("protocol error flood", max_log_bytes=16 * 1024):
        for i in range(300):
            client = RawH2(target.address)
            client.send(frame(PING, 0, 0, b"x" * (1 + i % 7)) + b"garbage" * 100)
            client.goaway_code(2)
            client.close()


# ============================================================================ what held before


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        (
            "oversized frame",
            lambda c: struct.pack(">HBBBL", 65536 >> 8, 0, DATA, 0, 1) + b"\0" * 65536,
            FRAME_SIZE_ERROR,
        ),
        (
            "connection window overflow",
            lambda c: frame(WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 1)),
            FLOW_CONTROL_ERROR,
        ),
        (
            "HPACK index out of range",
            lambda c: frame(HEADERS, END_HEADERS, 1, b"\xff\x80\x80\x80\x01"),
            COMPRESSION_ERROR,
        ),
        (
            "HPACK table size update beyond the limit",
            lambda c: frame(HEADERS, END_HEADERS, 1, b"\x3f\xe2\x1f" + c.block("/health")),
            COMPRESSION_ERROR,
        ),
        (
            "Huffman string with EOS",
            lambda c: frame(HEADERS, END_HEADERS, 1, b"\x04\x84\xff\xff\xff\xff"),
            COMPRESSION_ERROR,
        ),
        ("Huffman bad padding", lambda c: frame(HEADERS, END_HEADERS, 1, b"\x04\x81\x00"), COMPRESSION_ERROR),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_frame_and_hpack_errors_end_the_connection(target: Target, name: str, make: Any, code: int) -> None:
    with target.attack(name):
        client = RawH2(target.address)
        client.send(make(client))
        assert client.goaway_code(5) == code
        client.close()


def test_hpack_bomb_one_big_entry_referenced_many_times(target: Target) -> None:
    # a 4 KB dynamic table entry, then 10,000 one-octet references to it: a 40 MB header list
    with target.attack("HPACK bomb", max_rss_growth=8 * MiB):
        client = RawH2(target.address)
        encoder = hpack.Encoder()
        first = encoder.encode(
            [(":method", "GET"), (":path", "/health"), (":scheme", "http"), ("x-bomb", "b" * 4000)]
        )
        client.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, first))
        block = b"\x82\x84\x86" + b"\xbe" * 10000  # 62 = the newest dynamic entry
        pieces = [block[k : k + 16000] for k in range(0, len(block), 16000)]
        client.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, pieces[0]))
        assert client.goaway_code(5) == ENHANCE_YOUR_CALM
        client.close()


def test_ping_and_settings_floods_from_a_reading_peer(target: Target) -> None:
    with target.attack("PING and SETTINGS floods", max_rss_growth=12 * MiB):
        client = RawH2(target.address)
        flood = (frame(PING, 0, 0, b"12345678") + frame(SETTINGS, 0, 0, setting(0x1, 4096))) * 20_000
        client.send(flood[: len(flood) // 2])
        acks = 0
        deadline = time.monotonic() + 20
        client.send(flood[len(flood) // 2 :])
        while acks < 40_000 and time.monotonic() < deadline:
            got = client.read_frame(deadline - time.monotonic())
            assert got is not None
            acks += got[1] == 1 and got[0] in (PING, SETTINGS)
        assert acks >= 40_000
        client.close()
