"""The slot scheduler with a fake pool and store: a tenant at its share
waits while another goes, a release wakes the next, deadlines, cancels and
the database's word on the share across replicas."""

from __future__ import annotations

import threading
import time

import pytest

from services.control.executions.models import Claim
from services.control.slots import MESH_SLOTS, SlotScheduler

WAIT_SECONDS = 5.0


class FakePool:
    def __init__(self, slots: int):
        self.slots = slots

    def capacity(self) -> int:
        return self.slots


class NoOutage:
    """Database.retrying with a database that never goes away."""

    def retrying(self, transaction):
        return transaction()


class FakeStore:
    def __init__(self):
        self.claims: list[str] = []
        self.answers: list[Claim] = []
        self.db = NoOutage()

    def claim_slot(self, key: str, tenant: str, max_slots: int) -> Claim:
        self.claims.append(key)
        return self.answers.pop(0) if self.answers else Claim.CLAIMED


class Waiting:
    """What the scheduler reads of an in-flight execution."""

    def __init__(self, tenant: str, key: str, wait: float = WAIT_SECONDS):
        self.tenant, self.key = tenant, key
        self.accepted_at = time.monotonic()
        self.queue_deadline = self.accepted_at + wait
        self.cancel_reason = None


def scheduler(slots=4, share=0.5, store=None):
    return SlotScheduler(FakePool(slots), store or FakeStore(), lambda tenant: share)


def in_background(target, *args):
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(target(*args)), daemon=True)
    thread.start()
    return thread, outcome


def test_a_tenant_at_its_share_waits_while_another_goes():
    slots = scheduler()
    a1, a2, a3, b1 = Waiting("a", "a1"), Waiting("a", "a2"), Waiting("a", "a3"), Waiting("b", "b1")
    assert slots.acquire(a1) and slots.acquire(a2)
    waiter, outcome = in_background(slots.acquire, a3)
    time.sleep(0.3)
    assert outcome == []  # a holds 2 of 4: its share
    started = time.monotonic()
    assert slots.acquire(b1)
    assert time.monotonic() - started < 0.5
    slots.release(a1)  # one of a's frees: a3 goes
    waiter.join(WAIT_SECONDS)
    assert outcome == [True]


def test_the_deadline_refuses_and_says_why():
    slots = scheduler(slots=2, share=0.5)
    assert slots.acquire(Waiting("a", "a1"))
    late = Waiting("a", "a2", wait=0.3)
    assert not slots.acquire(late)
    refusal = slots.refusal(late)
    assert refusal.subject == "tenant:a/slot_share" and "1 of the mesh's 2 slots" in refusal.description
    assert slots.acquire(Waiting("b", "b1"))
    other = Waiting("c", "c1", wait=0.3)
    assert not slots.acquire(other)
    assert slots.refusal(other).subject == MESH_SLOTS
    slots.pool.slots = 0
    assert slots.refusal(other) is None  # no spawner at all: not a quota


def test_a_cancel_ends_the_wait():
    slots = scheduler(slots=1)
    assert slots.acquire(Waiting("a", "a1"))
    cancelled = Waiting("b", "b1")
    waiter, outcome = in_background(slots.acquire, cancelled)
    cancelled.cancel_reason = "cancelled by the caller"
    waiter.join(WAIT_SECONDS)
    assert outcome == [True]
    slots.release(cancelled)  # released without holding: harmless
    assert slots.acquire(Waiting("c", "c1", wait=0.3)) is False  # a1 still holds the only slot


def test_the_databases_share_count_sends_it_back_in_place():
    store = FakeStore()
    store.answers = [Claim.SHARE_FULL, Claim.SHARE_FULL]  # other replicas hold the tenant's share
    slots = scheduler(slots=4, share=0.5, store=store)
    first = Waiting("a", "a1")
    waiter, outcome = in_background(slots.acquire, first)
    waiter.join(WAIT_SECONDS)
    assert outcome == [True] and store.claims == ["a1", "a1", "a1"]


@pytest.mark.parametrize("tenants", [2, 3])
def test_slots_go_round_between_tenants(tenants):
    slots = scheduler(slots=1, share=1.0)
    holder = Waiting("z", "z0")
    assert slots.acquire(holder)
    order: list[str] = []
    lock = threading.Lock()

    def wait_then_run(execution):
        assert slots.acquire(execution)
        with lock:
            order.append(execution.key)
        slots.release(execution)

    threads = []
    for t in range(tenants):  # each tenant's executions arrive together
        for i in range(2):
            execution = Waiting(f"t{t}", f"t{t}-{i}")
            thread = threading.Thread(target=wait_then_run, args=(execution,), daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(0.05)  # arrive in this order
    slots.release(holder)
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert order == [f"t{t}-{i}" for i in range(2) for t in range(tenants)]
