"""The client's Execute stream against a fake stub: retried on UNAVAILABLE
only before `accepted`, never after; errors as one MeshError naming the field."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.client import ExecutionStream
from sandbox_mesh.errors import DETAILS_KEY, MeshError, mesh_error
from sandbox_mesh.events import Accepted, Finished
from services.common.grpc_errors import rich_status


class FakeError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, message: str = "", trailers=()):
        self._code, self._message, self._trailers = code, message, trailers

    def code(self):
        return self._code

    def details(self):
        return self._message

    def trailing_metadata(self):
        return self._trailers


class FakeCall:
    def __init__(self, events, error=None):
        self._events, self._error = events, error
        self.cancelled = False

    def __iter__(self):
        yield from self._events
        if self._error:
            raise self._error

    def cancel(self):
        self.cancelled = True


class FakeStub:
    def __init__(self, calls):
        self.calls = list(calls)
        self.requests: list[pb.ExecuteRequest] = []
        self.cancelled: list[str] = []

    def Execute(self, request, timeout=None):
        self.requests.append(request)
        return self.calls.pop(0)

    def CancelExecution(self, request, timeout=None):
        self.cancelled.append(request.execution_id)
        return pb.CancelExecutionResponse(cancelled=True)


ACCEPTED = pb.ExecuteEvent(accepted=pb.Accepted(execution_id="ex-1", status=common.EXECUTION_STATUS_QUEUED))
FINISHED = pb.ExecuteEvent(finished=pb.Execution(execution_id="ex-1", status=common.EXECUTION_STATUS_COMPLETED))
UNAVAILABLE = FakeError(grpc.StatusCode.UNAVAILABLE, "connection refused")


def stream_of(stub, attempts=3):
    return ExecutionStream(stub, pb.ExecuteRequest(execution_id="ex-1"), deadline=None, attempts=attempts, backoff=0)


def test_unavailable_before_acceptance_is_retried_with_the_same_id():
    stub = FakeStub([FakeCall([], UNAVAILABLE), FakeCall([ACCEPTED, FINISHED])])
    stream = stream_of(stub)
    events = list(stream)
    assert [type(e) for e in events] == [Accepted, Finished]
    assert [r.execution_id for r in stub.requests] == ["ex-1", "ex-1"]
    assert stream.result is not None and stream.result.status == "COMPLETED"


def test_unavailable_after_acceptance_is_never_retried():
    stub = FakeStub([FakeCall([ACCEPTED], UNAVAILABLE), FakeCall([ACCEPTED, FINISHED])])
    with pytest.raises(MeshError) as caught:
        list(stream_of(stub))
    assert caught.value.code == "UNAVAILABLE" and len(stub.requests) == 1


def test_retries_are_bounded_and_other_codes_not_retried():
    stub = FakeStub([FakeCall([], UNAVAILABLE) for _ in range(3)])
    with pytest.raises(MeshError, match="UNAVAILABLE"):
        list(stream_of(stub))
    assert len(stub.requests) == 3
    stub = FakeStub([FakeCall([], FakeError(grpc.StatusCode.INVALID_ARGUMENT, "entry: missing"))])
    with pytest.raises(MeshError, match="INVALID_ARGUMENT: entry: missing"):
        list(stream_of(stub))
    assert len(stub.requests) == 1


def test_cancel_cancels_the_accepted_execution_and_the_call():
    call = FakeCall([ACCEPTED, FINISHED])
    stub = FakeStub([call])
    stream = stream_of(stub)
    next(iter(stream))
    assert stream.cancel() is True
    assert stub.cancelled == ["ex-1"] and call.cancelled


def test_the_error_names_the_field_from_the_details():
    status = rich_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "files[0].path: must be relative",
        error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field="files[0].path", description="x")]
        ),
    )
    error = mesh_error(
        FakeError(grpc.StatusCode.INVALID_ARGUMENT, status.message, ((DETAILS_KEY, status.SerializeToString()),))
    )
    assert (error.code, error.field) == ("INVALID_ARGUMENT", "files[0].path")
    assert str(error) == "INVALID_ARGUMENT: files[0].path: must be relative"
    status = rich_status(
        grpc.StatusCode.FAILED_PRECONDITION,
        "no spawner offers gvisor",
        error_details_pb2.PreconditionFailure(
            violations=[error_details_pb2.PreconditionFailure.Violation(type="RUNTIME", subject="runtime")]
        ),
    )
    error = mesh_error(
        FakeError(grpc.StatusCode.FAILED_PRECONDITION, status.message, ((DETAILS_KEY, status.SerializeToString()),))
    )
    assert str(error) == "FAILED_PRECONDITION: no spawner offers gvisor (field runtime)"
    assert str(mesh_error(FakeError(grpc.StatusCode.UNAVAILABLE))) == "UNAVAILABLE: unavailable"
