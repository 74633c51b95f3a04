"""Live sessions: a sandbox that keeps its interpreter, variables and files
across calls, like a code interpreter (docs/sessions.md).

    with client.session("python") as session:
        session.run("import math\\nx = 41")
        print(session.run("x + 1").text)  # 42

A call (RunCell) is retried on UNAVAILABLE only until control accepted it:
its execution id is chosen here, so a retry after control recorded the call
but before `accepted` reached us is refused rather than run twice. After
acceptance a failure is the caller's to see.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from sandbox_mesh.calls import ATTEMPTS, BACKOFF_SECONDS, T, call_unary, checked_chunks
from sandbox_mesh.errors import MeshError, mesh_error
from sandbox_mesh.session_records import (
    CellAccepted,
    CellEvent,
    CellFinished,
    CellOutcome,
    CellOutput,
    CellValue,
    SessionInfo,
    ValuePart,
)

# Called with ("stdout" | "stderr", bytes) or ("value", ValuePart) as they come.
OutputCallback = Callable[[str, "bytes | ValuePart"], None]


def cell_event_of(message: pb.CellEvent) -> CellEvent | cells.CellResult:
    """A CellEvent as a typed event; the result as its message (the stream
    adds what it gathered before making it a CellOutcome)."""
    which = message.WhichOneof("event")
    if which == "accepted":
        return CellAccepted(message.accepted.execution_id)
    if which == "stdout":
        return CellOutput("stdout", message.stdout)
    if which == "stderr":
        return CellOutput("stderr", message.stderr)
    if which == "value":
        return CellValue(ValuePart.of(message.value))
    if which == "result":
        return message.result
    raise ValueError(f"an event control does not send: {which!r}")


class CellStream:
    """The events of one call, in order: CellAccepted, CellOutput and
    CellValue as they happen, CellFinished last (then `outcome` is set).
    Iterate once. A KeyboardInterrupt while waiting leaves the stream
    readable: call `interrupt()` and go on iterating to get the outcome.
    (A thread reads the gRPC stream: a gRPC iterator cut by a signal cannot
    be read again, a queue can.)"""

    def __init__(
        self,
        stub: control_pb2_grpc.ControlStub,
        request: pb.RunCellRequest,
        *,
        deadline: float | None = None,
        cancel: Callable[[str], bool],
        on_end: Callable[[CellStream], None] | None = None,
        backoff: float = BACKOFF_SECONDS,
    ):
        self._stub = stub
        self.request = request
        self._deadline = deadline
        self._cancel = cancel
        self._on_end = on_end
        self._backoff = backoff
        self._call: Any = None
        self._messages: queue.SimpleQueue[tuple[str, Any]] | None = None
        self._attempt = 0
        self._done = False
        self._out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        self.execution_id: str | None = None
        self.outcome: CellOutcome | None = None

    def __iter__(self) -> Iterator[CellEvent]:
        return self

    def __next__(self) -> CellEvent:
        while not self._done:
            if self._messages is None:
                self._start()
            assert self._messages is not None
            kind, item = self._messages.get()
            if kind == "message":
                return self._event(item)
            if kind == "end":
                self._end()
                if self.outcome is None:
                    raise MeshError("UNKNOWN", "the call's stream ended without a result")
                break
            if self._retryable(item):
                time.sleep(self._backoff * 2 ** (self._attempt - 1))
                self._messages = None
                continue
            self._end()
            raise mesh_error(item)
        raise StopIteration

    def _start(self) -> None:
        self._attempt += 1
        self._call = self._stub.RunCell(self.request, timeout=self._deadline)
        self._messages = queue.SimpleQueue()
        reader = threading.Thread(
            target=self._read, args=(self._call, self._messages), name="sandbox-mesh-cell", daemon=True
        )
        reader.start()

    @staticmethod
    def _read(call: Any, messages: queue.SimpleQueue[tuple[str, Any]]) -> None:
        """Moves one attempt's messages to its queue, then how it ended."""
        try:
            for message in call:
                messages.put(("message", message))
        except grpc.RpcError as error:
            messages.put(("error", error))
        else:
            messages.put(("end", None))

    def _retryable(self, error: grpc.RpcError) -> bool:
        # Before `accepted` nothing ran; the same execution id makes a retry safe.
        return self.execution_id is None and self._attempt < ATTEMPTS and error.code() == grpc.StatusCode.UNAVAILABLE

    def _event(self, message: pb.CellEvent) -> CellEvent:
        event = cell_event_of(message)
        if isinstance(event, CellAccepted):
            self.execution_id = event.execution_id
        elif isinstance(event, CellOutput):
            self._out[event.stream].append(event.data)
        elif isinstance(event, cells.CellResult):
            self._drain()
            stdout, stderr = b"".join(self._out["stdout"]), b"".join(self._out["stderr"])
            execution_id = self.execution_id or self.request.execution_id
            self.outcome = CellOutcome.of(execution_id, event, stdout, stderr)
            self._end()
            return CellFinished(self.outcome)
        return event

    def _drain(self) -> None:
        """Reads the stream to its end after the result: control releases
        the session (one call at a time) only as its stream ends, so a call
        made right after an undrained result could be refused as busy."""
        assert self._messages is not None
        while True:
            kind, item = self._messages.get()
            if kind == "end":
                return
            if kind == "error":
                self._end()
                raise mesh_error(item)

    def _end(self) -> None:
        if self._done:
            return
        self._done = True
        if self._on_end is not None:
            self._on_end(self)

    def interrupt(self) -> bool:
        """Interrupts the running call (the interpreter's KeyboardInterrupt);
        the session stays. True when control cancelled it (False: it had
        ended, or was not accepted yet). Keep iterating for the outcome."""
        if self.execution_id is None or self._done:
            return False
        return self._cancel(self.execution_id)

    def abandon(self) -> None:
        """Stops reading: the call runs on to its end in the session."""
        if self._call is not None:
            self._call.cancel()
        self._end()

    def collect(self, on_output: OutputCallback | None = None) -> CellOutcome:
        """Reads to the end, calling `on_output` for output and values."""
        for event in self:
            if on_output is not None and isinstance(event, CellOutput):
                on_output(event.stream, event.data)
            elif on_output is not None and isinstance(event, CellValue):
                on_output("value", event.part)
        if self.outcome is None:
            raise MeshError("UNKNOWN", "the call's stream ended without a result")
        return self.outcome


