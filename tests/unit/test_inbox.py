"""The exchange's inbox: what its consumer is told about the request body it took."""

from __future__ import annotations

import gevent

from restate_sync.exchange import EOF, Inbox


def test_the_consumer_is_told_in_batches_of_tell_at_octets() -> None:
    told: list[int] = []
    inbox = Inbox(told.append, tell_at=10)
    for chunk in (b"abcd", b"efgh", b"ijkl", b"m"):
        inbox.put(chunk)
    assert inbox.get() == b"abcd" and told == []
    assert inbox.get_nowait() == b"efgh" and told == []
    assert inbox.get() == b"ijkl" and told == [12], "12 octets taken reach tell_at=10"
    assert inbox.get_nowait() == b"m" and told == [12]
    assert inbox.get_nowait() is None


def test_tell_at_one_tells_every_chunk() -> None:
    told: list[int] = []
    inbox = Inbox(told.append)
    inbox.put(b"ab")
    inbox.put(EOF)
    inbox.put(b"cde")
    assert [inbox.get(), inbox.get(), inbox.get()] == [b"ab", EOF, b"cde"]
    assert told == [2, 3], "signals are not body octets"


def test_discard_counts_the_untold_and_the_unread() -> None:
    told: list[int] = []
    inbox = Inbox(told.append, tell_at=100)
    inbox.put(b"x" * 30)
    inbox.put(b"y" * 5)
    inbox.put(EOF)
    assert inbox.get() == b"x" * 30
    assert inbox.discard() == 35, "30 taken but not told + 5 never read"
    assert told == [] and inbox.discard() == 0 and inbox.get_nowait() is None


def test_a_waiting_consumer_wakes_for_a_put_from_another_greenlet() -> None:
    told: list[int] = []
    inbox = Inbox(told.append, tell_at=4)
    consumer = gevent.spawn(inbox.get)
    gevent.idle()  # let the consumer run until it parks (deterministic: one hub loop pass)
    assert not consumer.ready() and inbox._waiter is not None, "the consumer waits in get()"
    gevent.spawn(inbox.put, b"data").join(timeout=5)
    assert consumer.get(timeout=5) == b"data" and told == [4]


def test_get_times_out_with_none() -> None:
    assert Inbox().get(timeout=0.01) is None
