"""Replica leases on a shared database (SQLite and PostgreSQL): each replica
sees as orphaned only what no live control process relays."""

from __future__ import annotations

import secrets

import pytest

from services.control.config import QuotaLimits
from services.control.executions.models import FAILED, Verdict
from services.control.executions.ownership import Leases, Owner
from services.control.executions.store import ExecutionStore

pytestmark = pytest.mark.integration

LEASE_MS = 10_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def replica(database, clock: Clock, owner: Owner) -> tuple[ExecutionStore, Leases]:
    store = ExecutionStore(database, lambda tenant: QuotaLimits(), clock=clock, owner=owner)
    return store, Leases(database, owner, LEASE_MS, clock)


def admit(store: ExecutionStore) -> str:
    row = store.reserve(
        key=secrets.token_hex(16),
        tenant="t1",
        execution_id=f"e-{secrets.token_hex(4)}",
        group_id="",
        language=1,
        timeout_ms=1000,
    )
    return row.key


def keys(leases: Leases) -> set[str]:
    return {row.key for row in leases.orphans()}


def test_two_replicas_settle_only_what_no_live_process_relays(database):
    clock = Clock()
    a1, b1 = Owner("a", "a-1"), Owner("b", "b-1")
    store_a, leases_a = replica(database, clock, a1)
    store_b, leases_b = replica(database, clock, b1)
    leases_a.renew()
    leases_b.renew()
    of_a, of_b = admit(store_a), admit(store_b)
    assert keys(leases_a) == keys(leases_b) == set()

    # b stops renewing: once its lease has run out, a sees b's execution.
    clock.now += LEASE_MS - 1
    leases_a.renew()
    assert keys(leases_a) == set()
    clock.now += 1
    assert keys(leases_a) == {of_b}
    assert keys(leases_b) == set()  # b never settles its own

    # a restarts under its name: a-1's execution is a-2's to settle at once,
    # and b's lease is pruned without changing what a-2 sees.
    _, leases_a2 = replica(database, clock, Owner("a", "a-2"))
    leases_a2.renew()
    leases_a2.prune()
    assert keys(leases_a2) == {of_a, of_b}

    # A verdict ends it for everyone; a second settlement is a no-op.
    verdict = Verdict(FAILED, "SPAWNER_UNAVAILABLE", "gone", cpu_seconds=0.0)
    assert store_a.finalize(of_b, verdict)
    assert not store_b.finalize(of_b, verdict)
    assert keys(leases_a2) == {of_a}


def test_a_replica_that_stopped_cleanly_is_settled_at_once(database):
    clock = Clock()
    store_b, leases_b = replica(database, clock, Owner("b", "b-1"))
    _, leases_a = replica(database, clock, Owner("a", "a-1"))
    leases_a.renew()
    leases_b.renew()
    of_b = admit(store_b)
    leases_b.release()
    assert keys(leases_a) == {of_b}
