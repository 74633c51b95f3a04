"""Whether the Docker engine answers, and what the spawner does when it
stops or comes back.

An engine that went away (restarted, its socket gone, hung) must not make
callers wait on it: `require()` asks it with a short timeout before an
execution is admitted and refuses at once (UNAVAILABLE) while it does not
answer. A watcher thread asks again every few seconds, so the spawner sees
the engine come back without a call and without a restart of its own; it
then reaps what the executions that failed meanwhile could not remove (their
containers, workspaces and cgroup parents).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import docker
import requests

log = logging.getLogger(__name__)

# How long one ping may take before the engine counts as gone: a healthy
# engine answers in a millisecond, even when busy starting containers.
PING_TIMEOUT_SECONDS = 3.0
# How often the watcher asks while the engine answers, and while it does not.
CHECK_INTERVAL_SECONDS = 5.0
DOWN_CHECK_INTERVAL_SECONDS = 1.0
# An answer this recent stands for the engine at admission: under load one
# ping a second, not one round trip on every execution's first byte.
FRESH_SECONDS = 1.0


class EngineUnavailable(Exception):
    def __init__(self, detail: str):
        super().__init__(
            f"the Docker engine of this spawner does not answer ({detail}); no execution is admitted until it is back"
        )


class EngineWatch:
    def __init__(
        self,
        api: docker.APIClient,
        on_back: Callable[[float], None],
        on_change: Callable[[bool], None] = lambda up: None,
    ):
        """`on_back(since)` runs when the engine answers again; `since` is
        the time.time() it was back. `on_change(up)` on every change."""
        self.api = api
        self.on_back = on_back
        self.on_change = on_change
        self._lock = threading.Lock()
        self._up = True
        self._answered_at = float("-inf")  # time.monotonic() of the latest answer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def up(self) -> bool:
        with self._lock:
            return self._up

    def require(self) -> None:
        """Raises EngineUnavailable unless the engine answers now (or did
        within FRESH_SECONDS)."""
        with self._lock:
            if self._up and time.monotonic() - self._answered_at < FRESH_SECONDS:
                return
        detail = self._ping()
        if detail:
            raise EngineUnavailable(detail)

    def doubt(self) -> None:
        """The next admission asks the engine (an execution just failed in a
        way an engine gone would explain)."""
        with self._lock:
            self._answered_at = float("-inf")

    def check(self) -> bool:
        return not self._ping()

    def _ping(self) -> str:
        """Empty when the engine answered; else why not (also noted)."""
        try:
            # The client is a requests session: this one call gets a short timeout.
            self.api.get(f"{self.api.base_url}/_ping", timeout=PING_TIMEOUT_SECONDS).raise_for_status()
        except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as exc:
            self._note(False, type(exc).__name__)
            return type(exc).__name__
        with self._lock:
            self._answered_at = time.monotonic()
        self._note(True, "")
        return ""

    def _note(self, up: bool, detail: str) -> None:
        with self._lock:
            changed, self._up = self._up != up, up
        if not changed:
            return
        if up:
            log.warning("the Docker engine answers again; reaping what failed executions left")
        else:
            log.error("the Docker engine does not answer (%s): executions are refused until it is back", detail)
        self.on_change(up)
        if up:  # not on the caller's thread: an Execute call must not wait for a reap
            threading.Thread(target=self._back, args=(time.time(),), name="engine-back", daemon=True).start()

    def _back(self, since: float) -> None:
        try:
            self.on_back(since)
        except Exception:
            log.exception("clean-up after the engine came back failed")

    def start(self) -> None:
        def watch() -> None:
            while not self._stop.wait(CHECK_INTERVAL_SECONDS if self.up else DOWN_CHECK_INTERVAL_SECONDS):
                self._ping()

        self._thread = threading.Thread(target=watch, name="engine-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
