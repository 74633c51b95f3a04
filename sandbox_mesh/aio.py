"""The client on grpc.aio: `execute` (an async iterator of events), `run`,
and the reads: `get_execution`, `list_executions`, `logs`, `quota`, `cancel`.
Same rules as sandbox_mesh.client: the Execute stream is retried on
UNAVAILABLE only before the execution was accepted. Each call is signed
here, as its metadata (grpc.aio interceptors cannot see the request on a
stream)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import grpc

from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from sandbox_mesh import config
from sandbox_mesh.calls import ATTEMPTS, BACKOFF_SECONDS, CALL_TIMEOUT_SECONDS, MAX_MESSAGE_BYTES
from sandbox_mesh.client import new_execution_id, status_values
from sandbox_mesh.errors import MeshError, mesh_error
from sandbox_mesh.events import Accepted, Event, Execution, Finished, Logs, Output, Quota, Result, event_of
from sandbox_mesh.request import build_request
from services.common.auth import tenant_headers
from services.common.tracing import outgoing_metadata

T = TypeVar("T")
CONTROL = "/sandbox.control.v1.Control/"
EXECUTE = CONTROL + "Execute"
GET_OUTPUT_FILE = CONTROL + "GetOutputFile"


class AsyncClient:
    def __init__(self, url: str, tenant: str, key: str | bytes | None):
        self.url = url
        self.tenant = tenant
        self._key = (key.encode() if isinstance(key, str) else key) or None
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        self._channel = grpc.aio.insecure_channel(url, options=options)
        self._stub = control_pb2_grpc.ControlStub(self._channel)

    @classmethod
    def from_env(cls, url: str | None = None, tenant: str | None = None, key: str | None = None) -> AsyncClient:
        connection = config.resolve(url, tenant, key)
        return cls(connection.url, connection.tenant, connection.key)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _metadata(self, method: str, request: Any) -> list[tuple[str, str]]:
        # The caller's current trace goes with the call (services/common/tracing.py).
        return tenant_headers(self.tenant, self._key, method, request) + outgoing_metadata()

    async def execute(
        self, files: Mapping[str, bytes | str], *, deadline: float | None = None, **options: Any
    ) -> AsyncIterator[Event]:
        """The execution's events; options as Client.execute's."""
        request = build_request(files, **options)
        request.execution_id = request.execution_id or new_execution_id()
        accepted = False
        for attempt in range(1, ATTEMPTS + 1):
            # Signed per attempt: a signature is good for one call.
            call = self._stub.Execute(request, timeout=deadline, metadata=self._metadata(EXECUTE, request))
            try:
                async for message in call:
                    event = event_of(message)
                    accepted = accepted or isinstance(event, Accepted)
                    yield event
                return
            except grpc.RpcError as error:
                retry = not accepted and attempt < ATTEMPTS
                if retry and error.code() == grpc.StatusCode.UNAVAILABLE:
                    await asyncio.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                    continue
                raise mesh_error(error) from None
            finally:
                call.cancel()

    async def run(self, files: Mapping[str, bytes | str], *, deadline: float | None = None, **options: Any) -> Result:
        out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        finished: Execution | None = None
        async for event in self.execute(files, deadline=deadline, **options):
            if isinstance(event, Output):
                out[event.stream].append(event.data)
            elif isinstance(event, Finished):
                finished = event.execution
        if finished is None:
            raise MeshError("UNKNOWN", "the stream ended without a finished record")
        files_out = {f.path: await self.output_file(finished.execution_id, f.path) for f in finished.output_files}
        return Result(finished, b"".join(out["stdout"]), b"".join(out["stderr"]), files_out)

    async def output_file(self, execution_id: str, path: str) -> bytes:
        request = pb.GetOutputFileRequest(execution_id=execution_id, path=path)
        metadata = self._metadata(GET_OUTPUT_FILE, request)
        chunks: list[bytes] = []
        expected = ""
        try:
            async for chunk in self._stub.GetOutputFile(request, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata):
                chunks.append(chunk.data)
                expected = chunk.sha256
        except grpc.RpcError as error:
            raise mesh_error(error) from None
        data = b"".join(chunks)
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise MeshError("DATA_LOSS", f"{path}: the bytes received do not match the stored sha256", "path")
        return data

    # ---- reads and cancels (repeatable: retried on UNAVAILABLE) -------------

    async def _unary(self, method: str, request: Any, call: Callable[..., Awaitable[T]]) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            # Signed per attempt: a signature is good for one call.
            metadata = self._metadata(CONTROL + method, request)
            try:
                return await call(request, timeout=CALL_TIMEOUT_SECONDS, metadata=metadata)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNAVAILABLE and attempt < ATTEMPTS:
                    await asyncio.sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
                    continue
                raise mesh_error(error) from None
        raise AssertionError("unreachable")

    async def get_execution(self, execution_id: str) -> Execution:
        request = pb.GetExecutionRequest(execution_id=execution_id)
        return Execution.of(await self._unary("GetExecution", request, self._stub.GetExecution))

    async def logs(self, execution_id: str) -> Logs:
        """The first bytes of stdout and stderr control keeps (see Logs)."""
        request = pb.GetExecutionRequest(execution_id=execution_id)
        return Logs.of(await self._unary("GetExecution", request, self._stub.GetExecution))

    async def list_executions(
        self, *, statuses: Iterable[str] = (), group_id: str = "", session_id: str = "", limit: int | None = 50
    ) -> list[Execution]:
        """Newest first; `statuses` by name ("RUNNING")."""
        found: list[Execution] = []
        token = ""
        while limit is None or len(found) < limit:
            page_size = min(500, limit - len(found)) if limit is not None else 500
            request = pb.ListExecutionsRequest(
                statuses=status_values(statuses),
                group_id=group_id,
                session_id=session_id,
                page_size=page_size,
                page_token=token,
            )
            response = await self._unary("ListExecutions", request, self._stub.ListExecutions)
            found.extend(Execution.of(m) for m in response.executions)
            token = response.next_page_token
            if not token:
                break
        return found[:limit]

    async def cancel(self, execution_id: str) -> tuple[bool, Execution]:
        """Whether it was cancelled now (False: it had finished), and the record."""
        request = pb.CancelExecutionRequest(execution_id=execution_id)
        response = await self._unary("CancelExecution", request, self._stub.CancelExecution)
        return response.cancelled, Execution.of(response.execution)

    async def quota(self) -> Quota:
        return Quota.of(await self._unary("GetQuota", pb.GetQuotaRequest(), self._stub.GetQuota))
