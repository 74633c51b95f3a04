"""Control's admission + finalize rate, on its own store (no gRPC, no
spawner): a few threads each admit an execution (quota row locked, in-flight
count, budgets, insert: ExecutionStore.reserve, what ExecutionService.admit
does for every Execute) and finalize it (ExecutionStore.finalize: the
verdict, the settlement of both debits) in a loop, for a bounded number of
executions and a bounded time. All threads use one tenant, the worst case:
every write of every thread locks the same quota row."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time

from sandbox.common.v1 import execution_pb2 as common
from services.control.config import QuotaLimits
from services.control.db import Database
from services.control.executions.models import COMPLETED, Verdict
from services.control.executions.store import ExecutionStore

TENANT = "bench"
TIMEOUT_MS = 10_000


def rate(url: str, *, executions: int, threads: int, max_seconds: float) -> dict[str, float]:
    """Admissions + finalizations per second (one pair counts once) on the
    database at `url`, migrated first; also the p50 of one pair in ms."""
    database = Database(url)
    try:
        database.migrate()
        limits = QuotaLimits(
            max_in_flight=threads,
            daily_cpu_seconds=1e12,
            daily_slot_seconds=1e12,
            slot_share=1.0,
            max_stored_executions=10**9,
        )
        store = ExecutionStore(database, lambda tenant: limits)
        counter = iter(range(executions))
        lock = threading.Lock()
        pairs: list[float] = []
        errors: list[BaseException] = []
        deadline = time.monotonic() + max_seconds

        def work() -> None:
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                try:
                    started = time.perf_counter()
                    row = store.reserve(
                        key=secrets.token_hex(16),
                        tenant=TENANT,
                        execution_id=f"ex-{secrets.token_hex(8)}",
                        group_id="",
                        language=common.LANGUAGE_PYTHON,
                        timeout_ms=TIMEOUT_MS,
                    )
                    store.finalize(row.key, Verdict(COMPLETED, exit_code=0, cpu_seconds=0.01))
                    elapsed = time.perf_counter() - started
                except Exception as exc:  # reported, not hidden: the figure is then n/a
                    errors.append(exc)
                    return
                with lock:
                    pairs.append(elapsed)

        workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max_seconds + 30)
        wall = time.perf_counter() - started
        if errors:
            raise RuntimeError(f"{type(errors[0]).__name__}: {errors[0]}")
        ordered = sorted(pairs)
        return {
            "executions": len(pairs),
            "threads": threads,
            "seconds": round(wall, 2),
            "per_second": round(len(pairs) / wall, 1),
            "pair_p50_ms": round(ordered[len(ordered) // 2] * 1000, 2) if ordered else 0.0,
        }
    finally:
        database.dispose()


def sqlite_rate(**kwargs) -> dict[str, float]:
    directory = tempfile.mkdtemp(prefix="bench-sqlite-")
    try:
        return rate(f"sqlite:///{directory}/control.db", **kwargs)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
