"""The sessions' records: admission (one tenant's open sessions are bounded),
the moves open -> closed | expired | failed (conditional, the first wins),
and the reads, each scoped to the tenant."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services.control.db import Database
from services.control.errors import AlreadyExists, LimitExceeded, NotFound
from services.control.executions.models import ExecutionRow
from services.control.pagination import PageRequest, Position, cut, newest_first
from services.control.quotas import ledger
from services.control.sessions.models import EXPIRED, OPEN, SessionRow


class SessionStore:
    def __init__(self, db: Database, clock: Callable[[], int]):
        self.db = db
        self.clock = clock

    def insert(self, row: SessionRow, max_open: int) -> None:
        """Records an open session; AlreadyExists for a taken id,
        LimitExceeded past `max_open` open sessions of the tenant."""
        with self.db.write() as session:
            if self._find(session, row.tenant, row.session_id) is not None:
                raise AlreadyExists(f"session_id: {row.session_id!r} already exists")
            open_now = session.exec(
                select(sa.func.count())
                .select_from(SessionRow)
                .where(SessionRow.tenant == row.tenant, SessionRow.status == OPEN)
            ).one()
            if open_now >= max_open:
                raise LimitExceeded("open sessions", f"at most {max_open} open sessions at once")
            session.add(row)
            try:
                session.flush()
            except sa.exc.IntegrityError:
                raise AlreadyExists(f"session_id: {row.session_id!r} already exists") from None

    def taken(self, tenant: str, session_id: str) -> bool:
        with self.db.read() as session:
            return self._find(session, tenant, session_id) is not None

    def get(self, tenant: str, session_id: str) -> SessionRow:
        """The tenant's session, brought up to date (an open one past its
        expiry is recorded expired first); NotFound otherwise."""
        with self.db.read() as session:
            row = self._find(session, tenant, session_id)
        if row is None:
            raise NotFound(f"session_id: no session {session_id!r}")
        return self._expire_if_due(row)

    def list(self, tenant: str, open_only: bool, page: PageRequest) -> tuple[list[SessionRow], str]:
        query = select(SessionRow).where(SessionRow.tenant == tenant)
        if open_only:
            query = query.where(SessionRow.status == OPEN)
        query = newest_first(query, col(SessionRow.created_at_ms), col(SessionRow.key), page)
        with self.db.read() as session:
            rows = list(session.exec(query))
        rows = [self._expire_if_due(row) for row in rows]
        rows, token = cut(rows, page, lambda row: Position(row.created_at_ms, row.key))
        # One that expired as it was read is no longer open (the page's token stands).
        return [row for row in rows if not open_only or row.status == OPEN], token

    def used(self, key: str, calls: int = 0, transaction: Session | None = None) -> None:
        """A call started (calls=1) or ended: the idle timeout counts from
        now. In `transaction` when given (the call's admission)."""
        update = (
            sa.update(SessionRow)
            .where(col(SessionRow.key) == key)
            .values(last_used_at_ms=self.clock(), calls=SessionRow.calls + calls)
        )
        if transaction is not None:
            transaction.connection().execute(update)
            return
        with self.db.write() as session:
            session.connection().execute(update)

    def restarted(self, key: str) -> None:
        """A fresh interpreter was started (a restart, or after a crash)."""
        with self.db.write() as session:
            session.connection().execute(
                sa.update(SessionRow).where(col(SessionRow.key) == key).values(restarts=SessionRow.restarts + 1)
            )

    def end(self, key: str, status: str, reason: str, at_ms: int | None = None) -> bool:
        """Moves an open session to `status` and charges the time it held
        its slot between calls to the tenant's slot-time budget (each call
        is charged as an execution); False if it had ended."""
        ended_at = at_ms or self.clock()
        with self.db.write() as session:
            connection = session.connection()
            result = connection.execute(
                sa.update(SessionRow)
                .where(col(SessionRow.key) == key, col(SessionRow.status) == OPEN)
                .values(status=status, end_reason=reason, ended_at_ms=ended_at)
            )
            if result.rowcount != 1:
                return False
            row = session.get(SessionRow, key)
            if row is not None:
                in_calls_ms = connection.execute(
                    sa.select(
                        sa.func.coalesce(sa.func.sum(ExecutionRow.finished_at_ms - ExecutionRow.slot_at_ms), 0)
                    ).where(
                        col(ExecutionRow.tenant) == row.tenant,
                        col(ExecutionRow.session_id) == row.session_id,
                        col(ExecutionRow.slot_at_ms) > 0,
                        col(ExecutionRow.finished_at_ms) > 0,
                    )
                ).scalar_one()
                held_ms = max(0, ended_at - row.created_at_ms - int(in_calls_ms))
                quota = ledger.lock(session, row.tenant, ledger.utc_day(self.clock()))
                quota.slot_seconds_debited += held_ms / ledger.MS_PER_SECOND
                ledger.save(session, quota)
            return True

    def by_key(self, key: str) -> SessionRow | None:
        with self.db.read() as session:
            return session.get(SessionRow, key)

    @staticmethod
    def _find(session, tenant: str, session_id: str) -> SessionRow | None:
        query = select(SessionRow).where(SessionRow.tenant == tenant, SessionRow.session_id == session_id)
        return session.exec(query).first()

    def _expire_if_due(self, row: SessionRow) -> SessionRow:
        due = expires_at_ms(row)
        if row.status != OPEN or self.clock() < due:
            return row
        reason = "idle timeout" if due < row.created_at_ms + row.lifetime_seconds * 1000 else "maximum lifetime"
        self.end(row.key, EXPIRED, f"{reason} reached", at_ms=due)
        return self.by_key(row.key) or row


def expires_at_ms(row: SessionRow) -> int:
    """When an open session ends unless used: its idle timeout after its last
    use, at the latest its maximum lifetime after it was made."""
    return min(row.last_used_at_ms + row.idle_seconds * 1000, row.created_at_ms + row.lifetime_seconds * 1000)
