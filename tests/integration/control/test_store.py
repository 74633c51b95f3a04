"""The store on SQLite and on a real PostgreSQL: migrations, admission,
the state machine under concurrent writers, quota settlement."""

from __future__ import annotations

import json
import secrets
import threading

import pytest
import sqlalchemy as sa

from sandbox.common.v1 import execution_pb2 as common
from services.control.config import QuotaLimits
from services.control.db import Database, head_revision
from services.control.errors import AlreadyExists, InvalidArgument, QuotaExceeded
from services.control.executions.models import (
    CANCELLED,
    COMPLETED,
    FAILED,
    INSTALLING,
    QUEUED,
    RUNNING,
    Claim,
    StoredFile,
    Verdict,
)
from services.control.executions.store import ExecutionStore
from services.control.pagination import PageRequest
from services.control.quotas.models import Stored


def make_store(db, max_in_flight=4, daily_cpu_seconds=1000.0, clock=None, **quota) -> ExecutionStore:
    limits = QuotaLimits(max_in_flight, daily_cpu_seconds, **quota)
    return ExecutionStore(db, lambda tenant: limits, **({"clock": clock} if clock else {}))


def reserve(store: ExecutionStore, tenant="t1", execution_id=None, timeout_ms=1000, group_id=""):
    return store.reserve(
        key=secrets.token_hex(16),
        tenant=tenant,
        execution_id=execution_id or secrets.token_hex(4),
        group_id=group_id,
        language=common.LANGUAGE_PYTHON,
        timeout_ms=timeout_ms,
    )


def test_upgrade_from_an_older_revision(database_url):
    old = Database(database_url)
    old.migrate("0001")
    assert old.revision() == "0001"
    with old.engine.begin() as conn:
        conn.execute(
            sa.text(
                "insert into executions (key, tenant, execution_id, session_id, language, status, error_code,"
                " error_message, exit_code, timeout_ms, cpu_debit, debit_day, spawner, usage_json, steps_json,"
                " dropped_json, created_at_ms, started_at_ms, finished_at_ms, heartbeat_at_ms) values"
                " ('k1', 't1', 'old-run', '', 1, 'completed', '', '', 0, 1000, 1.0, '2026-01-01', '', '{}', '[]',"
                " '[]', 1, 2, 3, 3)"
            )
        )
    old.dispose()

    upgraded = Database(database_url)
    upgraded.migrate()
    assert upgraded.revision() == head_revision()
    store = make_store(upgraded)
    row = store.get("t1", "old-run")
    assert (row.status, row.stdout_preview, row.stdout_truncated) == (COMPLETED, b"", False)
    assert store.files("k1") == []
    upgraded.migrate()  # idempotent
    upgraded.dispose()


def test_reserve_checks_duplicates_and_in_flight(database):
    store = make_store(database, max_in_flight=2)
    first = reserve(store, execution_id="same")
    with pytest.raises(AlreadyExists):
        reserve(store, execution_id="same")
    reserve(store, tenant="t2", execution_id="same")  # ids are per tenant
    reserve(store)
    with pytest.raises(QuotaExceeded) as exceeded:
        reserve(store)
    assert exceeded.value.subject == "tenant:t1/executions_in_flight"
    assert store.quota("t1").in_flight == 2
    assert store.finalize(first.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.25))
    reserve(store)  # the slot is free again


def test_cpu_budget_is_pre_debited_and_settled(database):
    store = make_store(database, max_in_flight=10, daily_cpu_seconds=10.0)
    a = reserve(store, timeout_ms=6000)
    assert store.quota("t1").cpu_seconds_used == pytest.approx(6.0)
    with pytest.raises(QuotaExceeded) as exceeded:
        reserve(store, timeout_ms=5000)
    assert exceeded.value.subject == "tenant:t1/daily_cpu_seconds"
    assert store.finalize(a.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.5))
    assert store.quota("t1").cpu_seconds_used == pytest.approx(0.5)
    b = reserve(store, timeout_ms=5000)
    # Nothing measured (watchdog, forced cancel): the debit stands.
    assert store.finalize(b.key, Verdict(FAILED, "SPAWNER_UNAVAILABLE"))
    assert store.quota("t1").cpu_seconds_used == pytest.approx(5.5)
    # A refused request gives its debit back and leaves no row.
    c = reserve(store, timeout_ms=1000)
    assert store.discard(c.key)
    assert store.by_key(c.key) is None
    assert store.quota("t1").cpu_seconds_used == pytest.approx(5.5)


