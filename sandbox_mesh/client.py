"""A typed client for control: `Client(url, tenant, key)` or
`Client.from_env()`, every call signed with the tenant's key.

An Execute stream is retried on UNAVAILABLE only until control accepted the
execution (its first event): before that nothing ran. The request carries an
execution id chosen here, so even a stream cut between control recording the
execution and its `accepted` reaching us cannot run it twice: the retry is
refused as ALREADY_EXISTS. After acceptance a failure is the caller's to see.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import grpc

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2_grpc, control_pb2_grpc
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh import config
from sandbox_mesh.artifacts import Artifacts
from sandbox_mesh.calls import (
    ATTEMPTS,
    BACKOFF_SECONDS,
    CALL_TIMEOUT_SECONDS,
    MAX_MESSAGE_BYTES,
    T,
    call_unary,
    checked_chunks,
    paged,
)
from sandbox_mesh.errors import MeshError, mesh_error
from sandbox_mesh.events import Accepted, Event, Execution, Finished, Logs, Output, Quota, Result, event_of
from sandbox_mesh.request import UsageError, build_request
from sandbox_mesh.session_records import SessionInfo, create_request, session_limits
from sandbox_mesh.sessions import Session
from services.common.auth import TenantClientInterceptor
from services.common.tracing import ClientTraceInterceptor

# Executions and sessions asked for per page.
EXECUTIONS_PAGE_SIZE = 500
SESSIONS_PAGE_SIZE = 500
# CreateSession starts a sandbox (and installs packages): it may take a while.
CREATE_SESSION_TIMEOUT_SECONDS = 300.0


def new_execution_id() -> str:
    return f"ex-{secrets.token_hex(12)}"


def status_values(names: Iterable[str]) -> list[Any]:
    """Status names ("running") as the enum; ValueError names an unknown one."""
    return [common.ExecutionStatus.Value(f"EXECUTION_STATUS_{name.upper()}") for name in names]


class ExecutionStream:
    """The events of one execution, in order; iterate once. After the last,
    `result` is the finished record. `cancel()` cancels the execution (once
    accepted) and stops the stream."""

    def __init__(
        self,
        stub: control_pb2_grpc.ControlStub,
        request: pb.ExecuteRequest,
        *,
        deadline: float | None,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF_SECONDS,
    ):
        self._stub = stub
        self.request = request
        self._deadline = deadline
        self._attempts = attempts
        self._backoff = backoff
        self._call: Any = None
        self.execution_id: str | None = None
        self.result: Execution | None = None

    def __iter__(self) -> Iterator[Event]:
        for attempt in range(1, self._attempts + 1):
            self._call = self._stub.Execute(self.request, timeout=self._deadline)
            try:
                for message in self._call:
                    event = event_of(message)
                    if isinstance(event, Accepted):
                        self.execution_id = event.execution_id
                    elif isinstance(event, Finished):
                        self.result = event.execution
                    yield event
                return
            except grpc.RpcError as error:
                retry = self.execution_id is None and attempt < self._attempts
                if retry and error.code() == grpc.StatusCode.UNAVAILABLE:
                    time.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                raise mesh_error(error) from None

    def cancel(self) -> bool:
        """Cancels the execution; True when control cancelled it (False:
        it had finished, or was never accepted)."""
        cancelled = False
        try:
            if self.execution_id is not None:
                response = self._stub.CancelExecution(
                    pb.CancelExecutionRequest(execution_id=self.execution_id), timeout=CALL_TIMEOUT_SECONDS
                )
                cancelled = response.cancelled
        except grpc.RpcError as error:
            raise mesh_error(error) from None
        finally:
            if self._call is not None:
                self._call.cancel()
        return cancelled


class Client:
    """Control's API for one tenant. Usable as a context manager."""

    def __init__(self, url: str, tenant: str, key: str | bytes | None, *, call_timeout: float = CALL_TIMEOUT_SECONDS):
        self.url = url
        self.tenant = tenant
        self.call_timeout = call_timeout
        secret = key.encode() if isinstance(key, str) else key
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        self._channel = grpc.insecure_channel(url, options=options)
        # Each call carries the caller's current trace (services/common/tracing.py).
        signed = grpc.intercept_channel(
            self._channel, ClientTraceInterceptor(), TenantClientInterceptor(tenant, secret or None)
        )
        self._stub = control_pb2_grpc.ControlStub(signed)
        # Artifacts and their runs: client.artifacts.create(...), .run(...).
        self.artifacts = Artifacts(artifacts_pb2_grpc.ArtifactsStub(signed), self._stub, call_timeout)

    @classmethod
    def from_env(cls, url: str | None = None, tenant: str | None = None, key: str | None = None) -> Client:
        """Arguments, else SANDBOX_URL, SANDBOX_TENANT and SANDBOX_KEY, else
        the defaults of a `make up` mesh (sandbox_mesh.config)."""
        connection = config.resolve(url, tenant, key)
        return cls(connection.url, connection.tenant, connection.key)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- executions ------------------------------------------------------

    def execute(
        self, files: Mapping[str, bytes | str], *, deadline: float | None = None, **options: Any
    ) -> ExecutionStream:
        """Starts an execution; iterate the returned stream for its events.
        `options` are build_request's: entry, language, args, pip, npm,
        timeout (s), memory, cpus, env, stdin, runtime, variant, group_id,
        execution_id. `deadline` (s) bounds the whole stream."""
        return self.execute_request(build_request(files, **options), deadline=deadline)

    def execute_request(self, request: pb.ExecuteRequest, *, deadline: float | None = None) -> ExecutionStream:
        prepared = pb.ExecuteRequest()
        prepared.CopyFrom(request)
        prepared.execution_id = request.execution_id or new_execution_id()
        return ExecutionStream(self._stub, prepared, deadline=deadline)

    def run(
        self,
        files: Mapping[str, bytes | str],
        *,
        deadline: float | None = None,
        fetch_files: bool = True,
        **options: Any,
    ) -> Result:
        """Runs to the end: everything printed, the record, the output files."""
        stream = self.execute(files, deadline=deadline, **options)
        return self.collect(stream, fetch_files=fetch_files)

    def collect(self, stream: ExecutionStream, *, fetch_files: bool = True) -> Result:
        out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        for event in stream:
            if isinstance(event, Output):
                out[event.stream].append(event.data)
        if stream.result is None:
            raise MeshError("UNKNOWN", "the stream ended without a finished record")
        execution = stream.result
        files = {f.path: self.output_file(execution.execution_id, f.path) for f in execution.output_files}
        return Result(execution, b"".join(out["stdout"]), b"".join(out["stderr"]), files if fetch_files else {})

    def get(self, execution_id: str) -> Execution:
        request = pb.GetExecutionRequest(execution_id=execution_id)
        return Execution.of(self._unary(lambda t: self._stub.GetExecution(request, timeout=t)))

    def executions(
        self, *, statuses: Iterable[str] = (), group_id: str = "", session_id: str = "", limit: int | None = 50
    ) -> Iterator[Execution]:
        """Newest first, page by page; `statuses` by name ("RUNNING")."""
        wanted = status_values(statuses)

        def page(size: int, token: str) -> tuple[Sequence[pb.Execution], str]:
            request = pb.ListExecutionsRequest(
                statuses=wanted, group_id=group_id, session_id=session_id, page_size=size, page_token=token
            )
            response = self._unary(lambda t: self._stub.ListExecutions(request, timeout=t))
            return response.executions, response.next_page_token

        return (Execution.of(message) for message in paged(page, limit, EXECUTIONS_PAGE_SIZE))

    def cancel(self, execution_id: str) -> tuple[bool, Execution]:
        """Whether it was cancelled now (False: it had finished), and the record."""
        request = pb.CancelExecutionRequest(execution_id=execution_id)
        response = self._unary(lambda t: self._stub.CancelExecution(request, timeout=t))
        return response.cancelled, Execution.of(response.execution)

    def logs(self, execution_id: str) -> Logs:
        """What control keeps of the execution's stdout and stderr: their
        first bytes (see Logs), not the whole output."""
        request = pb.GetExecutionRequest(execution_id=execution_id)
        return Logs.of(self._unary(lambda t: self._stub.GetExecution(request, timeout=t)))

    def cancel_group(self, group_id: str) -> list[str]:
        """Cancels every unfinished execution labelled `group_id`; their ids."""
        request = pb.CancelGroupRequest(group_id=group_id)
        response = self._unary(lambda t: self._stub.CancelGroup(request, timeout=t))
        return list(response.cancelled_execution_ids)

    def quota(self) -> Quota:
        return Quota.of(self._unary(lambda t: self._stub.GetQuota(pb.GetQuotaRequest(), timeout=t)))

    def output_chunks(self, execution_id: str, path: str) -> Iterator[bytes]:
        """One stored output file's bytes in chunks, its digest checked at the end."""
        request = pb.GetOutputFileRequest(execution_id=execution_id, path=path)
        return checked_chunks(self._stub.GetOutputFile(request, timeout=self.call_timeout * 10), path)

    def output_file(self, execution_id: str, path: str) -> bytes:
        return b"".join(self.output_chunks(execution_id, path))

    # ---- sessions (sandbox_mesh.sessions) ----------------------------------

    def session(
        self,
        language: str = "python",
        *,
        session_id: str | None = None,
        variant: str = "",
        limits: Mapping[str, Any] | common.Limits | None = None,
        packages: Sequence[str | Any] = (),
        files: Mapping[str, bytes | str] | None = None,
        idle_timeout_seconds: int = 0,
        max_lifetime_seconds: int = 0,
        allow_sdist: bool = False,
        allow_install_scripts: bool = False,
        **limit_values: Any,
    ) -> Session:
        """Opens a live session (CreateSession). Limits as a mapping or as
        keywords, by Client.run's names (timeout in seconds, memory as bytes
        or "256m", cpus) or the wire's (timeout_ms, memory_mb); timeout is
        each call's default. Packages as pip or npm spell them. 0 seconds:
        the mesh's defaults. A context manager: closed on exit."""
        if isinstance(limits, common.Limits):
            if limit_values:
                raise UsageError("limits", "either a Limits message or limit keywords, not both")
            limit_message = limits
        else:
            limit_message = session_limits({**(limits or {}), **limit_values})
        request = create_request(
            language,
            session_id=session_id,
            variant=variant,
            limits=limit_message,
            packages=packages,
            files=files,
            idle_timeout_seconds=idle_timeout_seconds,
            max_lifetime_seconds=max_lifetime_seconds,
            allow_sdist=allow_sdist,
            allow_install_scripts=allow_install_scripts,
        )
        # Not retried: a second CreateSession could open a second sandbox
        # (with a generated id) or be refused (a given one).
        try:
            created = self._stub.CreateSession(request, timeout=max(self.call_timeout, CREATE_SESSION_TIMEOUT_SECONDS))
        except grpc.RpcError as error:
            raise mesh_error(error) from None
        return self._session(SessionInfo.of(created))

    def attach_session(self, session_id: str) -> Session:
        """The open session `session_id` (GetSession); an ended one is a
        MeshError (FAILED_PRECONDITION, field session_id)."""
        info = self.get_session(session_id)
        if not info.open:
            reason = f": {info.end_reason}" if info.end_reason else ""
            raise MeshError(
                "FAILED_PRECONDITION", f"session {session_id} has ended ({info.status}{reason})", "session_id"
            )
        return self._session(info)

    def get_session(self, session_id: str) -> SessionInfo:
        request = pb.GetSessionRequest(session_id=session_id)
        return SessionInfo.of(self._unary(lambda t: self._stub.GetSession(request, timeout=t)))

    def sessions(self, open_only: bool = False, *, limit: int | None = None) -> list[SessionInfo]:
        """The tenant's sessions, newest first (every page unless `limit`)."""

        def page(size: int, token: str) -> tuple[Sequence[pb.Session], str]:
            request = pb.ListSessionsRequest(open_only=open_only, page_size=size, page_token=token)
            response = self._unary(lambda t: self._stub.ListSessions(request, timeout=t))
            return response.sessions, response.next_page_token

        return [SessionInfo.of(message) for message in paged(page, limit, SESSIONS_PAGE_SIZE)]

    def close_session(self, session_id: str) -> SessionInfo:
        request = pb.CloseSessionRequest(session_id=session_id)
        return SessionInfo.of(self._unary(lambda t: self._stub.CloseSession(request, timeout=t)))

    def _session(self, info: SessionInfo) -> Session:
        return Session(self._stub, info, call_timeout=self.call_timeout, new_execution_id=new_execution_id)

    def _unary(self, call: Callable[[float], T]) -> T:
        return call_unary(call, self.call_timeout)
