"""Who gets the next slot: FIFO within a tenant, least-held first across
tenants, caps and a full mesh respected."""

import pytest

from services.control.executions.fair_queue import CALLER_MARGIN_SECONDS, FairQueue, queue_seconds


def cap(n):
    return lambda tenant: n


def test_fifo_within_a_tenant():
    queue = FairQueue()
    for key in ("a1", "a2", "a3"):
        queue.push("a", key)
    assert queue.next({}, 4, cap(4)) == "a1"
    queue.remove("a", "a1")
    assert queue.next({"a": 1}, 4, cap(4)) == "a2"


def test_the_tenant_holding_fewest_goes_first():
    queue = FairQueue()
    for key in ("a1", "a2", "a3"):
        queue.push("a", key)
    queue.push("b", "b1")
    # a came first, but holds more.
    assert queue.next({"a": 2}, 4, cap(4)) == "b1"
    # Equal holdings: the longest-waiting head goes.
    assert queue.next({"a": 1, "b": 1}, 4, cap(4)) == "a1"


def test_least_held_first_alternates_while_slots_are_held():
    queue = FairQueue()
    for i in range(3):
        queue.push("a", f"a{i}")
    for i in range(3):
        queue.push("b", f"b{i}")
    held: dict[str, int] = {}
    order = []
    while (key := queue.next(held, 6, cap(6))) is not None:
        tenant = key[0]
        queue.take(tenant, key)
        held[tenant] = held.get(tenant, 0) + 1
        order.append(key)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2"]


def test_round_robin_when_each_slot_is_given_back_before_the_next_turn():
    """One slot, each execution done before the next starts: every tenant
    holds nothing at each turn, and the turns still go round."""
    queue = FairQueue()
    for i in range(3):
        queue.push("a", f"a{i}")
    for i in range(2):
        queue.push("b", f"b{i}")
    queue.push("c", "c0")
    order = []
    while (key := queue.next({}, 1, cap(1))) is not None:
        queue.take(key[0], key)
        order.append(key)
    assert order == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_caps_and_a_full_mesh():
    queue = FairQueue()
    queue.push("a", "a3")
    assert queue.next({"a": 2}, 4, cap(2)) is None  # a is at its share
    queue.push("b", "b1")
    assert queue.next({"a": 2}, 4, cap(2)) == "b1"
    assert queue.next({"a": 2, "c": 2}, 4, cap(2)) is None  # every slot taken
    assert queue.next({}, 0, cap(1)) is None  # no spawner


def test_put_back_in_place():
    queue = FairQueue()
    first = queue.push("a", "a1")
    queue.push("a", "a2")
    queue.remove("a", "a1")
    queue.push("a", "a1", arrival=first)
    assert queue.next({}, 1, cap(1)) == "a1"
    assert len(queue) == 2 and queue.waiting("a") == 2 and queue.waiting("b") == 0
    queue.remove("a", "a1")
    queue.remove("a", "a2")
    queue.remove("a", "gone")
    assert len(queue) == 0


@pytest.mark.parametrize(
    "max_seconds, caller, expected",
    [(30, None, 30), (30, 10, 10 - CALLER_MARGIN_SECONDS), (5, 10, 5), (30, 0.2, 0.0)],
)
def test_queue_seconds(max_seconds, caller, expected):
    assert queue_seconds(max_seconds, caller) == pytest.approx(expected)
