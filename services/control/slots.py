"""Fair admission to the mesh's slots. An admitted execution waits here, in
the fair queue (executions/fair_queue.py), until it is its turn, its tenant
holds fewer slots than its share and a slot is free; or until its deadline.

A tenant's share is max(1, floor(the mesh's slots x its slot_share)), the
mesh's slots what the healthy spawners report (SpawnerPool.capacity). The
share is a hard cap, not a loan: a slot lent to one tenant while others were
idle could not be taken back before that execution's timeout, so a tenant
that filled the mesh would still make the next tenant wait minutes.

Held slots are counted twice: here, for this replica's order (who goes
next), and in the database at the claim (ExecutionStore.claim_slot), which
counts the executions of every control replica and has the last word on the
share. The relay (services/control/relay.py) calls `acquire` before it looks
for a spawner and `release` when its spawner call is over.
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from collections.abc import Callable

from services.control.errors import QuotaExceeded
from services.control.executions.fair_queue import FairQueue
from services.control.executions.in_flight import InFlightExecution
from services.control.executions.models import Claim
from services.control.executions.store import ExecutionStore
from services.control.metrics import ControlMetrics
from services.control.quotas import accounting
from services.control.spawners import SpawnerPool

# A waiting execution looks again at least this often (a release wakes it
# at once; a cancel, a spawner coming back or another replica's release do not).
POLL_SECONDS = 0.2
# QuotaFailure subject when the mesh, not the tenant's share, was full.
MESH_SLOTS = "mesh/slots"


class SlotScheduler:
    def __init__(
        self,
        pool: SpawnerPool,
        store: ExecutionStore,
        share_of: Callable[[str], float],
        metrics: ControlMetrics | None = None,
    ):
        self.pool = pool
        self.store = store
        self.share_of = share_of
        self.metrics = metrics or ControlMetrics()
        self._changed = threading.Condition()
        self._queue = FairQueue()
        self._held: collections.Counter[str] = collections.Counter()
        # Key -> tenant of the executions holding a slot through this replica.
        self._holders: dict[str, str] = {}
        # Executions the database last turned away: the tenant's share was
        # full with executions of other replicas.
        self._share_full: set[str] = set()

    def slots(self) -> int:
        """The mesh's slots now."""
        return self.pool.capacity()

    def max_slots(self, tenant: str, slots: int | None = None) -> int:
        """The most slots the tenant may hold at once (its share)."""
        return accounting.slot_cap(self.slots() if slots is None else slots, self.share_of(tenant))

    def acquire(self, execution: InFlightExecution) -> bool:
        """Waits for the execution's turn. True when it holds a slot, or was
        cancelled or ended meanwhile (the relay sees which); False when its
        queue deadline came first (`refusal` then says why)."""
        started = time.monotonic()
        got_slot = self._acquire(execution)
        self.metrics.waited(time.monotonic() - started, got_slot)
        return got_slot

    def _acquire(self, execution: InFlightExecution) -> bool:
        tenant, key = execution.tenant, execution.key
        with self._changed:
            arrival = self._queue.push(tenant, key)
        try:
            while execution.cancel_reason is None:
                remaining = execution.queue_deadline - time.monotonic()
                if remaining <= 0:
                    return False
                slots = self.slots()
                cap_of = functools.partial(self.max_slots, slots=slots)
                with self._changed:
                    turn = self._queue.next(self._held, slots, cap_of) == key
                    if not turn:
                        self._changed.wait(min(remaining, POLL_SECONDS))
                        continue
                    self._queue.take(tenant, key)
                    self._holders[key] = tenant
                    self._held[tenant] += 1
                claim = functools.partial(self.store.claim_slot, key, tenant, self.max_slots(tenant, slots))
                if self.store.db.retrying(claim) is not Claim.SHARE_FULL:  # through a short database outage
                    return True
                with self._changed:  # back in its place until one of the tenant's slots frees
                    self._release_locked(key)
                    self._share_full.add(key)
                    self._queue.push(tenant, key, arrival)
                    self._changed.wait(min(remaining, POLL_SECONDS))
            return True
        finally:
            with self._changed:
                self._queue.remove(tenant, key)

    def release(self, execution: InFlightExecution) -> None:
        """The execution's spawner call is over (or it never got a slot)."""
        with self._changed:
            self._release_locked(execution.key)
            self._share_full.discard(execution.key)
            self._changed.notify_all()

    def _release_locked(self, key: str) -> None:
        tenant = self._holders.pop(key, None)
        if tenant is not None:
            self._held[tenant] -= 1
            if self._held[tenant] <= 0:
                del self._held[tenant]

    def refusal(self, execution: InFlightExecution) -> QuotaExceeded | None:
        """Why the execution is still waiting at its deadline: the tenant's
        share or the whole mesh was full. None when no spawner is up at all
        (that is no quota: the execution fails as SPAWNER_UNAVAILABLE)."""
        slots = self.slots()
        if slots == 0:
            return None
        tenant, key = execution.tenant, execution.key
        waited = time.monotonic() - execution.accepted_at
        cap = self.max_slots(tenant, slots)
        with self._changed:
            # Slots the tenant's other executions hold through this replica.
            others = self._held[tenant] - (1 if key in self._holders else 0)
            share_full = key in self._share_full or others >= cap
        if share_full:
            return QuotaExceeded(
                tenant,
                f"tenant:{tenant}/slot_share",
                f"the tenant held its share, {cap} of the mesh's {slots} slots, for the {waited:.0f}s "
                "this execution waited; nothing was charged",
            )
        return QuotaExceeded(
            tenant,
            MESH_SLOTS,
            f"all {slots} slots of the mesh were busy for the {waited:.0f}s this execution waited; nothing was charged",
        )