def test_the_day_rolls_over(database):
    now = [1_700_000_000_000]
    store = make_store(database, daily_cpu_seconds=2.0, clock=lambda: now[0])
    row = reserve(store, timeout_ms=2000)
    with pytest.raises(QuotaExceeded):
        reserve(store, timeout_ms=1000)
    now[0] += 86_400_000
    reserve(store, timeout_ms=2000)
    # Settling yesterday's debit does not touch today's.
    store.finalize(row.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.1))
    assert store.quota("t1").cpu_seconds_used == pytest.approx(2.0)


def test_transitions_only_move_forward(database):
    store = make_store(database)
    row = reserve(store)
    assert store.advance(row.key, RUNNING)
    assert not store.advance(row.key, INSTALLING)
    assert not store.advance(row.key, RUNNING)
    assert store.by_key(row.key).started_at_ms > 0
    assert store.finalize(row.key, Verdict(FAILED, "RUNTIME_ERROR", "exit 1", exit_code=1, cpu_seconds=0.1))
    assert not store.finalize(row.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.1))
    assert not store.advance(row.key, RUNNING)
    assert not store.assign_spawner(row.key, "elsewhere")
    final = store.by_key(row.key)
    assert (final.status, final.error_code, final.exit_code) == (FAILED, "RUNTIME_ERROR", 1)
    assert not store.discard(row.key)


def test_watchdog_verdict_races_a_late_finalize(database):
    """Many rounds of the watchdog's FAILED against the relay's COMPLETED on
    the same row, from two threads: exactly one wins, it never changes
    afterwards, and the quota is settled exactly once."""
    store = make_store(database, max_in_flight=100, daily_cpu_seconds=10_000)
    for _ in range(15):
        row = reserve(store, timeout_ms=1000)
        store.advance(row.key, RUNNING)
        barrier = threading.Barrier(2)
        wins: dict[str, bool] = {}

        def attempt(name, verdict, barrier, wins, key):
            barrier.wait()
            wins[name] = store.finalize(key, verdict)

        verdicts = {
            "watchdog": Verdict(FAILED, "SPAWNER_UNAVAILABLE", "no heartbeat"),
            "finalize": Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0),
        }
        threads = [
            threading.Thread(target=attempt, args=(name, verdict, barrier, wins, row.key))
            for name, verdict in verdicts.items()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(wins.values()) == [False, True]
        winner = "watchdog" if wins["watchdog"] else "finalize"
        stored = store.by_key(row.key)
        assert stored.status == (FAILED if winner == "watchdog" else COMPLETED)
        # The loser, retried later, changes nothing.
        late = (
            Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0)
            if winner == "watchdog"
            else Verdict(FAILED, "SPAWNER_UNAVAILABLE")
        )
        assert not store.finalize(row.key, late)
        assert store.by_key(row.key).status == stored.status
    # Each round settled once: watchdog wins keep the 1 s debit, finalize wins settle to 0.
    used = store.quota("t1").cpu_seconds_used
    with database.read() as session:
        failed = session.execute(sa.text("select count(*) from executions where status = 'failed'")).scalar_one()
    assert used == pytest.approx(failed * 1.0)


def test_concurrent_reservations_never_exceed_the_cap(database):
    store = make_store(database, max_in_flight=4, daily_cpu_seconds=1_000_000)
    barrier = threading.Barrier(40)
    admitted, refused, errors = [], [], []

    def one():
        barrier.wait()
        try:
            admitted.append(reserve(store))
        except QuotaExceeded:
            refused.append(1)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(admitted) == 4 and len(refused) == 36
    assert store.quota("t1").in_flight == 4


def test_stale_executions(database):
    now = [1_700_000_000_000]
    store = make_store(database, clock=lambda: now[0])
    short = reserve(store, timeout_ms=1000)
    long = reserve(store, timeout_ms=60_000)
    now[0] += 5_000
    assert {r.key for r in store.stale(min_ms=3_000)} == {short.key}
    store.flush([short.key], {})
    assert store.stale(min_ms=3_000) == []
    now[0] += 200_000
    assert {r.key for r in store.stale(min_ms=3_000)} == {short.key, long.key}


