"""The event channel between an execution's worker and the caller's stream."""

from __future__ import annotations

import threading
import time

import pytest

from services.common.channel import ChannelClosed, EventChannel

WAIT_SECONDS = 5.0
SETTLE_SECONDS = 0.1  # long enough for a thread that is not blocked to get on


def _in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_items_arrive_in_order_then_the_stream_ends():
    channel: EventChannel[int] = EventChannel(capacity=10)
    for item in range(3):
        assert channel.put(item)
    channel.close()
    assert list(channel) == [0, 1, 2]
    assert channel.closed


def test_a_full_channel_holds_the_producer_until_the_consumer_takes():
    channel: EventChannel[int] = EventChannel(capacity=2)
    delivered = []

    def produce() -> None:
        for item in range(5):
            delivered.append(channel.put(item))
        channel.close()

    producer = _in_thread(produce)
    time.sleep(SETTLE_SECONDS)
    assert producer.is_alive() and delivered == [True, True]  # the third put waits
    assert list(channel) == [0, 1, 2, 3, 4]
    producer.join(WAIT_SECONDS)
    assert delivered == [True] * 5


def test_the_consumer_waits_for_items_and_for_the_end():
    channel: EventChannel[str] = EventChannel(capacity=1)
    received = []
    consumer = _in_thread(lambda: received.extend(channel))
    time.sleep(SETTLE_SECONDS)
    assert consumer.is_alive()
    channel.put("a")
    channel.close()
    consumer.join(WAIT_SECONDS)
    assert not consumer.is_alive() and received == ["a"]


def test_the_error_comes_after_the_items_queued_before_it():
    channel: EventChannel[int] = EventChannel(capacity=4)
    channel.put(1)
    channel.close(ValueError("refused"))
    channel.close()  # the first close counts
    received: list[int] = []
    with pytest.raises(ValueError, match="refused"):
        received.extend(channel)
    assert received == [1]


def test_abandon_releases_a_blocked_producer_and_drops_what_follows():
    channel: EventChannel[int] = EventChannel(capacity=1)
    channel.put(0)
    results = []
    producer = _in_thread(lambda: results.append(channel.put(1)))
    time.sleep(SETTLE_SECONDS)
    assert producer.is_alive()
    channel.abandon()
    producer.join(WAIT_SECONDS)
    assert results == [False]
    assert channel.put(2) is False
    assert channel.abandoned
    assert list(channel) == []  # what was queued is gone too
    channel.close()


def test_abandon_ends_a_waiting_consumer():
    channel: EventChannel[int] = EventChannel(capacity=1)
    received = []
    consumer = _in_thread(lambda: received.extend(channel))
    time.sleep(SETTLE_SECONDS)
    channel.abandon()
    consumer.join(WAIT_SECONDS)
    assert not consumer.is_alive() and received == []


def test_put_after_close_is_a_bug():
    channel: EventChannel[int] = EventChannel(capacity=1)
    channel.close()
    with pytest.raises(ChannelClosed):
        channel.put(1)


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        EventChannel(capacity=0)


def test_many_items_through_a_small_channel():
    channel: EventChannel[int] = EventChannel(capacity=3)
    count = 10_000

    def produce() -> None:
        for item in range(count):
            channel.put(item)
        channel.close()

    producer = _in_thread(produce)
    assert list(channel) == list(range(count))
    producer.join(WAIT_SECONDS)
