"""Files of an open session (docs/sessions.md, "Files of an open session"):
control checks the request and the session (the tenant's, open), then relays
it to the session's spawner, which reads and writes the workspace without
ever following a link (services/spawner/sessions/files.py). They work
between calls and during one; they do not count as use (the idle timeout
runs on from the last call, as on the spawner's own timer)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import grpc

from sandbox.control.v1 import control_pb2 as pb
from sandbox.spawner.v1 import spawner_pb2 as spb
from services.common.contract.errors import InvalidArgument
from services.common.contract.limits import RequestLimits
from services.common.contract.session_files import check_content, check_directory, check_file_path
from services.control.errors import FailedPrecondition, LimitExceeded, NotFound, Unavailable
from services.control.sessions.models import OPEN, SessionRow
from services.control.sessions.store import SessionStore
from services.control.spawners import Spawner, SpawnerPool

# A put or a listing; a get's stream as a whole (a file is at most the
# workspace's size).
FILE_TIMEOUT_SECONDS = 60.0
GET_TIMEOUT_SECONDS = 600.0
GONE = "the session's sandbox is gone"


class SessionFiles:
    def __init__(
        self,
        sessions: SessionStore,
        pool: SpawnerPool,
        limits: RequestLimits,
        fail: Callable[[SessionRow, str], None],
    ):
        self.sessions = sessions
        self.pool = pool
        self.limits = limits
        self.fail = fail  # records the session failed and closes it on its spawner

    def put(self, tenant: str, request: pb.PutSessionFileRequest) -> pb.SessionFile:
        check_file_path(request.path, self.limits)  # the spawner names it inside
        content = check_content(request.content, self.limits)
        row, spawner = self._open(tenant, request.session_id)
        try:
            written = spawner.stub.PutSessionFile(
                spb.PutSessionFileRequest(session_key=row.key, tenant=tenant, path=request.path, content=content),
                timeout=FILE_TIMEOUT_SECONDS,
            )
        except grpc.RpcError as exc:
            raise self._refusal(exc, row) from None
        return pb.SessionFile(path=written.path, size=written.size)

    def get(self, tenant: str, request: pb.GetSessionFileRequest) -> Iterator[pb.OutputFileChunk]:
        """The file in chunks; the last one carries the sha256 of all that
        was sent. A generator: every refusal comes before the first chunk."""
        check_file_path(request.path, self.limits)
        row, spawner = self._open(tenant, request.session_id)
        call = spawner.stub.GetSessionFile(
            spb.GetSessionFileRequest(session_key=row.key, tenant=tenant, path=request.path),
            timeout=GET_TIMEOUT_SECONDS,
        )
        digest = hashlib.sha256()
        held: pb.OutputFileChunk | None = None
        try:
            for chunk in call:
                if held is not None:
                    yield held
                digest.update(chunk.data)
                held = pb.OutputFileChunk(data=chunk.data, offset=chunk.offset, size=chunk.size)
        except grpc.RpcError as exc:
            raise self._refusal(exc, row) from None
        finally:
            call.cancel()
        if held is None:
            raise Unavailable("the session's spawner sent nothing for the file; retry")
        held.sha256 = digest.hexdigest()
        yield held

    def list(self, tenant: str, request: pb.ListSessionFilesRequest) -> pb.ListSessionFilesResponse:
        check_directory(request.directory, self.limits)
        row, spawner = self._open(tenant, request.session_id)
        try:
            found = spawner.stub.ListSessionFiles(
                spb.ListSessionFilesRequest(session_key=row.key, tenant=tenant, directory=request.directory),
                timeout=FILE_TIMEOUT_SECONDS,
            )
        except grpc.RpcError as exc:
            raise self._refusal(exc, row) from None
        return pb.ListSessionFilesResponse(
            files=[pb.SessionFile(path=f.path, size=f.size) for f in found.files], truncated=found.truncated
        )

    def _open(self, tenant: str, session_id: str) -> tuple[SessionRow, Spawner]:
        """The tenant's open session and its spawner (NotFound for another
        tenant's, FailedPrecondition once it ended)."""
        row = self.sessions.get(tenant, session_id)
        if row.status != OPEN:
            raise FailedPrecondition(
                "session_id", f"the session has ended ({row.status}: {row.end_reason})", kind="SESSION_STATE"
            )
        spawner = self.pool.by_address(row.spawner)
        if spawner is None:
            self.fail(row, "its spawner is no longer one of control's")
            raise FailedPrecondition("session_id", "the session has ended (failed)", kind="SESSION_STATE")
        return row, spawner

    def _refusal(self, exc: grpc.RpcError, row: SessionRow) -> Exception:
        """The spawner's refusal as control's own error. Its messages name
        the field at fault first ("path: ..."); a NOT_FOUND naming no file
        means the session is no longer there."""
        code, details = exc.code(), exc.details() or ""
        field, _, description = details.partition(": ")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArgument(field or "path", description or details)
        if code == grpc.StatusCode.NOT_FOUND and field in ("path", "directory"):
            return NotFound(details)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return LimitExceeded(field or "content", details)
        if code == grpc.StatusCode.NOT_FOUND:
            self.fail(row, "its sandbox is no longer on its spawner")
            return FailedPrecondition("session_id", f"the session has ended ({GONE})", kind="SESSION_STATE")
        return Unavailable(f"the session's spawner did not answer ({code.name}); retry")
