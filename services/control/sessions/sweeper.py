"""The session sweeper (docs/sessions.md): every few seconds, whether or not
anyone reads them, open sessions are brought up to date:

- one past its idle timeout or maximum lifetime is recorded EXPIRED at the
  moment it was due (its spawner destroys the sandbox on its own timer);
- one its spawner no longer holds (the spawner restarted, or lost the
  sandbox: ListSessions lacks it) is recorded FAILED; so are those of a
  spawner that has not answered for the grace period, or that is no longer
  one of control's.

Ending a session charges the time it held its slot and frees the tenant's
open-session slot (store.end, the same as a close). Several control
replicas may sweep at once: an end is conditional, the first one wins.

A session missing from its spawner close to its expiry is left to expire:
the spawner's clocks start when it made the sandbox (before control's
record), so it ends a session a little earlier than control would.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import grpc
from sqlmodel import col, select

from sandbox.spawner.v1 import spawner_pb2 as spb
from services.common.periodic import Periodic
from services.control.sessions.models import EXPIRED, FAILED, OPEN, SessionRow
from services.control.sessions.store import SessionStore, expires_at_ms
from services.control.spawners import SpawnerPool

log = logging.getLogger(__name__)

LIST_TIMEOUT_SECONDS = 3.0
# How close to its idle expiry, and to its maximum lifetime, a session
# missing from its spawner is taken for expired there (the spawner's idle
# clock runs a call's relay ahead of control's; its lifetime clock, the
# making of the sandbox: at most control's CreateSession timeout).
IDLE_SLACK_MS = 10_000
LIFETIME_SLACK_MS = 120_000
NOT_HELD = "its spawner no longer holds it (the spawner restarted, or its sandbox went away)"
NOT_OURS = "its spawner is no longer one of control's"


@dataclasses.dataclass
class SessionSweep:
    """What one sweep ended (session keys)."""

    expired: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)


def due(row: SessionRow, now_ms: int, busy: bool) -> tuple[int, str] | None:
    """When and why an open session expired (None: not yet). A call running
    through this process keeps it from its idle timeout, as on the spawner."""
    lifetime_end = row.created_at_ms + row.lifetime_seconds * 1000
    if now_ms >= lifetime_end:
        return lifetime_end, "maximum lifetime reached"
    at = expires_at_ms(row)
    if now_ms >= at and not busy:
        return at, "idle timeout reached"
    return None


def near_expiry(row: SessionRow, now_ms: int) -> bool:
    idle_end = row.last_used_at_ms + row.idle_seconds * 1000
    lifetime_end = row.created_at_ms + row.lifetime_seconds * 1000
    return now_ms >= idle_end - IDLE_SLACK_MS or now_ms >= lifetime_end - LIFETIME_SLACK_MS


class SessionSweeper:
    def __init__(
        self,
        store: SessionStore,
        pool: SpawnerPool,
        *,
        interval_seconds: float,
        spawner_grace_seconds: float,
        busy: Callable[[str], bool] = lambda key: False,
    ):
        self.store = store
        self.pool = pool
        self.grace_ms = int(spawner_grace_seconds * 1000)
        self.busy = busy
        self._silent_since: dict[str, int] = {}  # spawner -> when it first did not answer
        # The first sweep right away: what a restart finds ended is recorded at once.
        self._thread = Periodic("control-session-sweeper", interval_seconds, self.sweep, log)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()

    def sweep(self) -> SessionSweep:
        done = SessionSweep()
        now = self.store.clock()
        by_spawner: dict[str, list[SessionRow]] = {}
        for row in self._open_rows():
            expiry = due(row, now, self.busy(row.key))
            if expiry is not None:
                at, reason = expiry
                if self.store.end(row.key, EXPIRED, reason, at_ms=at):
                    done.expired.append(row.key)
                continue
            by_spawner.setdefault(row.spawner, []).append(row)
        for address, rows in by_spawner.items():
            for row, reason in self._lost(address, rows, now):
                if self.store.end(row.key, FAILED, reason):
                    log.warning("session %s of tenant %s failed: %s", row.session_id, row.tenant, reason)
                    done.failed.append(row.key)
        return done

    def _lost(self, address: str, rows: list[SessionRow], now: int) -> list[tuple[SessionRow, str]]:
        """The sessions of `rows` (open on the spawner at `address`) that are
        gone, and why."""
        spawner = self.pool.by_address(address)
        if spawner is None:
            return [(row, NOT_OURS) for row in rows]
        try:
            response = spawner.stub.ListSessions(spb.ListSessionsRequest(), timeout=LIST_TIMEOUT_SECONDS)
        except grpc.RpcError as exc:
            silent_since = self._silent_since.setdefault(address, now)
            log.info("ListSessions on spawner %s failed: %s", address, exc.code().name)
            if now - silent_since < self.grace_ms:
                return []
            reason = f"its spawner has not answered for {(now - silent_since) / 1000:.0f} s"
            return [(row, reason) for row in rows]
        self._silent_since.pop(address, None)
        held = {(ref.session_key, ref.tenant) for ref in response.sessions}
        return [(row, NOT_HELD) for row in rows if (row.key, row.tenant) not in held and not near_expiry(row, now)]

    def _open_rows(self) -> list[SessionRow]:
        with self.store.db.read() as session:
            return list(session.exec(select(SessionRow).where(col(SessionRow.status) == OPEN)))
