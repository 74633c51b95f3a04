"""The client's Session against a fake stub (pure logic only; the real
thing is tests/integration/control/test_client_sessions.py): a call retried
on UNAVAILABLE only before `accepted` with the same execution id, its events
gathered into a CellOutcome, interrupt, close on exit, limits and packages."""

from __future__ import annotations

import os
import signal
import threading

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh import CellAccepted, CellFinished, CellOutput, CellValue, MeshError, Session, SessionInfo, UsageError
from sandbox_mesh.session_records import create_request, session_limits
from sandbox_mesh.sessions import CellStream
from tests.unit.client.test_stream import FakeCall, FakeError

UNAVAILABLE = FakeError(grpc.StatusCode.UNAVAILABLE, "connection refused")
ACCEPTED = pb.CellEvent(accepted=pb.Accepted(execution_id="ex-1"))
PNG = b"\x89PNG\r\n\x1a\nrest"
RESULT = pb.CellEvent(
    result=cells.CellResult(
        status=cells.CELL_STATUS_OK,
        execution_count=3,
        values=[
            cells.ValuePart(mime_type="image/png", data=PNG),
            cells.ValuePart(mime_type="text/plain", data=b"42", last_value=True),
        ],
        duration_ms=12,
    )
)
EVENTS = [
    ACCEPTED,
    pb.CellEvent(stdout=b"one\n"),
    pb.CellEvent(stderr=b"warn\n"),
    pb.CellEvent(value=cells.ValuePart(mime_type="image/png", data=PNG)),
    pb.CellEvent(stdout=b"two\n"),
    RESULT,
]
SESSION = pb.Session(session_id="s1", language=common.LANGUAGE_PYTHON, status=pb.SESSION_STATUS_OPEN)


class FakeStub:
    def __init__(self, calls=(), close_error=None):
        self.calls = list(calls)
        self.requests: list[pb.RunCellRequest] = []
        self.cancelled: list[str] = []
        self.closed = 0
        self.close_error = close_error

    def RunCell(self, request, timeout=None):
        self.requests.append(request)
        return self.calls.pop(0)

    def CancelExecution(self, request, timeout=None):
        self.cancelled.append(request.execution_id)
        return pb.CancelExecutionResponse(cancelled=True)

    def CloseSession(self, request, timeout=None):
        self.closed += 1
        if self.close_error:
            raise self.close_error
        closed = pb.Session()
        closed.CopyFrom(SESSION)
        closed.status = pb.SESSION_STATUS_CLOSED
        return closed


def session_of(stub) -> Session:
    ids = iter(f"ex-{n}" for n in range(1, 100))
    return Session(stub, SessionInfo.of(SESSION), call_timeout=5, new_execution_id=lambda: next(ids))


def test_a_call_gathers_its_events_into_an_outcome():
    stub = FakeStub([FakeCall(EVENTS)])
    seen: list = []
    outcome = session_of(stub).run("x + 1", on_output=lambda kind, data: seen.append((kind, data)))
    assert outcome.ok and outcome.status == "ok" and outcome.execution_id == "ex-1"
    assert (outcome.stdout, outcome.stderr, outcome.text) == (b"one\ntwo\n", b"warn\n", "42")
    assert outcome.images == [("image/png", PNG)]
    assert outcome.error is None and outcome.execution_count == 3 and outcome.duration_ms == 12
    assert [kind for kind, _ in seen] == ["stdout", "stderr", "value", "stdout"]
    assert stub.requests[0].code == "x + 1" and stub.requests[0].execution_id == "ex-1"
    assert outcome.as_json()["values"][0] == {"mime_type": "image/png", "last_value": False, "data_hex": PNG.hex()}


def test_an_error_comes_as_fields():
    error = cells.CellError(name="ZeroDivisionError", value="division by zero", traceback=["frame 1", "frame 2"])
    result = pb.CellEvent(result=cells.CellResult(status=cells.CELL_STATUS_ERROR, error=error, exit_code=1))
    outcome = session_of(FakeStub([FakeCall([ACCEPTED, result])])).run("1/0")
    assert not outcome.ok and outcome.status == "error" and outcome.text == ""
    assert outcome.error is not None and outcome.error.name == "ZeroDivisionError"
    assert outcome.error.traceback == ["frame 1", "frame 2"]


def test_unavailable_before_acceptance_is_retried_with_the_same_execution_id():
    stub = FakeStub([FakeCall([], UNAVAILABLE), FakeCall(EVENTS)])
    session = session_of(stub)
    stream = session.stream("1")
    stream._backoff = 0
    events = list(stream)
    assert [type(e) for e in events] == [CellAccepted, CellOutput, CellOutput, CellValue, CellOutput, CellFinished]
    assert [r.execution_id for r in stub.requests] == ["ex-1", "ex-1"]


def test_unavailable_after_acceptance_is_never_retried():
    stub = FakeStub([FakeCall([ACCEPTED], UNAVAILABLE), FakeCall(EVENTS)])
    with pytest.raises(MeshError) as caught:
        session_of(stub).run("1")
    assert caught.value.code == "UNAVAILABLE" and len(stub.requests) == 1


