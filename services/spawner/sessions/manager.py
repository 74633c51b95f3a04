"""The spawner's open sessions: made with an execution's hardening (the
same Provisioner, host config, seccomp profile, cgroup parent and workspace
code paths), one tenant each, each holding one slot until it ends; ended at
close, at their idle timeout or maximum lifetime (a sweeper thread), and at
shutdown. Nothing is durable: a restarted spawner's reaper removes what a
crashed one left, as for executions (docs/sessions.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sandbox.common.v1 import session_pb2 as cells
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.common.channel import EventChannel
from services.common.contract.runtimes import runtime_name
from services.common.contract.sandbox_runtimes import GVISOR, RUNC
from services.spawner import sandbox
from services.spawner.config import SpawnerSettings
from services.spawner.errors import SessionExists, SessionNotFound, SessionNotStarted, SessionsUnavailable
from services.spawner.inflight import InFlight
from services.spawner.provision import PoolKey, Provisioner, Sandbox
from services.spawner.sessions.live import LiveSession
from services.spawner.sessions.spec import check_cell, check_session

log = logging.getLogger(__name__)

# How often expiry is looked for.
SWEEP_SECONDS = 0.5
# How long a session's interpreter may take to start.
START_TIMEOUT_MS = 60_000


class SessionManager:
    def __init__(
        self,
        settings: SpawnerSettings,
        provisioner: Provisioner,
        inflight: InFlight,
        take_warm: Callable[[PoolKey, sandbox.ContainerLimits], Sandbox | None],
        on_cleanup_failure: Callable[[str, Exception, str], None],
    ):
        self.settings = settings
        self.provisioner = provisioner
        self.inflight = inflight
        self.take_warm = take_warm
        self.on_cleanup_failure = on_cleanup_failure
        self._lock = threading.Condition()  # notified when a sandbox is no longer being made or removed
        self._sessions: dict[str, LiveSession] = {}
        self._making: dict[str, Sandbox] = {}  # token -> sandbox being made (owned, for the reaper)
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="session-sweeper", daemon=True)

    def start(self) -> None:
        self._sweeper.start()

    # ---- calls of the servicer ------------------------------------------------

    def create(self, request: pb.CreateSessionRequest) -> pb.CreateSessionResponse:
        spec = check_session(request, self.settings)
        if self.settings.handoff != "runner" or self.settings.default_runtime == GVISOR:
            raise SessionsUnavailable(
                "sessions need the runner hand-off on runc (SPAWNER_HANDOFF=runner, SPAWNER_DEFAULT_RUNTIME=runc)"
            )
        with self._lock:
            if spec.session_key in self._sessions:
                raise SessionExists()
        started = time.monotonic()
        self.inflight.hold()
        key = PoolKey(runtime_name(spec.language, spec.variant), False, RUNC)
        limits = sandbox.ContainerLimits(spec.memory_bytes, spec.cpus)
        box = self.take_warm(key, limits)
        if box is None:
            box = self.provisioner.plan(key, limits, owner=spec.session_key)
        with self._lock:
            self._making[box.token] = box
        session = LiveSession(spec, box, self.settings.max_output_bytes, self._ended)
        try:
            if box.container is None:
                self.provisioner.make_workspace(box)
                labels = {sandbox.LABEL_EXECUTION: spec.session_key, sandbox.LABEL_TENANT: spec.tenant}
                self.provisioner.start(box, labels)
            box.workspace.stage((), b"")
            if spec.language == "python" and session.run_now("", START_TIMEOUT_MS).status != cells.CELL_STATUS_OK:
                raise SessionNotStarted()
            with self._lock:
                if spec.session_key in self._sessions:
                    raise SessionExists()
                self._sessions[spec.session_key] = session
        except BaseException:
            session.ended_reason = "it did not start"
            self._ended(session)
            raise
        finally:
            with self._lock:
                self._making.pop(box.token, None)
                self._lock.notify_all()
        log.info("session %s (tenant %s) open", spec.session_key, spec.tenant)
        return pb.CreateSessionResponse(start_ms=int((time.monotonic() - started) * 1000))

    def run(self, request: pb.RunCellRequest) -> EventChannel[cells.CellEvent]:
        session = self._find(request.session_key, request.tenant)
        code, timeout_ms = check_cell(request, self.settings, session.spec.language)
        return session.run(code, timeout_ms)

    def close(self, request: pb.CloseSessionRequest) -> bool:
        try:
            session = self._find(request.session_key, request.tenant)
        except SessionNotFound:
            return False
        return session.end("closed by the caller")

    def interrupt(self, ref: pb.SessionRef) -> bool:
        return self._find(ref.session_key, ref.tenant).interrupt()

    def restart(self, ref: pb.SessionRef) -> pb.RestartSessionResponse:
        session = self._find(ref.session_key, ref.tenant)
        return pb.RestartSessionResponse(start_ms=session.restart())

    def listing(self) -> pb.ListSessionsResponse:
        """The sessions open here (control marks the others ended)."""
        with self._lock:
            open_now = list(self._sessions.values())
        return pb.ListSessionsResponse(
            sessions=[pb.SessionRef(session_key=s.spec.session_key, tenant=s.spec.tenant) for s in open_now]
        )

    # ---- the spawner's ----------------------------------------------------------

    def tokens(self) -> set[str]:
        """Tokens of the sandboxes of open sessions and of those being made."""
        with self._lock:
            return {s.token for s in self._sessions.values()} | set(self._making)

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def shutdown(self, wait_seconds: float = 30.0) -> None:
        """Ends every session, and waits for sandboxes being made or removed
        (by an expiry, say) to be gone."""
        self._stop.set()
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.end("the spawner is shutting down")
        with self._lock:
            self._lock.wait_for(lambda: not self._making, wait_seconds)

    def _find(self, session_key: str, tenant: str) -> LiveSession:
        with self._lock:
            session = self._sessions.get(session_key)
        if session is None or session.spec.tenant != tenant:
            raise SessionNotFound()
        return session

    def _ended(self, session: LiveSession) -> None:
        """Destroys the session's sandbox and frees its slot (once)."""
        with self._lock:
            if self._sessions.get(session.spec.session_key) is session:
                del self._sessions[session.spec.session_key]
            self._making[session.token] = session.box  # owned until removed

        def failed(what: str, exc: Exception) -> None:
            self.on_cleanup_failure(what, exc, session.spec.session_key)

        try:
            try:
                self.provisioner.stop(session.box, failed)
            finally:
                self.inflight.unhold()  # its sandbox is dead: the slot is free, as an execution's with its result
            self.provisioner.remove(session.box, failed)
        finally:
            with self._lock:
                self._making.pop(session.token, None)
                self._lock.notify_all()
        log.info("session %s ended: %s", session.spec.session_key, session.ended_reason)

    def _sweep_forever(self) -> None:
        while not self._stop.wait(SWEEP_SECONDS):
            now = time.monotonic()
            with self._lock:
                sessions = list(self._sessions.values())
            for session in sessions:
                reason = session.expired(now)
                if reason:
                    try:
                        session.end(reason)
                    except Exception as exc:
                        self.on_cleanup_failure("session", exc, session.spec.session_key)
