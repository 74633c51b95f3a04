"""Sandboxes started ahead of demand (issue: speed).

For each (runtime, network mode) with a target, the pool keeps that many
sandboxes made, started and (with the runner hand-off) connected, each
waiting for exactly one execution. `take()` hands one over and wakes the
refill thread, which makes the next one off the caller's clock. A warm
sandbox is made exactly as a cold one (services/spawner/provision.py: the
same flags, its own workspace and cgroup parent); it only serves requests
with the default limits, and nothing of any tenant is in it before it is
taken. After its execution it is taken apart like any other; it is never
given back.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable

from services.spawner.provision import PoolKey, Sandbox

log = logging.getLogger(__name__)

# After a failed refill, wait this long (doubling up to the maximum) before
# trying that key again, so a broken engine or image is not hammered.
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0
# The refill thread looks again at least this often.
IDLE_WAKE_SECONDS = 1.0


class WarmPool:
    def __init__(
        self,
        targets: dict[PoolKey, int],
        plan: Callable[[PoolKey], Sandbox],
        build: Callable[[Sandbox], None],
        destroy: Callable[[Sandbox], None],
        alive: Callable[[Sandbox], bool],
        on_refilled: Callable[[PoolKey, float], None] = lambda key, seconds: None,
        on_refill_failed: Callable[[PoolKey, Exception], None] = lambda key, exc: None,
    ):
        self.targets = dict(targets)
        self._plan = plan
        self._build = build
        self._destroy = destroy
        self._alive = alive
        self._on_refilled = on_refilled
        self._on_refill_failed = on_refill_failed
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._ready: dict[PoolKey, collections.deque[Sandbox]] = {key: collections.deque() for key in targets}
        self._making: dict[str, Sandbox] = {}  # token -> sandbox being made (owned, for the reaper)
        self._retry_at: dict[PoolKey, float] = {}
        self._backoff: dict[PoolKey, float] = {}
        self._thread = threading.Thread(target=self._refill_forever, name="warm-pool", daemon=True)

    def start(self) -> None:
        if self.targets:
            self._thread.start()

    def take(self, key: PoolKey) -> Sandbox | None:
        """A warm sandbox for `key`, now the caller's; None when there is none."""
        while True:
            with self._lock:
                ready = self._ready.get(key)
                if self._closed or not ready:
                    return None
                box = ready.popleft()
            self._wake.set()
            if self._alive(box):
                return box
            log.warning("warm sandbox %s (%s) died while waiting; removing it", box.token, key)
            self._destroy(box)

    def ready(self, key: PoolKey) -> int:
        with self._lock:
            return len(self._ready.get(key, ()))

    def tokens(self) -> set[str]:
        """Tokens of every sandbox the pool owns (waiting or being made)."""
        with self._lock:
            return {box.token for boxes in self._ready.values() for box in boxes} | set(self._making)

    def close(self, timeout_seconds: float = 60.0) -> None:
        """Stops refilling and takes every waiting sandbox apart."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_seconds)
        with self._lock:
            waiting = [box for boxes in self._ready.values() for box in boxes]
            for boxes in self._ready.values():
                boxes.clear()
        for box in waiting:
            self._destroy(box)

    # ---- the refill thread ---------------------------------------------

    def _refill_forever(self) -> None:
        while True:
            while (key := self._next_to_make()) is not None:
                self._refill_one(key)
            self._wake.wait(IDLE_WAKE_SECONDS)
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return

    def _next_to_make(self) -> PoolKey | None:
        """The key furthest below its target that is not backing off; None
        when all are full (or the pool is closed)."""
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return None
            short = [
                (len(self._ready[key]) - target, key)
                for key, target in self.targets.items()
                if len(self._ready[key]) < target and self._retry_at.get(key, 0.0) <= now
            ]
        return min(short, key=lambda entry: entry[0])[1] if short else None

    def _refill_one(self, key: PoolKey) -> None:
        started = time.monotonic()
        box: Sandbox | None = self._plan(key)
        assert box is not None
        with self._lock:
            self._making[box.token] = box
        try:
            self._build(box)
        except Exception as exc:
            self._destroy(box)  # whatever part of it was made
            with self._lock:
                self._making.pop(box.token, None)
            backoff = min(self._backoff.get(key, FIRST_BACKOFF_SECONDS / 2) * 2, MAX_BACKOFF_SECONDS)
            self._backoff[key] = backoff
            self._retry_at[key] = time.monotonic() + backoff
            log.error("warm pool: cannot make a %s sandbox (next try in %.1f s): %r", key, backoff, exc)
            self._on_refill_failed(key, exc)
            return
        self._backoff.pop(key, None)
        self._retry_at.pop(key, None)
        with self._lock:
            self._making.pop(box.token, None)
            if not self._closed:
                self._ready[key].append(box)
                box = None
        if box is not None:  # closed meanwhile
            self._destroy(box)
            return
        self._on_refilled(key, time.monotonic() - started)
