"""Differential fuzzing of our HTTP/2 connection against ``h2`` (the oracle), without sockets.

A client's byte stream — the preface, then frames drawn from a grammar (every frame type, random
flags, padding, priority fields, header blocks encoded by ``hpack`` and split into CONTINUATION
frames, wrong lengths, wrong streams) and then possibly mutated byte by byte — is fed to our
:class:`H2Connection` and to an ``h2`` server connection. Both must agree on whether it is a
connection error and, when it is not, on the requests (headers), the request bodies and which
requests ended. ``h2`` runs with header validation off, so both judge framing and HPACK only.

Deliberate differences, excluded from the comparison (each is a stream error for one side and a
connection error or nothing for the other, or a limit only one side has):

* a request without ``:method`` or ``:path`` is reset by us (malformed, RFC 9113 §8.1.1): such
  streams are left out of ``h2``'s results;
* a preface not followed by SETTINGS is a connection error for us (RFC 9113 §3.4), not for ``h2``;
* HEADERS on a closed stream id below the last one: a connection error for us, a stream error
  (STREAM_CLOSED) for ``h2``;
* trailers without END_STREAM: a stream error for us, a connection error for ``h2``;
* PRIORITY of a wrong length, and a stream depending on itself (PRIORITY or HEADERS): a stream
  error for us (RFC 9113 §6.3, §5.3.1), a connection error for ``h2``;
* WINDOW_UPDATE with increment 0 on a stream: a stream error for us (RFC 9113 §6.9), also when
  the stream is closed (``h2``: a connection error);
* a setting repeated in one SETTINGS frame: we check every entry in order (an invalid first one
  is an error), ``h2`` keeps only the last;
* RST_STREAM, WINDOW_UPDATE or DATA on an idle stream: a connection error for us (RFC 9113
  §5.1), which ``h2`` lets pass in some states;
* frames after a GOAWAY from the client: ``h2`` treats them as an error, we go on serving (a
  GOAWAY from a client limits the streams *we* may start, which a server never does);
* over-long HPACK integers, rejected only by us (see ``test_hpack_fuzz``).

Input is cut after its last complete frame: a partial frame is judged at different moments
(``h2`` rejects some frame headers at once, we wait for the payload; ``h2`` waits for an
oversized frame to be complete, we reject it from its header).

Sequences that hit one of these are recognised from the frames themselves and not compared.
"""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from restate_sync.transport.h2connection import DataReceived, H2Connection, RequestReceived, StreamEnded
from restate_sync.transport.h2state import H2ProtocolError
from restate_sync.transport.hpack_codec import _text

from .runner import FUZZ_SECONDS, run_fuzz

pytestmark = pytest.mark.timeout(FUZZ_SECONDS + 300)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)


def _frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    size = len(payload)
    return struct.pack(">HBBBL", size >> 8, size & 0xFF, frame_type, flags, stream_id) + payload


_request_headers = st.lists(
    st.tuples(
        st.sampled_from(["x-a", "content-type", "traceparent", "X-Big", "cookie"]),
        st.text(max_size=30),
    ),
    max_size=4,
)


