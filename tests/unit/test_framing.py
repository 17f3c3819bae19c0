"""Framing: header layout, and an incremental decoder fed every possible split."""

import pytest

from restate_sync.protocol.framing import FrameDecoder, FramingError, encode_frame

FRAMES = [(0x0000, 0, b"\x08\x01" * 7), (0x0403, 0, b""), (0x0005, 0x8000, b"x" * 300), (0x8011, 0, b"\x01")]
STREAM = b"".join(encode_frame(t, p, f) for t, f, p in FRAMES)


def test_header_layout_matches_the_protocol():
    assert encode_frame(0x0003, b"") == bytes.fromhex("0003000000000000")
    assert encode_frame(0x0005, b"0123456789", 0x8000) == bytes.fromhex("000580000000000a") + b"0123456789"


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_decoder_accepts_a_split_at_every_byte(cut):
    decoder = FrameDecoder()
    got = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
    assert got == FRAMES
    assert decoder.pending == 0


def test_decoder_fed_one_byte_at_a_time():
    decoder = FrameDecoder()
    got = []
    for i in range(len(STREAM)):
        got += decoder.feed(STREAM[i : i + 1])
    assert got == FRAMES


def test_incomplete_frame_stays_pending():
    decoder = FrameDecoder()
    assert decoder.feed(STREAM[:5]) == []
    assert decoder.pending == 5


def test_absurd_length_is_a_framing_error():
    with pytest.raises(FramingError, match="declares"):
        FrameDecoder().feed(bytes.fromhex("0400 0000 ffffffff".replace(" ", "")))
