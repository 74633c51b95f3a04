"""The retention sweeper: deletes finished executions once their retention
period is over, with their output file rows (their runs go with them by
their foreign keys, revision 0102), gives what they stored back to the
tenant's quota, and removes the blobs no row references any more. The
records of sessions that ended that long ago go too (their calls are
executions, and go by their own end).

One execution per transaction, one blob at a time: a failure for one item is
logged with its id, counted (`failures`), and the sweep goes on with the
next. A blob is removed only when no row references it and it has not been
written or reused for BLOB_GRACE_SECONDS: a finalize in flight may be about
to reference a blob it found already there (BlobStore.put_all renews such a
blob's time). The same rule, applied to every blob in the store, removes
blobs that a crash between writing a blob and committing its row left
behind.
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa
from sqlmodel import col, select

from services.common.periodic import Periodic
from services.control.blobs import BlobStore
from services.control.executions import states
from services.control.executions.models import ExecutionRow, OutputFileRow
from services.control.executions.store import ExecutionStore
from services.control.quotas import ledger
from services.control.sessions.models import OPEN, SessionRow

log = logging.getLogger(__name__)

MS_PER_SECOND = 1000
MS_PER_DAY = 86_400_000
# Executions read per query, and blobs checked per query.
BATCH = 200
# A blob written or reused this recently is never removed.
BLOB_GRACE_SECONDS = 3600


@dataclasses.dataclass
class Sweep:
    """What one sweep did."""

    executions: int = 0
    blobs: int = 0
    sessions: int = 0
    failures: int = 0


class RetentionSweeper:
    def __init__(self, store: ExecutionStore, blobs: BlobStore, *, retention_days: float, interval_seconds: float):
        self.store = store
        self.db = store.db
        self.blobs = blobs
        # 0 keeps executions for ever (blobs no row references still go).
        self.retention_ms = int(retention_days * MS_PER_DAY)
        # Items that failed, over the sweeper's life.
        self.failures = 0
        self._thread = Periodic("control-retention", interval_seconds, self.sweep, log)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def sweep(self) -> Sweep:
        """Deletes every expired execution, then every blob nobody references."""
        done = Sweep()
        if self.retention_ms:
            self._sweep_executions(self.store.clock() - self.retention_ms, done)
            self._sweep_sessions(self.store.clock() - self.retention_ms, done)
        self._sweep_blobs(self.blobs.all(), done)
        self.failures += done.failures
        if done.executions or done.blobs or done.sessions or done.failures:
            log.info(
                "retention sweep: %d executions, %d sessions and %d blobs deleted, %d failures",
                done.executions,
                done.sessions,
                done.blobs,
                done.failures,
            )
        return done

    # ---- executions --------------------------------------------------------

    def _sweep_executions(self, cutoff_ms: int, done: Sweep) -> None:
        after: tuple[int, str] = (0, "")
        while True:
            page = self._expired(cutoff_ms, after)
            for _finished, key in page:
                try:
                    digests = self._delete(key, cutoff_ms)
                except Exception:  # one execution must not stop the sweep
                    log.exception("retention: deleting execution %s failed", key)
                    done.failures += 1
                    continue
                if digests is not None:
                    done.executions += 1
                    self._sweep_blobs(digests, done)
            if len(page) < BATCH:
                return
            after = page[-1]

    def _expired(self, cutoff_ms: int, after: tuple[int, str]) -> list[tuple[int, str]]:
        """The next page of finished executions older than the cutoff, in
        (finished, key) order after `after` (failed ones are not read again)."""
        finished, key = col(ExecutionRow.finished_at_ms), col(ExecutionRow.key)
        with self.db.read() as session:
            rows = session.execute(
                select(finished, key)
                .where(
                    finished > 0,
                    finished < cutoff_ms,
                    col(ExecutionRow.status).in_(states.TERMINAL),
                    sa.tuple_(finished, key) > sa.tuple_(*after),
                )
                .order_by(finished, key)
                .limit(BATCH)
            ).all()
        return [(row[0], row[1]) for row in rows]

    def _delete(self, key: str, cutoff_ms: int) -> list[str] | None:
        """Deletes one expired execution and its file rows in one transaction;
        returns the digests of its files (None when it is no longer there
        or no longer expired)."""
        with self.db.write() as session:
            row = session.get(ExecutionRow, key)
            if row is None:
                return None
            quota = ledger.lock(session, row.tenant, ledger.utc_day(self.store.clock()))
            row = session.get(ExecutionRow, key, populate_existing=True)
            if row is None or row.status not in states.TERMINAL or not 0 < row.finished_at_ms < cutoff_ms:
                return None
            files = list(session.exec(select(OutputFileRow).where(OutputFileRow.execution_key == key)))
            session.execute(sa.delete(OutputFileRow).where(col(OutputFileRow.execution_key) == key))
            session.execute(sa.delete(ExecutionRow).where(col(ExecutionRow.key) == key))
            quota.stored_executions -= 1
            quota.stored_output_bytes -= sum(f.size for f in files)
            ledger.save(session, quota)
            return [f.sha256 for f in files]

    # ---- sessions --------------------------------------------------------------

    def _sweep_sessions(self, cutoff_ms: int, done: Sweep) -> None:
        """Deletes the records of sessions that ended before the cutoff, a
        batch per transaction."""
        ended = col(SessionRow.ended_at_ms)
        while True:
            try:
                with self.db.write() as session:
                    keys = list(
                        session.exec(
                            select(SessionRow.key)
                            .where(col(SessionRow.status) != OPEN, ended > 0, ended < cutoff_ms)
                            .limit(BATCH)
                        )
                    )
                    session.execute(sa.delete(SessionRow).where(col(SessionRow.key).in_(keys)))
            except Exception:  # the executions and blobs are still swept
                log.exception("retention: deleting ended sessions failed")
                done.failures += 1
                return
            done.sessions += len(keys)
            if len(keys) < BATCH:
                return

    # ---- blobs ---------------------------------------------------------------

    def _sweep_blobs(self, digests: list[str], done: Sweep) -> None:
        """Removes those of `digests` no row references that are older than
        the grace."""
        newest_ms = self.store.clock() - BLOB_GRACE_SECONDS * MS_PER_SECOND
        for start in range(0, len(digests), BATCH):
            chunk = sorted(set(digests[start : start + BATCH]))
            try:
                used = self.store.referenced(chunk)
            except Exception:  # the next chunk may still be read
                log.exception("retention: looking up %d blobs failed", len(chunk))
                done.failures += 1
                continue
            for digest in chunk:
                if digest in used:
                    continue
                try:
                    modified = self.blobs.modified_at(digest)
                    if modified is None or modified * MS_PER_SECOND > newest_ms:
                        continue
                    self.blobs.remove([digest])
                except Exception:  # one blob must not stop the sweep
                    log.exception("retention: removing blob %s failed", digest)
                    done.failures += 1
                    continue
                done.blobs += 1