class Session:
    """One open session of a tenant, through control. A context manager
    that closes the session on exit (a failure to close never hides the
    body's own exception). One call at a time: a second while one runs is
    FAILED_PRECONDITION from control."""

    def __init__(
        self,
        stub: control_pb2_grpc.ControlStub,
        info: SessionInfo,
        *,
        call_timeout: float,
        new_execution_id: Callable[[], str],
    ):
        self._stub = stub
        self._call_timeout = call_timeout
        self._new_execution_id = new_execution_id
        self.session_id = info.session_id
        self.language = info.language
        self.last_info = info
        self._lock = threading.Lock()
        self._running: CellStream | None = None

    def __repr__(self) -> str:
        return f"Session({self.session_id!r}, {self.language!r})"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        try:
            self.close()
        except Exception as error:
            if exc is None:
                raise
            exc.add_note(f"closing session {self.session_id} failed too: {error}")

    # ---- calls -----------------------------------------------------------

    def stream(self, code: str, timeout_ms: int | None = None) -> CellStream:
        """Starts a call; iterate the returned stream for its events."""
        request = pb.RunCellRequest(
            session_id=self.session_id, code=code, timeout_ms=timeout_ms or 0, execution_id=self._new_execution_id()
        )
        stream = CellStream(self._stub, request, cancel=self._cancel, on_end=self._ended)
        with self._lock:
            self._running = stream
        return stream

    def run(self, code: str, *, timeout_ms: int | None = None, on_output: OutputCallback | None = None) -> CellOutcome:
        """Runs one call to its end. `timeout_ms` None: the session's default.
        `on_output(kind, data)` sees stdout, stderr (bytes) and values
        (ValuePart) as they stream."""
        return self.stream(code, timeout_ms).collect(on_output)

    def interrupt(self) -> bool:
        """Interrupts the running call, if any (see CellStream.interrupt)."""
        with self._lock:
            running = self._running
        return running.interrupt() if running is not None else False

    def _ended(self, stream: CellStream) -> None:
        with self._lock:
            if self._running is stream:
                self._running = None

    def _cancel(self, execution_id: str) -> bool:
        request = pb.CancelExecutionRequest(execution_id=execution_id)
        return self._unary(lambda t: self._stub.CancelExecution(request, timeout=t)).cancelled

    # ---- the session -----------------------------------------------------

    def info(self) -> SessionInfo:
        request = pb.GetSessionRequest(session_id=self.session_id)
        return self._record(self._unary(lambda t: self._stub.GetSession(request, timeout=t)))

    def restart(self) -> SessionInfo:
        """A fresh interpreter: variables and imports go, files and packages stay."""
        request = pb.RestartSessionRequest(session_id=self.session_id)
        return self._record(self._unary(lambda t: self._stub.RestartSession(request, timeout=t)))

    def close(self) -> SessionInfo:
        """Ends the session and destroys its sandbox; a no-op once ended."""
        request = pb.CloseSessionRequest(session_id=self.session_id)
        return self._record(self._unary(lambda t: self._stub.CloseSession(request, timeout=t)))

    # ---- files under /workspace --------------------------------------------

    def put_file(self, path: str, data: bytes | str) -> int:
        """Writes a file (relative to the calls' working directory,
        /workspace/code, or absolute under /workspace; parents made); its size."""
        content = data.encode() if isinstance(data, str) else data
        request = pb.PutSessionFileRequest(session_id=self.session_id, path=path, content=content)
        # Writing the same bytes twice is harmless: retried like a read.
        return self._unary(lambda t: self._stub.PutSessionFile(request, timeout=t)).size

    def file_chunks(self, path: str) -> Iterator[bytes]:
        request = pb.GetSessionFileRequest(session_id=self.session_id, path=path)
        return checked_chunks(self._stub.GetSessionFile(request, timeout=self._call_timeout * 10), path)

    def get_file(self, path: str) -> bytes:
        return b"".join(self.file_chunks(path))

    def files(self, directory: str = "") -> list[tuple[str, int]]:
        """Regular files under the working directory (or `directory`;
        "/workspace" for the whole workspace), sorted by path."""
        request = pb.ListSessionFilesRequest(session_id=self.session_id, directory=directory)
        response = self._unary(lambda t: self._stub.ListSessionFiles(request, timeout=t))
        return [(f.path, f.size) for f in response.files]

    def _record(self, message: pb.Session) -> SessionInfo:
        self.last_info = SessionInfo.of(message)
        return self.last_info

    def _unary(self, call: Callable[[float], T]) -> T:
        return call_unary(call, self._call_timeout)
