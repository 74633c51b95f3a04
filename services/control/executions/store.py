"""The execution store: executions, their transitions, output file rows,
and the quota bookkeeping they carry; all of its SQL.

Every state change is a conditional UPDATE guarded by the transition table
(states.py). Every write a quota limits locks the tenant's quota row first
(services/control/quotas/ledger.py): a reservation locks it, counts what is
in flight, checks the budgets and what is stored, debits and inserts the
execution in one transaction; a verdict locks it, keeps the output files
that fit the storage quota and settles the debits in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services.control.config import QuotaLimits
from services.control.db import Database, rows_changed
from services.control.errors import AlreadyExists, NotFound
from services.control.executions import statements, states
from services.control.executions.models import (
    QUEUED,
    RUNNING,
    Claim,
    ExecutionRow,
    OutputFileRow,
    Previews,
    StoredFile,
    Verdict,
)
from services.control.executions.ownership import NO_OWNER, Owner
from services.control.pagination import FIRST_PAGE, PageRequest, Position, cut, newest_first
from services.control.quotas import accounting, ledger
from services.control.quotas.ledger import utc_day
from services.control.quotas.models import QuotaUsage, Stored

# The watchdog's grace for a silent execution, in multiples of its timeout
# (at least the watchdog's minimum).
HEARTBEAT_GRACE_FACTOR = 2
MS_PER_SECOND = 1000


def now_ms() -> int:
    return int(time.time() * MS_PER_SECOND)


class ExecutionStore:
    def __init__(
        self,
        db: Database,
        limits_for: Callable[[str], QuotaLimits],
        clock: Callable[[], int] = now_ms,
        owner: Owner = NO_OWNER,
    ):
        self.db = db
        self.limits_for = limits_for
        self.clock = clock
        # The process whose relay the executions it admits depend on (ownership.py).
        self.owner = owner

    # ---- quota and admission -------------------------------------------

    def _in_flight(self, session: Session, tenant: str) -> int:
        return session.connection().execute(statements.IN_FLIGHT, {"b_tenant": tenant}).scalar_one()

    def _slots_held(self, session: Session, tenant: str) -> int:
        """The tenant's executions holding a slot of the mesh, whichever
        control replica relays them."""
        return session.connection().execute(statements.SLOTS_HELD, {"b_tenant": tenant}).scalar_one()

    def reserve(
        self,
        *,
        key: str,
        tenant: str,
        execution_id: str,
        group_id: str,
        language: int,
        timeout_ms: int,
        variant: str = "",
        runtime: str = "",
        session_id: str = "",
    ) -> ExecutionRow:
        """Admits one execution in a transaction of its own (see reserve_in)."""
        with self.db.write() as session:
            return self.reserve_in(
                session,
                key=key,
                tenant=tenant,
                execution_id=execution_id,
                group_id=group_id,
                language=language,
                timeout_ms=timeout_ms,
                variant=variant,
                runtime=runtime,
                session_id=session_id,
            )

    def reserve_in(
        self,
        session: Session,
        *,
        key: str,
        tenant: str,
        execution_id: str,
        group_id: str,
        language: int,
        timeout_ms: int,
        variant: str = "",
        runtime: str = "",
        session_id: str = "",
    ) -> ExecutionRow:
        """Admits one execution inside the caller's write transaction
        (Database.write): quota checks, debits and insert. Raises
        QuotaExceeded or AlreadyExists; the caller's transaction then rolls
        back, so nothing changed. A caller with rows of its own that must
        exist exactly when the execution does (a run's record) writes them
        in the same transaction.

        The requested timeout is pre-debited twice: from the CPU budget and
        from the slot-time budget; the verdict settles each to what was used."""
        limits = self.limits_for(tenant)
        debit = timeout_ms / MS_PER_SECOND
        today = utc_day(self.clock())
        quota = ledger.lock(session, tenant, today)
        # Read once the tenant's row is locked: an execution admitted in the
        # room a verdict made is never recorded as created before it.
        now = self.clock()
        connection = session.connection()
        if connection.execute(statements.DUPLICATE, {"b_tenant": tenant, "b_id": execution_id}).first() is not None:
            raise AlreadyExists(f"execution_id: {execution_id!r} already exists")
        accounting.check_admission(tenant, limits, quota, self._in_flight(session, tenant), debit)
        quota.cpu_seconds_debited += debit
        quota.slot_seconds_debited += debit
        quota.stored_executions += 1
        ledger.save(session, quota)
        row = ExecutionRow(
            key=key,
            tenant=tenant,
            execution_id=execution_id,
            group_id=group_id,
            session_id=session_id,
            language=language,
            variant=variant,
            runtime=runtime,
            status=QUEUED,
            timeout_ms=timeout_ms,
            cpu_debit=debit,
            slot_debit=debit,
            debit_day=today,
            created_at_ms=now,
            heartbeat_at_ms=now,
            replica=self.owner.replica,
            incarnation=self.owner.incarnation,
        )
        try:
            connection.execute(statements.INSERT, statements.row_values(row))
        except sa.exc.IntegrityError:
            raise AlreadyExists(f"execution_id: {execution_id!r} already exists") from None
        return row

    def quota(self, tenant: str) -> QuotaUsage:
        limits = self.limits_for(tenant)
        today = utc_day(self.clock())
        with self.db.read() as session:
            quota = ledger.read(session, tenant)
            today_quota = quota if quota is not None and quota.day == today else None
            return QuotaUsage(
                tenant,
                limits,
                in_flight=self._in_flight(session, tenant),
                cpu_seconds_used=today_quota.cpu_seconds_debited if today_quota is not None else 0.0,
                day=today,
                slot_seconds_used=today_quota.slot_seconds_debited if today_quota is not None else 0.0,
                slots_held=self._slots_held(session, tenant),
                stored=Stored.of(quota),
            )

    # ---- transitions ---------------------------------------------------

    def _conditional(self, session: Session, key: str, target: str, **values) -> bool:
        result = session.connection().execute(statements.TRANSITION, statements.transition(key, target, **values))
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
        """Records which spawner runs it (and, unless a claim already did,
        that it holds a slot from now on); False when it is already terminal."""
        now = self.clock()
        with self.db.write() as session:
            values = {"b_key": key, "b_now": now, "spawner": spawner, "heartbeat_at_ms": now}
            return session.connection().execute(statements.ASSIGN_SPAWNER, values).rowcount == 1

    def claim_slot(self, key: str, tenant: str, max_slots: int) -> Claim:
        """Marks the execution as holding a slot of the mesh, unless the
        tenant already holds `max_slots` (its fair share; the count covers
        every control replica, since it is taken under the tenant's lock)."""
        with self.db.write() as session:
            ledger.lock(session, tenant, utc_day(self.clock()))
            if self._slots_held(session, tenant) >= max_slots:
                return Claim.SHARE_FULL
            now = self.clock()
            values = {"b_key": key, "slot_at_ms": now, "heartbeat_at_ms": now}
            changed = session.connection().execute(statements.CLAIM_SLOT, values).rowcount
            return Claim.CLAIMED if changed == 1 else Claim.ENDED

    def finalize(self, key: str, verdict: Verdict, files: Sequence[StoredFile] = ()) -> bool:
        """Applies the first terminal verdict, the output files that fit the
        tenant's storage quota (the others are named in the dropped list,
        accounting.with_dropped_outputs) and the settlement of both debits,
        in one transaction. Returns False (and changes nothing) when the
        execution was already terminal: finalize is idempotent."""
        if verdict.status not in states.TERMINAL:
            raise ValueError(f"{verdict.status} is not terminal")
        with self.db.write() as session:
            connection = session.connection()
            found = connection.execute(statements.TENANT_AND_STATUS, {"b_key": key}).first()
            if found is None or found.status in states.TERMINAL:
                return False
            now = self.clock()
            # The tenant's row first (ledger.py); the move below is still
            # conditional: another verdict may have come in meanwhile.
            quota = ledger.lock(session, found.tenant, utc_day(now))
            limit = self.limits_for(found.tenant).max_stored_output_bytes
            kept, dropped = accounting.fit_outputs(files, limit - quota.stored_output_bytes)
            verdict = accounting.with_dropped_outputs(verdict, dropped, quota.stored_output_bytes, limit)
            moved = connection.execute(
                statements.VERDICT, statements.transition(key, verdict.status, **self._verdict_values(verdict, now))
            ).first()
            if moved is None:
                return False
            if kept:
                connection.execute(
                    statements.INSERT_FILE,
                    [dict(execution_key=key, path=f.path, size=f.size, sha256=f.sha256) for f in kept],
                )
            quota.stored_output_bytes += sum(stored.size for stored in kept)
            # A debit of an earlier day is settled against that day, which is over.
            if quota.day == moved.debit_day:
                if verdict.cpu_seconds is not None:
                    quota.cpu_seconds_debited += max(0.0, verdict.cpu_seconds) - moved.cpu_debit
                used = accounting.slot_seconds_used(moved.slot_at_ms, bool(moved.spawner), now)
                quota.slot_seconds_debited += used - moved.slot_debit
            ledger.save(session, quota)
            return True

    @staticmethod
    def _verdict_values(verdict: Verdict, now: int) -> dict[str, object]:
        """The columns a verdict sets (a preview or report it lacks keeps
        what the row has)."""
        values: dict[str, object] = dict(
            error_code=verdict.error_code,
            error_message=verdict.error_message,
            exit_code=verdict.exit_code,
            finished_at_ms=now,
        )
        for name in ("usage_json", "steps_json", "dropped_json", "stdout_preview", "stderr_preview"):
            if getattr(verdict, name) is not None:
                values[name] = getattr(verdict, name)
        if verdict.stdout_preview is not None:
            values["stdout_truncated"] = verdict.stdout_truncated
        if verdict.stderr_preview is not None:
            values["stderr_truncated"] = verdict.stderr_truncated
        return values

    def discard(self, key: str) -> bool:
        """Removes an execution that never started (the spawner refused it,
        or it waited in the queue until its deadline) and returns its debits:
        as if it had never been requested. Rows that belong to the execution
        in other tables (a run's) are deleted with it by their foreign keys
        (ON DELETE CASCADE)."""
        with self.db.write() as session:
            row = session.get(ExecutionRow, key)
            if row is None or row.status != QUEUED:
                return False
            quota = ledger.lock(session, row.tenant, utc_day(self.clock()))
            row = session.get(ExecutionRow, key, populate_existing=True)
            if row is None or row.status != QUEUED:
                return False
            deleted = rows_changed(
                session, sa.delete(ExecutionRow).where(col(ExecutionRow.key) == key, col(ExecutionRow.status) == QUEUED)
            )
            if deleted != 1:
                return False
            quota.stored_executions -= 1
            if quota.day == row.debit_day:
                quota.cpu_seconds_debited -= row.cpu_debit
                quota.slot_seconds_debited -= row.slot_debit
            ledger.save(session, quota)
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
        timeout_grace = col(ExecutionRow.timeout_ms) * HEARTBEAT_GRACE_FACTOR
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
            return statements.files_of(session.connection(), key)

    def finished(self, key: str) -> tuple[ExecutionRow, list[StoredFile]] | None:
        """The record as stored and its output files, in one read."""
        with self.db.read() as session:
            row = session.get(ExecutionRow, key)
            return None if row is None else (row, statements.files_of(session.connection(), key))

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
            return set(session.exec(select(OutputFileRow.sha256).where(col(OutputFileRow.sha256).in_(list(digests)))))

    def live_in_group(self, tenant: str, group_id: str) -> list[ExecutionRow]:
        with self.db.read() as session:
            return list(
                session.exec(
                    select(ExecutionRow).where(
                        ExecutionRow.tenant == tenant,
                        ExecutionRow.group_id == group_id,
                        col(ExecutionRow.status).in_(states.NONTERMINAL),
                    )
                )
            )

    def list(
        self,
        tenant: str,
        *,
        statuses: Sequence[str] = (),
        group_id: str = "",
        session_id: str = "",
        page: PageRequest = FIRST_PAGE,
    ) -> tuple[list[ExecutionRow], str]:
        """Newest first; returns the page and the token of the next one ("" at the end)."""
        query = select(ExecutionRow).where(ExecutionRow.tenant == tenant)
        if statuses:
            query = query.where(col(ExecutionRow.status).in_(list(statuses)))
        if group_id:
            query = query.where(ExecutionRow.group_id == group_id)
        if session_id:
            query = query.where(ExecutionRow.session_id == session_id)
        query = newest_first(query, col(ExecutionRow.created_at_ms), col(ExecutionRow.key), page)
        with self.db.read() as session:
            rows = list(session.exec(query))
        return cut(rows, page, lambda row: Position(row.created_at_ms, row.key))
