"""Settles at once the executions whose relay died with its control process
(killed, crashed, its host gone), instead of leaving them to hold their
tenant's slot until the watchdog's grace runs out.

At start and then every few seconds, control looks for the live executions
that no live control process relays (ownership.py) and asks their spawners
what runs there (ListExecutions, spawner.proto):

- no spawner was ever given it: nothing ran; FAILED, SPAWNER_UNAVAILABLE,
  nothing charged.
- the spawner still runs it: its output has nowhere to go and its verdict no
  one to record it, so it is cancelled there; the next pass settles it.
- the spawner ran it and no longer does: FAILED, SPAWNER_UNAVAILABLE, with the
  usage the spawner measured when it remembers the ending (otherwise the
  pre-debit stands, as with the watchdog).
- the spawner did not answer: left for a later pass (a restarted spawner
  answers, and reaps what its previous process left); the watchdog stays
  the last resort.

Nothing is ever started again: the request's content was only in the dead
relay's memory, and code that may have run must not run twice.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import threading
from collections.abc import Callable, Mapping

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.control.executions import messages
from services.control.executions.models import FAILED, ExecutionRow, Verdict
from services.control.executions.ownership import Leases
from services.control.executions.settle import settle_without_relay
from services.control.executions.store import ExecutionStore
from services.control.spawners import SpawnerPool

log = logging.getLogger(__name__)

NEVER_STARTED = "the control process relaying the execution stopped before a spawner took it"
RELAY_GONE = "the control process relaying the execution stopped; its spawner no longer runs it"
# An execution of this very process counts as abandoned when its relay is
# gone (a relay thread that died on an error it could not record) and it was
# admitted this long ago: admission registers the relay within milliseconds.
ABANDONED_AFTER_MS = 10_000
# How often the lease is renewed, as a fraction of its length.
RENEWALS_PER_LEASE = 3
JOIN_SECONDS = 5.0


class Action(enum.Enum):
    SETTLE = "settle"
    CANCEL = "cancel"  # on its spawner; settled once the spawner no longer runs it
    WAIT = "wait"  # its spawner did not answer


@dataclasses.dataclass(frozen=True)
class SpawnerReport:
    """One spawner's answer: what it runs, how its latest executions ended."""

    in_flight: frozenset[str]
    ended: Mapping[str, spb.ExecutionEnded]

    @classmethod
    def of(cls, response: spb.ListExecutionsResponse) -> SpawnerReport:
        return cls(frozenset(e.execution_id for e in response.in_flight), {e.execution_id: e for e in response.ended})


def decide(key: str, spawner: str, report: SpawnerReport | None) -> tuple[Action, Verdict | None]:
    """What to do with an orphaned execution `key`, given to `spawner` ("":
    none), with that spawner's `report` (None: no answer)."""
    if not spawner:
        return Action.SETTLE, Verdict(FAILED, "SPAWNER_UNAVAILABLE", NEVER_STARTED, cpu_seconds=0.0)
    if report is None:
        return Action.WAIT, None
    if key in report.in_flight:
        return Action.CANCEL, None
    ended = report.ended.get(key)
    if ended is None:
        return Action.SETTLE, Verdict(FAILED, "SPAWNER_UNAVAILABLE", RELAY_GONE)
    status = common.ExecutionStatus.Name(ended.status).removeprefix("EXECUTION_STATUS_").lower()
    return Action.SETTLE, Verdict(
        FAILED,
        "SPAWNER_UNAVAILABLE",
        f"{RELAY_GONE} (there it ended {status}; its output was lost)",
        cpu_seconds=ended.usage.cpu_seconds,
        usage_json=messages.usage_json(ended.usage),
    )


class Reconciler:
    def __init__(
        self,
        store: ExecutionStore,
        leases: Leases,
        pool: SpawnerPool,
        *,
        interval_seconds: float,
        lease_seconds: float,
        relaying: Callable[[str], bool] = lambda key: True,
    ):
        """`relaying(key)`: whether this process still relays the execution."""
        self.store = store
        self.relaying = relaying
        self.leases = leases
        self.pool = pool
        self.interval_seconds = interval_seconds
        self.renew_seconds = lease_seconds / RENEWALS_PER_LEASE
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Takes the lease before anything is admitted (an execution whose
        owner holds no lease passes for orphaned), then starts passing."""
        self.leases.renew()
        for name, target in (("lease", self._renewer), ("reconciler", self._reconciler)):
            thread = threading.Thread(target=target, name=f"control-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Ends both threads and gives the lease up."""
        self._stop.set()
        for thread in self._threads:
            thread.join(JOIN_SECONDS)
        try:
            self.leases.release()
        except Exception:  # the lease then runs out by itself
            log.exception("releasing the lease failed")

    def _renewer(self) -> None:
        while not self._stop.wait(self.renew_seconds):
            try:
                self.leases.renew()
                self.leases.prune()
            except Exception:  # try again; past the lease others may settle ours
                log.exception("renewing the lease failed")

    def _reconciler(self) -> None:
        wait = 0.0  # the first pass right away: a restart settles what it left
        while not self._stop.wait(wait):
            wait = self.interval_seconds
            try:
                self.reconcile()
            except Exception:  # keep going; the watchdog covers real trouble
                log.exception("reconciliation failed")

    def reconcile(self) -> list[str]:
        """One pass; returns the keys it settled."""
        orphans = self.leases.orphans()
        before_ms = self.leases.clock() - ABANDONED_AFTER_MS
        orphans += [row for row in self.leases.own_since(before_ms) if not self.relaying(row.key)]
        if not orphans:
            return []
        reports: dict[str, SpawnerReport | None] = {}
        settled = []
        for row in orphans:
            if row.spawner and row.spawner not in reports:
                response = self.pool.executions(row.spawner)
                reports[row.spawner] = SpawnerReport.of(response) if response is not None else None
            action, verdict = decide(row.key, row.spawner, reports.get(row.spawner))
            if action is Action.CANCEL:
                log.warning(
                    "execution %s of tenant %s lost its relay; cancelling it on %s",
                    row.execution_id,
                    row.tenant,
                    row.spawner,
                )
                self.pool.cancel(row.spawner, row.key, row.tenant)
            elif action is Action.SETTLE and verdict is not None and self._settle(row, verdict):
                settled.append(row.key)
        return settled

    def _settle(self, row: ExecutionRow, verdict: Verdict) -> bool:
        return settle_without_relay(self.store, self.pool, row, verdict, by="reconciliation", stop_on_spawner=False)