def test_list_pages_and_filters(database):
    now = [1_700_000_000_000]
    store = make_store(database, max_in_flight=100, clock=lambda: now[0])
    keys = []
    for i in range(7):
        now[0] += 1 if i != 3 else 0  # two rows share a timestamp
        keys.append(reserve(store, execution_id=f"e{i}", group_id="s1" if i % 2 else "").key)
    reserve(store, tenant="other", execution_id="e0")
    store.finalize(keys[0], Verdict(CANCELLED, "CANCELLED"))
    seen, token = [], ""
    while True:
        rows, token = store.list("t1", page=PageRequest.parse(3, token, max_size=3))
        seen += [r.execution_id for r in rows]
        if not token:
            break
    assert sorted(seen) == [f"e{i}" for i in range(7)] and len(seen) == 7
    rows, _ = store.list("t1", group_id="s1")
    assert {r.execution_id for r in rows} == {"e1", "e3", "e5"}
    rows, _ = store.list("t1", statuses=[CANCELLED])
    assert [r.execution_id for r in rows] == ["e0"]
    rows, _ = store.list("t1", statuses=[QUEUED], group_id="s1", page=PageRequest(100))
    assert len(rows) == 3
    with pytest.raises(InvalidArgument):
        PageRequest.parse(0, "garbage!", max_size=3)


# ---- slot time, the fair share's claim, storage --------------------------------


def test_slot_time_is_pre_debited_and_settled_to_the_wall_time_held(database):
    now = [1_700_000_000_000]
    store = make_store(database, max_in_flight=10, daily_slot_seconds=20.0, clock=lambda: now[0])
    sleeper = reserve(store, timeout_ms=8000)
    usage = store.quota("t1")
    assert (usage.cpu_seconds_used, usage.slot_seconds_used) == (pytest.approx(8.0), pytest.approx(8.0))
    assert store.claim_slot(sleeper.key, "t1", max_slots=2) is Claim.CLAIMED
    assert store.assign_spawner(sleeper.key, "spawner:1")
    assert store.quota("t1").slots_held == 1
    now[0] += 9_500  # it slept until its timeout, and a little more to be reaped
    assert store.finalize(sleeper.key, Verdict(FAILED, "TIMEOUT", cpu_seconds=0.02))
    usage = store.quota("t1")
    assert usage.cpu_seconds_used == pytest.approx(0.02)
    assert usage.slot_seconds_used == pytest.approx(9.5)
    assert usage.slots_held == 0
    # CPU is nearly untouched, yet the wall-clock budget refuses the next one.
    reserve(store, timeout_ms=10_000)
    with pytest.raises(QuotaExceeded) as exceeded:
        reserve(store, timeout_ms=1000)
    assert exceeded.value.subject == "tenant:t1/daily_slot_seconds"
    # One that never reached a spawner settles to no slot time; a discarded one gives its debit back.
    waiting = reserve(store, tenant="t2", timeout_ms=5000)
    assert store.claim_slot(waiting.key, "t2", max_slots=1) is Claim.CLAIMED
    now[0] += 3_000
    assert store.finalize(waiting.key, Verdict(CANCELLED, "CANCELLED", cpu_seconds=0.0))
    refused = reserve(store, tenant="t2", timeout_ms=5000)
    assert store.discard(refused.key)
    assert store.quota("t2").slot_seconds_used == pytest.approx(0.0)


def test_the_share_is_claimed_under_the_tenants_lock(database):
    store = make_store(database, max_in_flight=10)
    rows = [reserve(store) for _ in range(3)]
    other = reserve(store, tenant="t2")
    assert store.claim_slot(rows[0].key, "t1", max_slots=2) is Claim.CLAIMED
    assert store.claim_slot(rows[1].key, "t1", max_slots=2) is Claim.CLAIMED
    assert store.claim_slot(rows[2].key, "t1", max_slots=2) is Claim.SHARE_FULL
    assert store.claim_slot(other.key, "t2", max_slots=2) is Claim.CLAIMED  # shares are per tenant
    assert store.finalize(rows[0].key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0))
    assert store.claim_slot(rows[2].key, "t1", max_slots=2) is Claim.CLAIMED
    assert store.finalize(rows[1].key, Verdict(CANCELLED, "CANCELLED"))
    assert store.claim_slot(rows[1].key, "t1", max_slots=2) is Claim.ENDED


