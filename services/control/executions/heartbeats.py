"""Two background threads over the execution records: the flusher writes
the heartbeat and changed previews of every execution this replica relays;
the watchdog fails executions whose heartbeat stopped (their relay died with
its control replica)."""

from __future__ import annotations

import logging
import threading

from services.control.executions.in_flight import InFlightExecutions
from services.control.executions.models import FAILED, Verdict
from services.control.executions.settle import settle_without_relay
from services.control.executions.store import ExecutionStore
from services.control.metrics import ControlMetrics
from services.control.spawners import SpawnerPool

log = logging.getLogger(__name__)

MS_PER_SECOND = 1000
# How long stop() waits for each thread to end.
JOIN_SECONDS = 5.0


class Heartbeats:
    def __init__(
        self,
        store: ExecutionStore,
        in_flight: InFlightExecutions,
        pool: SpawnerPool,
        *,
        flush_interval_seconds: float,
        watchdog_interval_seconds: float,
        watchdog_min_seconds: float,
        metrics: ControlMetrics | None = None,
    ):
        self.store = store
        self.in_flight = in_flight
        self.pool = pool
        self.flush_interval_seconds = flush_interval_seconds
        self.watchdog_interval_seconds = watchdog_interval_seconds
        self.watchdog_min_seconds = watchdog_min_seconds
        self.metrics = metrics or ControlMetrics()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, target in (("flusher", self._flusher), ("watchdog", self._watchdog)):
            thread = threading.Thread(target=target, name=f"control-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Ends both threads, then flushes once more."""
        self._stop.set()
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        self.flush_once()

    def _flusher(self) -> None:
        while not self._stop.wait(self.flush_interval_seconds):
            try:
                self.flush_once()
            except Exception:  # keep flushing; the watchdog covers real trouble
                log.exception("heartbeat flush failed")

    def flush_once(self) -> None:
        live = [execution for execution in self.in_flight.all() if not execution.done.is_set()]
        previews = {execution.key: p for execution in live if (p := execution.previews()) is not None}
        self.store.flush([execution.key for execution in live], previews)

    def _watchdog(self) -> None:
        while not self._stop.wait(self.watchdog_interval_seconds):
            try:
                self.sweep()
            except Exception:  # keep watching
                log.exception("watchdog sweep failed")

    def sweep(self) -> list[str]:
        """Fails executions whose heartbeat is older than
        max(HEARTBEAT_GRACE_FACTOR (store.py) x their timeout,
        watchdog_min_seconds);
        returns their keys."""
        failed = []
        for row in self.store.stale(int(self.watchdog_min_seconds * MS_PER_SECOND)):
            verdict = Verdict(
                status=FAILED,
                error_code="SPAWNER_UNAVAILABLE",
                error_message="no heartbeat from the execution's relay; the watchdog gave up on it",
            )
            if settle_without_relay(self.store, self.pool, row, verdict, by="the watchdog", stop_on_spawner=True):
                self.metrics.watchdog_failures.inc()
                failed.append(row.key)
        return failed
