"""Differential fuzzing of our HPACK decoder against the ``hpack`` library (the oracle).

Random bytes, and header blocks encoded by ``hpack`` (Huffman or not, indexed or not) then
mutated, are decoded by both, block after block on one decoder each (the dynamic table carries
over): both must produce the same header list, or both must reject the block. Names and values
are compared as our decoder presents them (names lower-cased, values UTF-8 or else Latin-1).

The one deliberate difference: an integer encoded with more continuation octets than any value
below 2^28 needs is rejected by us ("integer too large", RFC 7541 §5.1 lets a decoder limit
integers) while ``hpack`` decodes it; such a block counts as agreeing when only we reject it.
"""

from __future__ import annotations

from typing import Any

import hpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from restate_sync.transport.hpack_codec import Decoder, HPACKDecodingError, _text

from .runner import FUZZ_SECONDS, run_fuzz

pytestmark = pytest.mark.timeout(FUZZ_SECONDS + 300)

LIST_LIMIT = 4096

_names = st.sampled_from(
    [
        ":method",
        ":path",
        ":authority",
        "content-type",
        "x-restate-invocation-id",
        "traceparent",
        "cookie",
        "X-Up",
    ]
) | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
_values = st.text(max_size=60) | st.sampled_from(["GET", "POST", "/", "application/json", ""])
_header_lists = st.lists(st.tuples(_names, _values), max_size=8)


@st.composite
def _mutated(draw: Any, block: bytes) -> bytes:
    data = bytearray(block)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "byte"]))
        if kind == "truncate" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif kind == "insert":
            data.insert(draw(st.integers(0, len(data))), draw(st.integers(0, 255)))
        elif data:
            i = draw(st.integers(0, len(data) - 1))
            if kind == "flip":
                data[i] ^= 1 << draw(st.integers(0, 7))
            elif kind == "delete":
                del data[i]
            else:
                data[i] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def _blocks(draw: Any) -> list[bytes]:
    encoder = hpack.Encoder()
    encoder.header_table_size = draw(st.sampled_from([4096, 256, 0]))
    blocks = []
    for _ in range(draw(st.integers(1, 5))):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            blocks.append(draw(st.binary(max_size=80)))
            continue
        headers = draw(_header_lists)
        sensitive = [
            hpack.NeverIndexedHeaderTuple(n, v) if draw(st.booleans()) else (n, v) for n, v in headers
        ]
        block = encoder.encode(sensitive, huffman=draw(st.booleans()))
        blocks.append(draw(_mutated(block)) if choice < 5 else block)
    return blocks


def _ours(decoder: Decoder, block: bytes) -> tuple[str, Any]:
    try:
        return "ok", decoder.decode(block)
    except HPACKDecodingError as exc:
        return "rejected", str(exc)


def _oracle(decoder: hpack.Decoder, block: bytes) -> tuple[str, Any]:
    try:
        headers = decoder.decode(block, raw=True)
    except (hpack.HPACKError, ValueError, IndexError) as exc:
        return "rejected", repr(exc)
    return "ok", [(bytes(n).decode("latin-1").lower(), _text(bytes(v))) for n, v in headers]


def _agree(blocks: list[bytes]) -> None:
    ours = Decoder(max_header_list_size=LIST_LIMIT)
    oracle = hpack.Decoder(max_header_list_size=LIST_LIMIT)
    for block in blocks:
        mine, theirs = _ours(ours, block), _oracle(oracle, block)
        if mine[0] == "rejected" and "integer too large" in mine[1]:
            return  # our deliberate limit (see the module docstring)
        assert mine[0] == theirs[0], f"block {block!r}: ours {mine}, hpack {theirs}"
        if mine[0] == "rejected":
            return  # the decoders' tables may differ from here on: the connection would end
        assert mine[1] == theirs[1], f"block {block!r}: ours {mine[1]}, hpack {theirs[1]}"


def test_hpack_decoder_agrees_with_the_hpack_library() -> None:
    run_fuzz(given(_blocks())(_agree))


def test_hpack_decoder_on_random_bytes() -> None:
    run_fuzz(given(st.lists(st.binary(max_size=120), min_size=1, max_size=4))(_agree))