def test_concurrent_claims_never_exceed_the_share(database):
    store = make_store(database, max_in_flight=40)
    rows = [reserve(store) for _ in range(20)]
    barrier = threading.Barrier(len(rows))
    outcomes = []

    def claim(row):
        barrier.wait()
        outcomes.append(store.claim_slot(row.key, "t1", max_slots=3))

    threads = [threading.Thread(target=claim, args=(row,)) for row in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(Claim.CLAIMED) == 3 and outcomes.count(Claim.SHARE_FULL) == 17
    assert store.quota("t1").slots_held == 3


def test_stored_executions_are_counted_and_capped(database):
    store = make_store(database, max_in_flight=10, max_stored_executions=2)
    first = reserve(store)
    refused = reserve(store)
    with pytest.raises(QuotaExceeded) as exceeded:
        reserve(store)
    assert exceeded.value.subject == "tenant:t1/stored_executions"
    assert store.finalize(first.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0))
    # Finished records still count (until retention deletes them); a discarded one does not.
    assert store.quota("t1").stored.executions == 2
    assert store.discard(refused.key)
    assert store.quota("t1").stored.executions == 1
    reserve(store)


def test_output_files_over_the_storage_quota_are_dropped_and_named(database):
    store = make_store(database, max_in_flight=10, max_stored_output_bytes=100)
    first = reserve(store, execution_id="first")
    files = [StoredFile("a.bin", 60, "a" * 64), StoredFile("b.bin", 30, "b" * 64)]
    assert store.finalize(first.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0), files)
    assert store.quota("t1").stored.output_bytes == 90
    second = reserve(store, execution_id="second")
    files = [StoredFile("c.bin", 20, "c" * 64), StoredFile("d.bin", 5, "d" * 64), StoredFile("e.txt", 0, "e" * 64)]
    assert store.finalize(second.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.0), files)
    row = store.get("t1", "second")
    # The record stays; what did not fit is named, and the run counts as OUTPUT_LIMIT.
    assert [f.path for f in store.files(second.key)] == ["d.bin", "e.txt"]
    assert (row.status, row.error_code, row.exit_code) == (FAILED, "OUTPUT_LIMIT", 0)
    assert json.loads(row.dropped_json) == ["c.bin (over the tenant's stored output bytes quota)"]
    assert store.quota("t1").stored.output_bytes == 95
    assert store.quota("t2").stored.output_bytes == 0


def test_upgrade_to_0103_counts_what_is_stored(database_url):
    old = Database(database_url)
    old.migrate("0102")
    with old.engine.begin() as conn:
        insert = (
            "insert into executions (key, tenant, execution_id, session_id, language, status, error_code,"
            " error_message, exit_code, timeout_ms, cpu_debit, debit_day, spawner, usage_json, steps_json,"
            " dropped_json, created_at_ms, started_at_ms, finished_at_ms, heartbeat_at_ms) values"
            " (:key, :tenant, :key, '', 1, 'completed', '', '', 0, 1000, 1.0, '2026-01-01', '', '{}', '[]',"
            " '[]', 1, 2, 3, 3)"
        )
        for key, tenant in (("k1", "t1"), ("k2", "t1"), ("k3", "t2")):
            conn.execute(sa.text(insert), {"key": key, "tenant": tenant})
        conn.execute(
            sa.text("insert into tenant_quotas (tenant, day, cpu_seconds_debited) values ('t1', '2026-01-01', 2.0)")
        )
        for key, path, size in (("k1", "a", 10), ("k2", "b", 5), ("k3", "c", 7)):
            conn.execute(
                sa.text("insert into output_files (execution_key, path, size, sha256) values (:k, :p, :s, :d)"),
                {"k": key, "p": path, "s": size, "d": "0" * 64},
            )
        conn.execute(
            sa.text(
                "insert into artifacts (id, tenant, language, title, entry, packages_json, revision, created_at_ms,"
                " updated_at_ms) values ('art1', 't3', 1, '', '', '[]', 1, 1, 1)"
            )
        )
        conn.execute(
            sa.text(
                "insert into artifact_files (artifact_id, path, path_key, content, size, sha256, modified_revision)"
                " values ('art1', 'm.py', 'm.py', :c, 3, :d, 1)"
            ),
            {"c": b"abc", "d": "0" * 64},
        )
    old.dispose()
    upgraded = Database(database_url)
    upgraded.migrate()
    store = make_store(upgraded, clock=lambda: 1_767_225_600_000)  # 2026-01-01
    assert store.quota("t1").stored == Stored(executions=2, output_bytes=15)
    assert store.quota("t1").cpu_seconds_used == pytest.approx(2.0)
    assert store.quota("t2").stored == Stored(executions=1, output_bytes=7)
    assert store.quota("t3").stored == Stored(artifacts=1, artifact_bytes=3)
    upgraded.dispose()
