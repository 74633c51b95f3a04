"""The execution store: executions, their transitions, output file rows,
quotas; all of its SQL.

Every state change is a conditional UPDATE guarded by the transition table
(states.py); every reservation runs in one write transaction that locks the
tenant's quota row (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the database
write lock of BEGIN IMMEDIATE), counts what is in flight, checks the CPU
budget, debits it and inserts the execution.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, func, select

from services.control.config import QuotaLimits
from services.control.db import Database
from services.control.errors import AlreadyExists, NotFound, QuotaExceeded
from services.control.executions import states
from services.control.executions.models import (
    QUEUED,
    RUNNING,
    ExecutionRow,
    OutputFileRow,
    Previews,
    QuotaUsage,
    StoredFile,
    TenantQuota,
    Verdict,
)
from services.control.pagination import FIRST_PAGE, PageRequest, Position, cut, newest_first

# The watchdog's grace for a silent execution, in multiples of its timeout
# (at least the watchdog's minimum).
HEARTBEAT_GRACE_FACTOR = 2
# Slack in the CPU budget check, so a budget spent exactly is not refused by
# float rounding.
BUDGET_EPSILON = 1e-9


def now_ms() -> int:
    return int(time.time() * 1000)


def utc_day(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")


class ExecutionStore:
    def __init__(self, db: Database, limits_for: Callable[[str], QuotaLimits], clock: Callable[[], int] = now_ms):
        self.db = db
        self.limits_for = limits_for
        self.clock = clock

    # ---- quota and admission -------------------------------------------

    def _lock_quota(self, session: Session, tenant: str, today: str) -> TenantQuota:
        table = TenantQuota.__table__
        values = dict(tenant=tenant, day=today, cpu_seconds_debited=0.0)
        insert = postgresql.insert(table) if self.db.dialect == "postgresql" else sqlite.insert(table)
        session.execute(insert.values(**values).on_conflict_do_nothing(index_elements=["tenant"]))
        quota = session.exec(
            select(TenantQuota).where(TenantQuota.tenant == tenant).with_for_update()
        ).one()
        if quota.day != today:
            quota.day = today
            quota.cpu_seconds_debited = 0.0
        return quota

    def _in_flight(self, session: Session, tenant: str) -> int:
        return session.exec(
            select(func.count())
            .select_from(ExecutionRow)
            .where(ExecutionRow.tenant == tenant, col(ExecutionRow.status).in_(states.NONTERMINAL))
        ).one()

    def reserve(
        self, *, key: str, tenant: str, execution_id: str, session_id: str, language: int, timeout_ms: int
    ) -> ExecutionRow:
        """Admits one execution in a transaction of its own (see reserve_in)."""
        with self.db.write() as session:
            return self.reserve_in(
                session,
                key=key,
                tenant=tenant,
                execution_id=execution_id,
                session_id=session_id,
                language=language,
                timeout_ms=timeout_ms,
            )

    def reserve_in(
        self,
        session: Session,
        *,
        key: str,
        tenant: str,
        execution_id: str,
        session_id: str,
        language: int,
        timeout_ms: int,
    ) -> ExecutionRow:
        """Admits one execution inside the caller's write transaction
        (Database.write): quota check, debit and insert. Raises QuotaExceeded
        or AlreadyExists; the caller's transaction then rolls back, so nothing
        changed. A caller with rows of its own that must exist exactly when
        the execution does (a run's record) writes them in the same
        transaction."""
        limits = self.limits_for(tenant)
        debit = timeout_ms / 1000.0
        now = self.clock()
        today = utc_day(now)
        quota = self._lock_quota(session, tenant, today)
        duplicate = session.exec(
            select(ExecutionRow.key).where(
                ExecutionRow.tenant == tenant, ExecutionRow.execution_id == execution_id
            )
        ).first()
        if duplicate is not None:
            raise AlreadyExists(f"execution_id: {execution_id!r} already exists")
        in_flight = self._in_flight(session, tenant)
        if in_flight >= limits.max_in_flight:
            raise QuotaExceeded(
                tenant,
                f"tenant:{tenant}/executions_in_flight",
                f"{in_flight} of {limits.max_in_flight} executions in flight; wait for one to finish",
            )
        if quota.cpu_seconds_debited + debit > limits.daily_cpu_seconds + BUDGET_EPSILON:
            left = max(0.0, limits.daily_cpu_seconds - quota.cpu_seconds_debited)
            raise QuotaExceeded(
                tenant,
                f"tenant:{tenant}/daily_cpu_seconds",
                f"{left:.1f} of {limits.daily_cpu_seconds:.1f} CPU seconds left today (UTC); "
                f"the requested timeout needs {debit:.1f}",
            )
        quota.cpu_seconds_debited += debit
        session.add(quota)
        row = ExecutionRow(
            key=key,
            tenant=tenant,
            execution_id=execution_id,
            session_id=session_id,
            language=language,
            status=QUEUED,
            timeout_ms=timeout_ms,
            cpu_debit=debit,
            debit_day=today,
            created_at_ms=now,
            heartbeat_at_ms=now,
        )
        session.add(row)
        try:
            session.flush()
        except sa.exc.IntegrityError:
            raise AlreadyExists(f"execution_id: {execution_id!r} already exists") from None
        return row

    def quota(self, tenant: str) -> QuotaUsage:
        limits = self.limits_for(tenant)
        today = utc_day(self.clock())
        with self.db.read() as session:
            quota = session.get(TenantQuota, tenant)
            used = quota.cpu_seconds_debited if quota is not None and quota.day == today else 0.0
            in_flight = self._in_flight(session, tenant)
        return QuotaUsage(tenant, limits, in_flight, used, today)

    # ---- transitions ---------------------------------------------------

    def _conditional(self, session: Session, key: str, target: str, **values) -> bool:
        result = session.execute(
            sa.update(ExecutionRow)
            .where(col(ExecutionRow.key) == key, col(ExecutionRow.status).in_(states.sources(target)))
            .values(status=target, **values)
        )
        return result.rowcount == 1

    def advance(self, key: str, target: str) -> bool:
        """Moves a live execution forward (installing, running). False when
        the table forbids it from the current state (e.g. it is terminal)."""
        if target in states.TERMINAL:
            raise ValueError("terminal states are reached through finalize()")
        now = self.clock()
        values = dict(heartbeat_at_ms=now)
        if target == RUNNING:
            values["started_at_ms"] = now
        with self.db.write() as session:
            return self._conditional(session, key, target, **values)

    def assign_spawner(self, key: str, spawner: str) -> bool:
        """Records which spawner runs it; False when it is already terminal."""
        with self.db.write() as session:
            result = session.execute(
                sa.update(ExecutionRow)
                .where(col(ExecutionRow.key) == key, col(ExecutionRow.status).in_(states.NONTERMINAL))
                .values(spawner=spawner, heartbeat_at_ms=self.clock())
            )
            return result.rowcount == 1

    def finalize(self, key: str, verdict: Verdict, files: Sequence[StoredFile] = ()) -> bool:
        """Applies the first terminal verdict, its output files and the quota
        settlement in one transaction. Returns False (and changes nothing)
        when the execution was already terminal: finalize is idempotent."""
        if verdict.status not in states.TERMINAL:
            raise ValueError(f"{verdict.status} is not terminal")
        with self.db.write() as session:
            row = session.get(ExecutionRow, key)
            if row is None or row.status in states.TERMINAL:
                return False
            values = dict(
                error_code=verdict.error_code,
                error_message=verdict.error_message,
                exit_code=verdict.exit_code,
                finished_at_ms=self.clock(),
            )
            for name in ("usage_json", "steps_json", "dropped_json", "stdout_preview", "stderr_preview"):
                if getattr(verdict, name) is not None:
                    values[name] = getattr(verdict, name)
            if verdict.stdout_preview is not None:
                values["stdout_truncated"] = verdict.stdout_truncated
            if verdict.stderr_preview is not None:
                values["stderr_truncated"] = verdict.stderr_truncated
            if not self._conditional(session, key, verdict.status, **values):
                return False
            for stored in files:
                session.add(OutputFileRow(execution_key=key, path=stored.path, size=stored.size, sha256=stored.sha256))
            if verdict.cpu_seconds is not None:
                delta = max(0.0, verdict.cpu_seconds) - row.cpu_debit
                session.execute(
                    sa.update(TenantQuota)
                    .where(col(TenantQuota.tenant) == row.tenant, col(TenantQuota.day) == row.debit_day)
                    .values(cpu_seconds_debited=TenantQuota.cpu_seconds_debited + delta)
                )
            return True

    def discard(self, key: str) -> bool:
        """Removes an execution the spawner refused before anything started,
        and returns its debit: as if it had never been requested. Rows that
        belong to the execution in other tables (a run's) are deleted with
        it by their foreign keys (ON DELETE CASCADE)."""
        with self.db.write() as session:
            row = session.get(ExecutionRow, key)
            if row is None or row.status != QUEUED:
                return False
            session.execute(
                sa.delete(ExecutionRow).where(col(ExecutionRow.key) == key, col(ExecutionRow.status) == QUEUED)
            )
            session.execute(
                sa.update(TenantQuota)
                .where(col(TenantQuota.tenant) == row.tenant, col(TenantQuota.day) == row.debit_day)
                .values(cpu_seconds_debited=TenantQuota.cpu_seconds_debited - row.cpu_debit)
            )
            return True

    def flush(self, heartbeats: Sequence[str], previews: dict[str, Previews]) -> None:
        """One write for a batch of live executions: heartbeats and previews."""
        if not heartbeats and not previews:
            return
        now = self.clock()
        live = col(ExecutionRow.status).in_(states.NONTERMINAL)
        with self.db.write() as session:
            if heartbeats:
                session.execute(
                    sa.update(ExecutionRow)
                    .where(col(ExecutionRow.key).in_(list(heartbeats)), live)
                    .values(heartbeat_at_ms=now)
                )
            for key, preview in previews.items():
                session.execute(
                    sa.update(ExecutionRow)
                    .where(col(ExecutionRow.key) == key, live)
                    .values(
                        heartbeat_at_ms=now,
                        stdout_preview=preview.stdout,
                        stdout_truncated=preview.stdout_truncated,
                        stderr_preview=preview.stderr,
                        stderr_truncated=preview.stderr_truncated,
                    )
                )

    def stale(self, min_ms: int) -> list[ExecutionRow]:
        """Live executions whose heartbeat is older than
        max(HEARTBEAT_GRACE_FACTOR x timeout, min_ms)."""
        timeout_grace = ExecutionRow.timeout_ms * HEARTBEAT_GRACE_FACTOR
        grace = sa.case((timeout_grace > min_ms, timeout_grace), else_=min_ms)
        with self.db.read() as session:
            return list(
                session.exec(
                    select(ExecutionRow).where(
                        col(ExecutionRow.status).in_(states.NONTERMINAL),
                        ExecutionRow.heartbeat_at_ms + grace < self.clock(),
                    )
                )
            )

    # ---- reads -----------------------------------------------------------

    def by_key(self, key: str) -> ExecutionRow | None:
        with self.db.read() as session:
            return session.get(ExecutionRow, key)

    def get(self, tenant: str, execution_id: str) -> ExecutionRow:
        with self.db.read() as session:
            row = session.exec(
                select(ExecutionRow).where(ExecutionRow.tenant == tenant, ExecutionRow.execution_id == execution_id)
            ).first()
        if row is None:
            raise NotFound(f"execution {execution_id!r} not found")
        return row

    def files(self, key: str) -> list[StoredFile]:
        with self.db.read() as session:
            rows = session.exec(
                select(OutputFileRow).where(OutputFileRow.execution_key == key).order_by(OutputFileRow.path)
            )
            return [StoredFile(r.path, r.size, r.sha256) for r in rows]

    def file(self, tenant: str, execution_id: str, path: str) -> StoredFile:
        row = self.get(tenant, execution_id)
        for stored in self.files(row.key):
            if stored.path == path:
                return stored
        raise NotFound(f"execution {execution_id!r} has no output file {path!r}")

    def referenced(self, digests: Sequence[str]) -> set[str]:
        if not digests:
            return set()
        with self.db.read() as session:
            return set(
                session.exec(select(OutputFileRow.sha256).where(col(OutputFileRow.sha256).in_(list(digests))))
            )

    def live_in_session(self, tenant: str, session_id: str) -> list[ExecutionRow]:
        with self.db.read() as session:
            return list(
                session.exec(
                    select(ExecutionRow).where(
                        ExecutionRow.tenant == tenant,
                        ExecutionRow.session_id == session_id,
                        col(ExecutionRow.status).in_(states.NONTERMINAL),
                    )
                )
            )

    def list(
        self,
        tenant: str,
        *,
        statuses: Sequence[str] = (),
        session_id: str = "",
        page: PageRequest = FIRST_PAGE,
    ) -> tuple[list[ExecutionRow], str]:
        """Newest first; returns the page and the token of the next one ("" at the end)."""
        query = select(ExecutionRow).where(ExecutionRow.tenant == tenant)
        if statuses:
            query = query.where(col(ExecutionRow.status).in_(list(statuses)))
        if session_id:
            query = query.where(ExecutionRow.session_id == session_id)
        query = newest_first(query, col(ExecutionRow.created_at_ms), col(ExecutionRow.key), page)
        with self.db.read() as session:
            rows = list(session.exec(query))
        return cut(rows, page, lambda row: Position(row.created_at_ms, row.key))