@st.composite
def _stream(draw: Any) -> tuple[bytes, set[str]]:
    """A client byte stream and the deliberate-difference tags it contains."""
    encoder = hpack.Encoder()
    tags: set[str] = set()
    out = [PREFACE]
    if draw(st.integers(0, 20)):
        entries = draw(
            st.lists(st.tuples(st.sampled_from([1, 2, 3, 4, 5, 6, 0x99]), st.integers(0, 70000)), max_size=3)
        )
        out.append(_frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", i, v) for i, v in entries)))
    next_id = 1
    open_ids: list[int] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 11))
        if kind <= 3:  # a request header block
            reuse = open_ids and draw(st.integers(0, 5)) == 0
            stream_id = draw(st.sampled_from(open_ids)) if reuse else next_id
            if not reuse:
                next_id += 2
                open_ids.append(stream_id)
            fields = [(":method", "POST"), (":path", "/p"), (":scheme", "http")]
            if draw(st.integers(0, 10)) == 0:
                fields = fields[1:]
            headers = fields + draw(_request_headers)
            block = encoder.encode(headers, huffman=draw(st.booleans()))
            flags = draw(st.sampled_from([0x1, 0x0, 0x1, 0x0, 0x8, 0x20, 0x29]))
            pieces = draw(st.integers(1, 3))
            cut = [block[i * len(block) // pieces : (i + 1) * len(block) // pieces] for i in range(pieces)]
            payload = cut[0]
            if flags & 0x20:
                payload = struct.pack(">LB", draw(st.integers(0, 7)), 16) + payload
            if flags & 0x8:
                pad = draw(st.integers(0, 10))
                payload = bytes([pad]) + payload + b"\0" * pad
            out.append(_frame(HEADERS, flags | (0x4 if pieces == 1 else 0), stream_id, payload))
            for i, piece in enumerate(cut[1:], 1):
                out.append(_frame(CONTINUATION, 0x4 if i == pieces - 1 else 0, stream_id, piece))
        elif kind <= 6:
            stream_id = draw(st.sampled_from([*open_ids, next_id, 0])) if open_ids else next_id
            flags = draw(st.sampled_from([0, 1, 8, 9]))
            payload = draw(st.binary(max_size=40))
            if flags & 8:
                pad = draw(st.integers(0, 12))
                payload = bytes([pad]) + payload + b"\0" * min(pad, draw(st.integers(0, 12)))
            out.append(_frame(DATA, flags, stream_id, payload))
        elif kind == 7:
            stream_id = draw(st.sampled_from([*open_ids, next_id, 0]))
            out.append(_frame(RST_STREAM, 0, stream_id, draw(st.binary(min_size=3, max_size=5))))
        elif kind == 8:
            stream_id = draw(st.sampled_from([*open_ids, next_id, 0]))
            out.append(_frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">L", draw(st.integers(0, 70000)))))
        elif kind == 9:
            out.append(
                _frame(
                    PING,
                    draw(st.sampled_from([0, 1])),
                    draw(st.sampled_from([0, 0, 1])),
                    draw(st.binary(min_size=7, max_size=9)),
                )
            )
        elif kind == 10:
            stream_id = draw(st.sampled_from([*open_ids, next_id, 0]))
            out.append(_frame(PRIORITY, 0, stream_id, draw(st.binary(min_size=4, max_size=6))))
        else:
            out.append(
                _frame(draw(st.sampled_from([GOAWAY, 0x0F, SETTINGS])), 0, 0, draw(st.binary(max_size=12)))
            )
    data = b"".join(out)
    if draw(st.integers(0, 3)) == 0:  # byte-level mutations after the preface
        mutable = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            if len(mutable) > len(PREFACE):
                i = draw(st.integers(len(PREFACE), len(mutable) - 1))
                mutable[i] = draw(st.integers(0, 255))
        data = bytes(mutable)
    return data, tags


def _normal(headers: list[tuple[Any, Any]]) -> list[tuple[str, str]]:
    out = []
    for name, value in headers:
        name = name if isinstance(name, bytes) else name.encode("utf-8")
        value = value if isinstance(value, bytes) else value.encode("utf-8")
        out.append((name.decode("latin-1").lower(), _text(value)))
    return out


def _ours(data: bytes) -> tuple[bool, dict[int, Any], dict[int, bytes], set[int]]:
    connection = H2Connection()
    connection.initiate()
    requests: dict[int, Any] = {}
    bodies: dict[int, bytes] = {}
    ended: set[int] = set()
    try:
        events = connection.receive(data)
    except H2ProtocolError:
        return True, {}, {}, set()
    for event in events:
        if isinstance(event, RequestReceived):
            requests[event.stream.stream_id] = sorted(event.headers.items())
            if event.end_stream:
                ended.add(event.stream.stream_id)
        elif isinstance(event, DataReceived):
            bodies[event.stream.stream_id] = bodies.get(event.stream.stream_id, b"") + event.data
            if event.end_stream:
                ended.add(event.stream.stream_id)
        elif isinstance(event, StreamEnded):
            ended.add(event.stream.stream_id)
    return False, requests, bodies, ended


def _oracle(data: bytes) -> tuple[bool, dict[int, Any], dict[int, bytes], set[int]]:
    config = h2.config.H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    connection = h2.connection.H2Connection(config)
    connection.initiate_connection()
    requests: dict[int, Any] = {}
    bodies: dict[int, bytes] = {}
    ended: set[int] = set()
    try:
        events = connection.receive_data(data)
    except h2.exceptions.H2Error:
        return True, {}, {}, set()
    pending = bytes(connection.incoming_buffer._data)
    if len(pending) >= 9 and int.from_bytes(pending[:3], "big") > 16384:
        return True, {}, {}, set()  # h2 rejects an oversized frame once it is complete; we at its header
    for event in events:
        if isinstance(event, h2.events.RequestReceived):
            requests[event.stream_id] = sorted(dict(_normal(event.headers)).items())
        elif isinstance(event, h2.events.DataReceived) and event.data:
            bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
        elif isinstance(event, h2.events.StreamEnded):
            ended.add(event.stream_id)
    return False, requests, bodies, ended


