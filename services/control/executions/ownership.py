"""Which control replica relays an execution, and when another may settle
it.

Every execution row names the replica that admitted it and that process's
incarnation (a random id per start). Each replica holds a lease row, renewed
while it lives (by the heartbeat flusher) and deleted when it stops. The
relay lives in the admitting process only, so an execution whose
incarnation is not live any more has no relay: its caller got no verdict
and it holds its tenant's slot. `orphaned` says when that is certain; the
reconciler (reconcile.py) then settles it.

Replica names are settings: a stable name lets a restarted replica settle
what its previous incarnation left at once (one replica per name, which is
the operator's to ensure); a name nobody uses any more is settled once its
lease has run out. Leases compare wall clocks of different replicas, so the
lease must be longer than their skew.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping

import sqlalchemy as sa
from sqlmodel import col, select

from services.control.db import Database
from services.control.executions import states
from services.control.executions.models import ExecutionRow, ReplicaLeaseRow

INCARNATION_BYTES = 8


@dataclasses.dataclass(frozen=True)
class Owner:
    """A control process: its replica's name and this start's incarnation."""

    replica: str
    incarnation: str

    @classmethod
    def new(cls, replica: str) -> Owner:
        return cls(replica, secrets.token_hex(INCARNATION_BYTES))


# Rows written before revision 0106 name no owner: left to the watchdog, since
# a replica of that version may still be relaying them (a rolling upgrade).
NO_OWNER = Owner("", "")


@dataclasses.dataclass(frozen=True)
class Lease:
    replica: str
    incarnation: str
    until_ms: int


def orphaned(owner: Owner, me: Owner, leases: Mapping[str, Lease], now_ms: int) -> bool:
    """True when no live control process relays an execution admitted by
    `owner`, as `me` sees it with the replicas' `leases` at `now_ms`."""
    if owner == NO_OWNER or owner.incarnation == me.incarnation:
        return False  # unknown, or this process's own relay has it
    if owner.replica == me.replica:
        return True  # an earlier incarnation of this replica: it is gone
    lease = leases.get(owner.replica)
    if lease is None or lease.incarnation != owner.incarnation:
        return True  # the replica stopped, or restarted since
    return lease.until_ms <= now_ms


class Leases:
    """The lease rows and the owners' view of the executions."""

    def __init__(self, db: Database, me: Owner, lease_ms: int, clock: Callable[[], int]):
        self.db = db
        self.me = me
        self.lease_ms = lease_ms
        self.clock = clock

    def renew(self) -> None:
        """Takes or extends this process's lease (a restart of the same
        replica takes its row over with the new incarnation)."""
        row = ReplicaLeaseRow(replica=self.me.replica, incarnation=self.me.incarnation, until_ms=0)
        with self.db.write() as session:
            row = session.merge(row)
            row.incarnation = self.me.incarnation
            row.until_ms = self.clock() + self.lease_ms

    def release(self) -> None:
        """This process stops: what it leaves may be settled at once."""
        with self.db.write() as session:
            session.execute(
                sa.delete(ReplicaLeaseRow).where(
                    col(ReplicaLeaseRow.replica) == self.me.replica,
                    col(ReplicaLeaseRow.incarnation) == self.me.incarnation,
                )
            )

    def orphans(self) -> list[ExecutionRow]:
        """The live executions that no live control process relays."""
        with self.db.read() as session:
            leases = {
                row.replica: Lease(row.replica, row.incarnation, row.until_ms)
                for row in session.exec(select(ReplicaLeaseRow))
            }
            rows = list(
                session.exec(
                    select(ExecutionRow).where(
                        col(ExecutionRow.status).in_(states.NONTERMINAL),
                        col(ExecutionRow.incarnation) != self.me.incarnation,
                        col(ExecutionRow.incarnation) != "",
                    )
                )
            )
        now = self.clock()
        return [row for row in rows if orphaned(Owner(row.replica, row.incarnation), self.me, leases, now)]

    def own_since(self, before_ms: int) -> list[ExecutionRow]:
        """This process's live executions admitted before `before_ms` (the
        reconciler checks each still has its relay)."""
        with self.db.read() as session:
            return list(
                session.exec(
                    select(ExecutionRow).where(
                        col(ExecutionRow.status).in_(states.NONTERMINAL),
                        col(ExecutionRow.incarnation) == self.me.incarnation,
                        col(ExecutionRow.created_at_ms) < before_ms,
                    )
                )
            )

    def prune(self) -> None:
        """Deletes leases that ran out: `orphaned` reads a missing lease as one that did."""
        with self.db.write() as session:
            session.execute(sa.delete(ReplicaLeaseRow).where(col(ReplicaLeaseRow.until_ms) <= self.clock()))
