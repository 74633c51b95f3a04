"""Keeps a running execution from filling the host's disk.

The workspace is a bind mount on the host's disk, which RLIMIT_FSIZE alone
(one file at a time) does not protect. The guard samples the workspace's size
while code runs and calls back once it passes the cap; a fast writer can
overshoot by what it writes in one interval.
"""

from __future__ import annotations

import threading
from typing import Callable

from services.spawner.workspace import Workspace


class DiskGuard:
    INTERVAL_SECONDS = 0.25

    def __init__(self, workspace: Workspace, *, max_bytes: int, max_entries: int, on_exceeded: Callable[[str], None]):
        self._workspace = workspace
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._on_exceeded = on_exceeded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="disk-guard")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(self.INTERVAL_SECONDS):
            used, entries = self._workspace.disk_usage(self._max_entries)
            if used > self._max_bytes or entries > self._max_entries:
                self._on_exceeded(
                    f"the workspace passed {self._max_bytes} bytes or {self._max_entries} entries"
                )
                return
