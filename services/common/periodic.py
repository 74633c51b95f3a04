"""A background thread that runs one piece of work now and then every
interval until stopped: the services' sweepers. A run that raises is logged
and the next one tries again, so one bad pass never ends the thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

JOIN_SECONDS = 5.0


class Periodic:
    def __init__(self, name: str, interval_seconds: float, work: Callable[[], object], log: logging.Logger):
        self.name = name
        self.interval_seconds = interval_seconds
        self.work = work
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_SECONDS)

    def _loop(self) -> None:
        wait = 0.0  # the first run right away: what a restart finds due is done at once
        while not self._stop.wait(wait):
            wait = self.interval_seconds
            try:
                self.work()
            except Exception:  # the next run tries again
                self.log.exception("%s failed", self.name)
