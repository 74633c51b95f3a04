"""A bounded stream of events from one worker thread to one consumer.

An execution is run by a worker thread of its own while a gRPC handler thread
streams its events to the caller. The channel between them:

- is bounded: a worker that gets ahead of a slow caller waits in `put()`
  (back-pressure), so memory does not grow with what the program prints;
- ends: the worker calls `close()` once, optionally with an error that the
  consumer raises after the events queued before it;
- can be abandoned: when the caller goes away the consumer calls `abandon()`;
  what is queued is dropped, a worker waiting in `put()` is released, and
  later events are dropped, so the worker finishes (and cleans up) without
  anyone listening.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class ChannelClosed(Exception):
    """put() after close(): a bug in the producer."""


class EventChannel(Generic[T]):
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._items: collections.deque[T] = collections.deque()
        self._changed = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._abandoned = False

    # ---- producer ------------------------------------------------------

    def put(self, item: T) -> bool:
        """Queues an item, waiting while the channel is full. Returns False
        when the item was dropped because the consumer has gone away."""
        with self._changed:
            if self._closed:
                raise ChannelClosed("put() after close()")
            while len(self._items) >= self._capacity and not self._abandoned:
                self._changed.wait()
            if self._abandoned:
                return False
            self._items.append(item)
            self._changed.notify_all()
            return True

    def close(self, error: BaseException | None = None) -> None:
        """Ends the stream after what is queued; the consumer then raises
        `error` if one is given. Only the first call counts."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._error = error
            self._changed.notify_all()

    # ---- consumer ------------------------------------------------------

    def abandon(self) -> None:
        """The consumer has gone away: drop everything, now and later."""
        with self._changed:
            self._abandoned = True
            self._items.clear()
            self._changed.notify_all()

    def __iter__(self) -> Iterator[T]:
        """Yields the items in order until the stream ends or is abandoned;
        raises the error the stream was closed with, after its items."""
        while True:
            with self._changed:
                while not self._items and not self._closed and not self._abandoned:
                    self._changed.wait()
                if self._abandoned:
                    return
                if not self._items:
                    if self._error is not None:
                        raise self._error
                    return
                item = self._items.popleft()
                self._changed.notify_all()
            yield item

    # ---- state ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed

    @property
    def abandoned(self) -> bool:
        with self._changed:
            return self._abandoned
