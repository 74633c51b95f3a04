"""Interrupting a session's running call (CancelExecution of the call) and
restarting its interpreter (RestartSession), on the session's spawner
(docs/sessions.md). Mixed into SessionService (service.py)."""

from __future__ import annotations

import logging
import time

import grpc

from sandbox.control.v1 import control_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.control.errors import FailedPrecondition, NotFound, Unavailable
from services.control.executions.models import ExecutionRow
from services.control.sessions.interrupts import RunningCalls
from services.control.sessions.models import OPEN, SessionRow
from services.control.sessions.store import SessionStore
from services.control.spawners import Spawner, SpawnerPool

log = logging.getLogger(__name__)

INTERRUPT_TIMEOUT_SECONDS = 5.0
# The spawner waits up to 20 s for an interrupted call to end, then starts
# the fresh interpreter (about 1 s, at most a minute).
RESTART_TIMEOUT_SECONDS = 120.0
# A cancel that reaches the spawner before the call does is sent again, this
# often, while this process still relays the call, for up to this long.
INTERRUPT_RETRY_SECONDS = 0.1
INTERRUPT_RETRY_FOR_SECONDS = 2.0


class SessionOps:
    sessions: SessionStore
    pool: SpawnerPool
    running: RunningCalls

    def get(self, tenant: str, session_id: str) -> pb.Session:
        raise NotImplementedError

    def _fail(self, row: SessionRow, reason: str) -> None:
        raise NotImplementedError

    def restart(self, tenant: str, session_id: str) -> pb.Session:
        """A fresh interpreter in the session's sandbox, files kept; a call
        running through this process is interrupted first and recorded
        CANCELLED."""
        row = self.sessions.get(tenant, session_id)
        spawner = self._open_spawner(row)
        call_key = self.running.running(row.key)
        if call_key:
            self.running.interrupt(call_key, "the session was restarted")
        try:
            spawner.stub.RestartSession(
                spb.SessionRef(session_key=row.key, tenant=row.tenant), timeout=RESTART_TIMEOUT_SECONDS
            )
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.NOT_FOUND:
                self._fail(row, "its sandbox went away")
                raise FailedPrecondition("session_id", "the session has ended (failed)", kind="SESSION_STATE") from None
            if code == grpc.StatusCode.FAILED_PRECONDITION:
                raise FailedPrecondition(
                    "session_id", "the running call did not stop; the session was not restarted", kind="SESSION_STATE"
                ) from None
            raise Unavailable(f"the session's interpreter could not be restarted ({code.name}); retry") from None
        self.sessions.restarted(row.key)
        log.info("session %s of tenant %s restarted", row.session_id, row.tenant)
        return self.get(tenant, session_id)

    def interrupt_call(self, call: ExecutionRow, reason: str) -> None:
        """Interrupts a session's running call (a cancel): the session goes
        on. The relay of this process records it CANCELLED; one of another
        replica records what the sandbox reported (KeyboardInterrupt)."""
        try:
            row = self.sessions.get(call.tenant, call.session_id)
        except NotFound:
            return
        spawner = self.pool.by_address(row.spawner)
        if row.status != OPEN or spawner is None:
            return
        self.running.interrupt(call.key, reason)
        deadline = time.monotonic() + INTERRUPT_RETRY_FOR_SECONDS
        first = True
        # Sent again only while this process still relays this very call, so
        # that a later call of the session is never the one interrupted.
        while first or (self.running.running(row.key) == call.key and time.monotonic() < deadline):
            first = False
            try:
                response = spawner.stub.InterruptCell(
                    spb.SessionRef(session_key=row.key, tenant=row.tenant), timeout=INTERRUPT_TIMEOUT_SECONDS
                )
            except grpc.RpcError as exc:
                log.warning("interrupting a call of session %s failed: %s", row.session_id, exc.code().name)
                return
            if response.interrupted:
                return
            time.sleep(INTERRUPT_RETRY_SECONDS)  # not running there yet: on its way

    def _open_spawner(self, row: SessionRow) -> Spawner:
        if row.status != OPEN:
            raise FailedPrecondition(
                "session_id", f"the session has ended ({row.status}: {row.end_reason})", kind="SESSION_STATE"
            )
        spawner = self.pool.by_address(row.spawner)
        if spawner is None:
            self._fail(row, "its spawner is no longer one of control's")
            raise FailedPrecondition("session_id", "the session has ended (failed)", kind="SESSION_STATE")
        return spawner
