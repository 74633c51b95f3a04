"""The store's guarantees under concurrent writers, on SQLite and on a real
PostgreSQL: the budgets and the caller's ids hold at their limits, and no
debit or settlement is lost when many threads write the same tenant's quota
row at once."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

import pytest

from sandbox.common.v1 import execution_pb2 as common
from services.control.config import QuotaLimits
from services.control.errors import AlreadyExists, QuotaExceeded
from services.control.executions.models import COMPLETED, FAILED, Verdict
from services.control.executions.store import ExecutionStore

THREADS = 24


def make_store(db, **quota) -> ExecutionStore:
    limits = QuotaLimits(**{"max_in_flight": 1000, "daily_cpu_seconds": 1e9, **quota})
    return ExecutionStore(db, lambda tenant: limits)


def reserve(store: ExecutionStore, execution_id: str = "", timeout_ms: int = 1000, tenant: str = "t1"):
    return store.reserve(
        key=secrets.token_hex(16),
        tenant=tenant,
        execution_id=execution_id or secrets.token_hex(4),
        group_id="",
        language=common.LANGUAGE_PYTHON,
        timeout_ms=timeout_ms,
    )


def all_at_once(work: Callable[[int], None], count: int = THREADS) -> list[BaseException]:
    """Runs work(0..count-1) on as many threads released together; the
    unexpected errors."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def one(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:  # collected: an assertion names them
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_admissions_at_the_cpu_budget_admit_exactly_what_fits(database):
    """A fresh tenant (its quota row created by the first writer), a budget of
    5 one-second executions and 24 asking at once: 5 admitted, 5 s debited."""
    store = make_store(database, daily_cpu_seconds=5.0)
    admitted, refused = [], []

    def ask(_index: int) -> None:
        try:
            admitted.append(reserve(store))
        except QuotaExceeded as exc:
            refused.append(exc.subject)

    assert all_at_once(ask) == []
    assert len(admitted) == 5
    assert refused == ["tenant:t1/daily_cpu_seconds"] * (THREADS - 5)
    quota = store.quota("t1")
    assert quota.cpu_seconds_used == pytest.approx(5.0)
    assert quota.stored.executions == 5


def test_concurrent_admissions_of_one_id_admit_it_once(database):
    store = make_store(database)
    admitted, duplicates = [], []

    def ask(_index: int) -> None:
        try:
            admitted.append(reserve(store, execution_id="same"))
        except AlreadyExists:
            duplicates.append(1)

    assert all_at_once(ask) == []
    assert len(admitted) == 1 and len(duplicates) == THREADS - 1
    assert store.get("t1", "same").key == admitted[0].key
    # The refused ones debited nothing.
    assert store.quota("t1").cpu_seconds_used == pytest.approx(1.0)
    assert store.quota("t1").stored.executions == 1


def test_concurrent_admissions_and_verdicts_lose_no_debit(database):
    """Each thread admits and finalizes a few executions while the others
    do the same: the quota row ends with every settlement in it."""
    store = make_store(database)
    rounds = 4

    def pairs(index: int) -> None:
        for _ in range(rounds):
            row = reserve(store, timeout_ms=2000)
            # Even threads settle 0.5 s of CPU; odd ones measured nothing and keep the 2 s debit.
            verdict = Verdict(COMPLETED, exit_code=0, cpu_seconds=0.5) if index % 2 == 0 else Verdict(FAILED, "x")
            assert store.finalize(row.key, verdict)
            assert not store.finalize(row.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0))

    assert all_at_once(pairs) == []
    quota = store.quota("t1")
    assert quota.in_flight == 0
    assert quota.stored.executions == THREADS * rounds
    assert quota.cpu_seconds_used == pytest.approx(THREADS // 2 * rounds * (0.5 + 2.0))
