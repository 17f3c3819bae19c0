"""Framing: header layout, and an incremental decoder fed every possible split."""

import pytest

from restate_sync.protocol import framing
from restate_sync.protocol.framing import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_MESSAGE_SIZE_ENV,
    FrameDecoder,
    FramingError,
    configured_max_message_size,
    encode_frame,
)

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


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_whole_frames_after_a_split_one(cut):
    # with nothing buffered the decoder cuts frames from the chunk itself, else from its buffer
    decoder = FrameDecoder()
    got = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) + decoder.feed(STREAM)
    assert got == FRAMES * 2
    assert all(type(payload) is bytes for _, _, payload in got)
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


def test_the_limit_is_checked_on_the_header_before_any_payload_arrives():
    decoder = FrameDecoder(max_message_size=1024)
    assert decoder.feed(encode_frame(0x0400, b"x" * 1024)) == [(0x0400, 0, b"x" * 1024)]
    header_only = encode_frame(0x0400, b"x" * 1025)[:8]
    with pytest.raises(FramingError) as raised:
        decoder.feed(header_only)
    assert (
        raised.value.code == 571
        and "1025" in str(raised.value)
        and "RESTATE_SYNC_MAX_MESSAGE_SIZE" in str(raised.value)
    )


def test_the_limit_is_checked_on_a_header_split_across_chunks():
    decoder = FrameDecoder(max_message_size=1024)
    header_only = encode_frame(0x0400, b"x" * 1025)[:8]
    assert decoder.feed(header_only[:3]) == []
    with pytest.raises(FramingError, match="1025"):
        decoder.feed(header_only[3:])


def test_the_default_limit_follows_restate_servers_message_size_limit():
    assert DEFAULT_MAX_MESSAGE_SIZE == 33 * 1024 * 1024  # 32 MiB networking limit + 1 MiB envelope room
    decoder = FrameDecoder()
    with pytest.raises(FramingError):
        decoder.feed(encode_frame(0x0400, b"")[:4] + (DEFAULT_MAX_MESSAGE_SIZE + 1).to_bytes(4, "big"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", DEFAULT_MAX_MESSAGE_SIZE), ("1048576", 1048576), (" 64 ", 64)],
)
def test_the_limit_is_configurable_through_the_environment(monkeypatch, value, expected):
    monkeypatch.setattr(framing, "_configured", None)
    monkeypatch.setenv(MAX_MESSAGE_SIZE_ENV, value)
    assert configured_max_message_size() == expected
    monkeypatch.setattr(framing, "_configured", None)


@pytest.mark.parametrize("value", ["0", "-1", "1e6", "²", "99999999999", "4294967296"])
def test_a_bad_limit_in_the_environment_is_a_clear_error(monkeypatch, value):
    monkeypatch.setattr(framing, "_configured", None)
    monkeypatch.setenv(MAX_MESSAGE_SIZE_ENV, value)
    with pytest.raises(ValueError, match=MAX_MESSAGE_SIZE_ENV):
        configured_max_message_size()
    monkeypatch.setattr(framing, "_configured", None)


def test_reset_drops_the_partial_frame():
    decoder = FrameDecoder()
    decoder.feed(STREAM[:20])
    decoder.reset()
    assert decoder.pending == 0
    assert decoder.feed(STREAM) == FRAMES
