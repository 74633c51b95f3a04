"""The spawner's open sessions: made with an execution's hardening (the
same Provisioner, host config, seccomp profile, cgroup parent and workspace
code paths), one tenant each, each holding one slot until it ends; ended at
close, at their idle timeout or maximum lifetime (a sweeper thread), and at
shutdown. Nothing is durable: a restarted spawner's reaper removes what a
crashed one left, as for executions (docs/sessions.md)."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from sandbox.common.v1 import session_pb2 as cells
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.common.channel import EventChannel
from services.common.contract.runtimes import runtime_name
from services.common.contract.sandbox_runtimes import GVISOR, RUNC
from services.common.contract.session_files import check_content, check_directory, check_file_path, shown_path
from services.spawner import sandbox
from services.spawner.config import SpawnerSettings
from services.spawner.errors import (
    FileNotFound,
    NetworkUnavailable,
    SessionEnded,
    SessionExists,
    SessionNotFound,
    SessionNotStarted,
    SessionsUnavailable,
)
from services.spawner.inflight import InFlight
from services.spawner.provision import PoolKey, Provisioner, Sandbox
from services.spawner.sessions import files, packages
from services.spawner.sessions.live import LiveSession
from services.spawner.sessions.spec import check_cell, check_session

log = logging.getLogger(__name__)
T = TypeVar("T")

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
        if spec.packages:
            if self.provisioner.network is None:
                raise NetworkUnavailable("packages")
            self.provisioner.network.require()  # refused at once while the egress does not answer
        with self._lock:
            if spec.session_key in self._sessions:
                raise SessionExists()
        started = time.monotonic()
        install_ms = 0
        self.inflight.hold()
        # A sandbox with packages is on an egress network of its own, which
        # answers it only while its installer runs (sessions/packages.py).
        key = PoolKey(runtime_name(spec.language, spec.variant), bool(spec.packages), RUNC)
        limits = sandbox.ContainerLimits(spec.memory_bytes, spec.cpus)
        # An interpreter started ahead serves a session without packages
        # (installed ones must be there before the interpreter starts).
        box = None
        if spec.language == "python" and not spec.packages:
            box = self.take_warm(dataclasses.replace(key, session=True), limits)
        interpreter_started = box is not None
        box = box or self.take_warm(key, limits)
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
            box.workspace.stage(spec.files, b"")
            if spec.packages:
                install_ms = packages.install(spec, box, self.provisioner, self.settings)
            starts_here = spec.language == "python" and not interpreter_started
            if starts_here and session.run_now("", START_TIMEOUT_MS).status != cells.CELL_STATUS_OK:
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
        return pb.CreateSessionResponse(start_ms=int((time.monotonic() - started) * 1000), install_ms=install_ms)

    def run(self, request: pb.RunCellRequest) -> EventChannel[cells.CellEvent]:
        session = self._find(request.session_key, request.tenant)
        code, timeout_ms = check_cell(request, self.settings, session.spec.language)
        return session.run(code, timeout_ms)

    # ---- files of an open session (sessions/files.py) ---------------------------

    def put_file(self, request: pb.PutSessionFileRequest) -> pb.SessionFile:
        limits = self.settings.limits
        path = check_file_path(request.path, limits)
        content = check_content(request.content, limits)
        session = self._find(request.session_key, request.tenant)
        size = _in_workspace(session, lambda root: files.put(root, path, content))
        return pb.SessionFile(path=shown_path(path), size=size)

    def get_file(self, request: pb.GetSessionFileRequest) -> Iterator[pb.SessionFileChunk]:
        """The file's chunks; a generator, so nothing is opened until the
        caller reads (and every refusal comes before the first chunk)."""
        path = check_file_path(request.path, self.settings.limits)
        session = self._find(request.session_key, request.tenant)
        most = self.settings.max_workspace_bytes
        fd, size = _in_workspace(session, lambda root: files.open_file(root, path, most))
        if size == 0:
            os.close(fd)
            yield pb.SessionFileChunk(size=0)
            return
        for offset, data in files.read_chunks(fd, size):
            yield pb.SessionFileChunk(data=data, offset=offset, size=size)

    def list_files(self, request: pb.ListSessionFilesRequest) -> pb.ListSessionFilesResponse:
        max_length = self.settings.limits.max_path_length
        directory = check_directory(request.directory, self.settings.limits)
        session = self._find(request.session_key, request.tenant)
        found, truncated = _in_workspace(session, lambda root: files.list_files(root, directory, max_length))
        return pb.ListSessionFilesResponse(
            files=[pb.SessionFile(path=shown_path(path), size=size) for path, size in found], truncated=truncated
        )

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


def _in_workspace(session: LiveSession, work: Callable[[str], T]) -> T:
    """`work` on the session's workspace; SessionEnded when the session
    ended before or while it ran (its workspace is gone)."""
    if session.ended_reason:
        raise SessionEnded(session.ended_reason)
    try:
        return work(str(session.box.workspace.path))
    except (OSError, FileNotFound):
        if session.ended_reason:
            raise SessionEnded(session.ended_reason) from None
        raise
