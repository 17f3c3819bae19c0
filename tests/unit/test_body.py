"""Reading a request body incrementally under a size limit (transport/body.py), and the limits."""

from __future__ import annotations

import io

import pytest

from restate_sync.exchange import EOF, Inbox
from restate_sync.transport.body import BodyFeed, BodyTooLarge, declared_length, pump, too_large
from restate_sync.transport.http1limits import Http1Limits


def drain(inbox: Inbox) -> list[object]:
    items = []
    while (item := inbox.get_nowait()) is not None:
        items.append(item)
    return items


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("0", 0), (" 42 ", 42), ("9223372036854775807", 9223372036854775807)],
)
def test_declared_length(value, expected):
    assert declared_length(value) == expected


@pytest.mark.parametrize("value", ["", "-1", "1.5", "0x10", "²", "1" * 20, "12 34"])
def test_declared_length_refuses_anything_but_ascii_digits(value):
    with pytest.raises(ValueError, match="malformed content-length"):
        declared_length(value)


def test_feed_queues_chunks_then_eof():
    inbox = Inbox()
    feed = BodyFeed(inbox, limit=10)
    feed.feed(b"abc")
    feed.feed(b"")
    feed.feed(b"defghij")
    feed.end()
    feed.end()
    assert drain(inbox) == [b"abc", b"defghij", EOF]
    assert feed.received == 10 and feed.room() == 0


def test_feed_refuses_the_chunk_that_crosses_the_limit_without_queueing_it():
    inbox = Inbox()
    feed = BodyFeed(inbox, limit=10)
    feed.feed(b"12345678")
    with pytest.raises(BodyTooLarge) as info:
        feed.feed(b"abc")
    assert (info.value.limit, info.value.received) == (10, 11)
    assert drain(inbox) == [b"12345678"]


def test_pump_reads_a_declared_length_and_no_more():
    source = io.BytesIO(b"hello world and what follows")
    inbox = Inbox()
    assert pump(source.read, BodyFeed(inbox, limit=100), length=11)
    assert b"".join(i for i in drain(inbox) if isinstance(i, bytes)) == b"hello world"
    assert source.read() == b" and what follows"


def test_pump_reads_until_the_end_without_a_length():
    inbox = Inbox()
    assert pump(io.BytesIO(b"x" * 200_000).read, BodyFeed(inbox, limit=300_000), length=None)
    items = drain(inbox)
    assert items[-1] is EOF
    assert sum(len(i) for i in items[:-1]) == 200_000


def test_pump_asks_for_one_byte_past_the_limit_at_most():
    asked: list[int] = []

    def read(size: int) -> bytes:
        asked.append(size)
        return b"x" * size

    with pytest.raises(BodyTooLarge):
        pump(read, BodyFeed(Inbox(), limit=100_000), length=None)
    assert sum(asked) == 100_001


def test_pump_says_when_the_body_ended_early():
    inbox = Inbox()
    assert not pump(io.BytesIO(b"short").read, BodyFeed(inbox, limit=100), length=50)
    assert drain(inbox) == [b"short"]  # no EOF: the request is incomplete


def test_too_large_is_a_413_naming_the_limit():
    status, headers, body = too_large(1234)
    assert status == 413
    assert ("content-type", "text/plain; charset=utf-8") in headers
    assert b"1234 bytes" in body and b"max_body_size" in body


@pytest.mark.parametrize(
    "bad", [{"max_body_size": 0}, {"max_head_size": -1}, {"head_timeout": 0}, {"idle_timeout": True}]
)
def test_http1_limits_refuse_nonsense(bad):
    with pytest.raises(ValueError, match="Http1Limits"):
        Http1Limits(**bad)
