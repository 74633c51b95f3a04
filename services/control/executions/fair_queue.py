"""The order in which waiting executions get a slot of the mesh, free of
threads and I/O (services/control/slots.py does the waiting).

Within a tenant: first come, first served. Across tenants: the tenant holding
the fewest slots goes next; among those, the one served least recently
(round robin), then the one whose first execution has waited longest. A
tenant already holding its cap (its fair share) is passed over, and nobody
goes while every slot is taken.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Mapping

# A caller with a deadline of its own stops waiting this much earlier, so
# that the refusal reaches it before the deadline does.
CALLER_MARGIN_SECONDS = 0.5


def queue_seconds(max_seconds: float, caller_seconds: float | None) -> float:
    """How long an execution may wait for a slot: the configured maximum, or
    less when the caller's deadline comes sooner."""
    if caller_seconds is None:
        return max_seconds
    return max(0.0, min(max_seconds, caller_seconds - CALLER_MARGIN_SECONDS))


class FairQueue:
    def __init__(self) -> None:
        # Per tenant: (arrival number, key), oldest first.
        self._waiting: dict[str, list[tuple[int, str]]] = {}
        self._arrivals = itertools.count()
        # Per tenant: the number of its latest turn (never served: -1).
        self._served: dict[str, int] = {}
        self._turns = itertools.count()

    def push(self, tenant: str, key: str, arrival: int | None = None) -> int:
        """Queues an execution; `arrival` puts it back in the place it had.
        Returns its arrival number."""
        if arrival is None:
            arrival = next(self._arrivals)
        bisect.insort(self._waiting.setdefault(tenant, []), (arrival, key))
        return arrival

    def take(self, tenant: str, key: str) -> None:
        """The execution's turn came: it leaves the queue, its tenant goes to
        the back of the round."""
        self.remove(tenant, key)
        self._served[tenant] = next(self._turns)

    def remove(self, tenant: str, key: str) -> None:
        waiting = self._waiting.get(tenant, [])
        waiting[:] = [entry for entry in waiting if entry[1] != key]
        if not waiting:
            self._waiting.pop(tenant, None)

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())

    def waiting(self, tenant: str) -> int:
        return len(self._waiting.get(tenant, []))

    def next(self, held: Mapping[str, int], slots: int, cap_of: Callable[[str], int]) -> str | None:
        """The key of the execution whose turn it is, given the slots each
        tenant holds, the mesh's slots and each tenant's cap; None when no
        slot is free or every waiting tenant is at its cap."""
        if sum(held.values()) >= slots:
            return None
        best: tuple[tuple[int, int, int], str] | None = None
        for tenant, waiting in self._waiting.items():
            holding = held.get(tenant, 0)
            if holding >= cap_of(tenant):
                continue
            arrival, key = waiting[0]
            rank = (holding, self._served.get(tenant, -1), arrival)
            if best is None or rank < best[0]:
                best = (rank, key)
        return None if best is None else best[1]