def _settings_first(data: bytes) -> bool:
    frame = data[len(PREFACE) : len(PREFACE) + 9]
    return len(frame) < 9 or (frame[3] == SETTINGS and not frame[4] & 0x1)


def _drop_malformed(result: tuple[bool, dict[int, Any], dict[int, bytes], set[int]]) -> None:
    """Forget the requests we reset as malformed (no :method or :path), with their bodies."""
    for stream_id, headers in list(result[1].items()):
        names = {name for name, _ in headers}
        if ":method" not in names or ":path" not in names:
            del result[1][stream_id]
            result[2].pop(stream_id, None)
            result[3].discard(stream_id)


_OURS_STRICTER = {
    "HEADERS on a closed stream",
    "a setting repeated in one frame",
    "a frame on an idle stream",
}
_H2_STRICTER = {
    "zero window increment on a stream",
    "PRIORITY of a wrong length",
    "a stream depending on itself",
    "trailers without END_STREAM",
    "frames after the client's GOAWAY",
}


def _divergent(data: bytes) -> set[str]:
    """The deliberate differences (module docstring) that the frames in ``data`` run into."""
    tags: set[str] = set()
    pos = len(PREFACE)
    last = 0
    blocks: dict[int, int] = {}  # stream id -> header blocks seen
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos : pos + 3], "big")
        frame_type, flags = data[pos + 3], data[pos + 4]
        stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
        payload = data[pos + 9 : pos + 9 + length]
        pos += 9 + length
        if frame_type in (RST_STREAM, WINDOW_UPDATE, DATA) and stream_id > last:
            tags.add("a frame on an idle stream")
        if frame_type == WINDOW_UPDATE and stream_id and len(payload) == 4:
            if not int.from_bytes(payload, "big") & 0x7FFFFFFF:
                tags.add("zero window increment on a stream")
        elif frame_type == SETTINGS and not flags & 0x1 and length % 6 == 0:
            ids = [payload[i : i + 2] for i in range(0, len(payload), 6)]
            if len(set(ids)) < len(ids):
                tags.add("a setting repeated in one frame")
        elif frame_type == GOAWAY and pos < len(data):
            tags.add("frames after the client's GOAWAY")
        elif frame_type == PRIORITY and stream_id and length != 5:
            tags.add("PRIORITY of a wrong length")
        elif (
            frame_type == PRIORITY
            and stream_id
            and int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == stream_id
        ):
            tags.add("a stream depending on itself")
        elif frame_type == HEADERS and stream_id:
            if flags & 0x20:
                start = 1 if flags & 0x8 else 0
                if int.from_bytes(payload[start : start + 4], "big") & 0x7FFFFFFF == stream_id:
                    tags.add("a stream depending on itself")
            if stream_id < last and stream_id not in blocks:
                tags.add("HEADERS on a closed stream")
            blocks[stream_id] = blocks.get(stream_id, 0) + 1
            if blocks[stream_id] > 1 and not flags & 0x1:
                tags.add("trailers without END_STREAM")
            last = max(last, stream_id)
    return tags


def _complete(data: bytes) -> bytes:
    """``data`` cut after its last complete frame (how each side treats a partial frame differs)."""
    pos = len(PREFACE)
    while pos + 9 <= len(data):
        end = pos + 9 + int.from_bytes(data[pos : pos + 3], "big")
        if end > len(data):
            break
        pos = end
    return data[:pos]


def _agree(case: tuple[bytes, set[str]]) -> None:
    data = _complete(case[0])
    mine, theirs = _ours(data), _oracle(data)
    if mine[0] and not theirs[0] and not _settings_first(data):
        return  # RFC 9113 §3.4: the preface must be followed by SETTINGS; h2 does not insist
    if mine[0] != theirs[0]:
        stricter = _OURS_STRICTER if mine[0] else _H2_STRICTER
        if _divergent(data) & stricter:
            return  # a stream error (or nothing) for one, a connection error for the other
    assert mine[0] == theirs[0], f"connection error: ours {mine[0]}, h2 {theirs[0]}\n{data!r}"
    if mine[0]:
        return
    _drop_malformed(theirs)
    assert mine[1] == theirs[1], f"requests differ\nours {mine[1]}\nh2   {theirs[1]}\n{data!r}"
    assert mine[2] == theirs[2], f"bodies differ\nours {mine[2]}\nh2   {theirs[2]}\n{data!r}"
    assert mine[3] == theirs[3], f"ended differ\nours {mine[3]}\nh2   {theirs[3]}\n{data!r}"


def test_frames_agree_with_h2() -> None:
    run_fuzz(given(_stream())(_agree))