def test_other_failures_are_never_retried():
    busy = FakeError(grpc.StatusCode.FAILED_PRECONDITION, "a call is running")
    stub = FakeStub([FakeCall([], busy)])
    with pytest.raises(MeshError) as caught:
        session_of(stub).run("1")
    assert caught.value.code == "FAILED_PRECONDITION" and len(stub.requests) == 1


def test_a_stream_without_a_result_is_an_error():
    with pytest.raises(MeshError, match="without a result"):
        session_of(FakeStub([FakeCall([ACCEPTED])])).run("1")


def test_interrupt_cancels_the_running_call_only_once_accepted():
    stub = FakeStub([FakeCall(EVENTS)])
    session = session_of(stub)
    assert session.interrupt() is False  # nothing running
    stream = session.stream("import time; time.sleep(60)")
    assert session.interrupt() is False  # not accepted yet
    assert isinstance(next(stream), CellAccepted)
    assert session.interrupt() is True and stub.cancelled == ["ex-1"]
    list(stream)
    assert session.interrupt() is False  # it ended


def test_the_context_manager_closes_and_never_hides_the_bodys_exception():
    stub = FakeStub()
    with session_of(stub) as session:
        pass
    assert stub.closed == 1 and session.last_info.status == "closed"
    failing = FakeStub(close_error=FakeError(grpc.StatusCode.NOT_FOUND, "gone"))
    with pytest.raises(KeyError) as caught, session_of(failing):
        raise KeyError("the body's")
    assert "closing session s1 failed too" in caught.value.__notes__[0]
    with pytest.raises(MeshError), session_of(failing):
        pass


def test_limits_by_either_name():
    assert session_limits({"timeout": 2.5, "memory": "256m", "cpus": 0.5}) == common.Limits(
        timeout_ms=2500, memory_bytes=256 * 1024**2, cpus=0.5
    )
    assert session_limits({"timeout_ms": 900, "memory_mb": 128}) == common.Limits(
        timeout_ms=900, memory_bytes=128 * 1024**2
    )
    with pytest.raises(UsageError, match="unknown limit 'ram'"):
        session_limits({"ram": 1})
    with pytest.raises(UsageError, match="negative"):
        session_limits({"cpus": -1})


def test_packages_follow_the_language_and_files_are_staged():
    request = create_request(
        "python",
        session_id=None,
        variant="",
        limits=common.Limits(),
        packages=["pandas==2.2", "requests"],
        files={"data.csv": "a,b\n", "raw.bin": b"\x00"},
        idle_timeout_seconds=60,
        max_lifetime_seconds=600,
    )
    assert [(p.name, p.version) for p in request.packages] == [("pandas", "==2.2"), ("requests", "")]
    assert {f.path: f.content for f in request.files} == {"data.csv": b"a,b\n", "raw.bin": b"\x00"}
    assert request.language == common.LANGUAGE_PYTHON and request.session_id == ""
    node = create_request(
        "node",
        session_id="n",
        variant="",
        limits=common.Limits(),
        packages=["lodash@4"],
        files=None,
        idle_timeout_seconds=0,
        max_lifetime_seconds=0,
    )
    assert [(p.name, p.version) for p in node.packages] == [("lodash", "4")]
    with pytest.raises(UsageError, match="language"):
        create_request(
            "ruby",
            session_id=None,
            variant="",
            limits=common.Limits(),
            packages=(),
            files=None,
            idle_timeout_seconds=0,
            max_lifetime_seconds=0,
        )


def test_session_info_names_its_status():
    info = SessionInfo.of(
        pb.Session(
            session_id="s",
            language=common.LANGUAGE_NODE,
            status=pb.SESSION_STATUS_EXPIRED,
            packages=[common.Package(name="lodash", version="4")],
            limits=common.Limits(timeout_ms=5000),
            restarts=2,
        )
    )
    assert (info.status, info.language, info.open, info.restarts, info.timeout_ms) == (
        "expired",
        "node",
        False,
        2,
        5000,
    )
    assert info.packages[0].spec("node") == "lodash@4"


def test_a_stream_is_its_own_iterator():
    stream = CellStream(FakeStub([FakeCall(EVENTS)]), pb.RunCellRequest(execution_id="ex-9"), cancel=lambda _: True)
    assert iter(stream) is stream
    assert stream.collect().execution_id == "ex-1"


def test_a_keyboard_interrupt_while_waiting_leaves_the_stream_readable():
    """Ctrl-C at `sandboxctl session`: interrupt the call, then read on."""
    release = threading.Event()

    class SlowCall(FakeCall):
        def __iter__(self):
            yield ACCEPTED
            release.wait(10)
            yield from EVENTS[1:]

    stub = FakeStub([SlowCall([])])
    stream = session_of(stub).stream("import time; time.sleep(60)")
    assert isinstance(next(stream), CellAccepted)
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        next(stream)
    assert stream.interrupt() is True and stub.cancelled == ["ex-1"]
    release.set()
    assert stream.collect().text == "42"
