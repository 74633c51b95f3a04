"""Sessions end to end through control, on the real engine: state kept across
calls, the last value returned, errors as fields, a timeout that leaves the
session usable, one call at a time, idle expiry, another tenant's NOT_FOUND,
and nothing left after close and expiry (docs/sessions.md)."""

from __future__ import annotations

import pathlib
import threading
import time

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb
from tests.integration.conftest import labelled_containers

PYTHON, NODE = common.LANGUAGE_PYTHON, common.LANGUAGE_NODE


def open_session(stub, language=PYTHON, **fields) -> pb.Session:
    return stub.CreateSession(pb.CreateSessionRequest(language=language, **fields), timeout=120)


def call(stub, session_id: str, code: str, timeout_ms: int = 0) -> tuple[list[pb.CellEvent], cells.CellResult]:
    events = list(stub.RunCell(pb.RunCellRequest(session_id=session_id, code=code, timeout_ms=timeout_ms), timeout=90))
    assert events[0].WhichOneof("event") == "accepted"
    assert events[-1].WhichOneof("event") == "result"
    return events, events[-1].result


def stdout(events) -> bytes:
    return b"".join(e.stdout for e in events if e.WhichOneof("event") == "stdout")


def last_value(result: cells.CellResult, mime: str = "text/plain") -> bytes:
    return next(p.data for p in result.values if p.last_value and p.mime_type == mime)


def assert_session_gone(spawner_server) -> None:
    """No session sandbox left on the spawner: containers, workspaces."""
    spawner = spawner_server.spawner
    deadline = time.monotonic() + 30
    while spawner.sessions.tokens() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spawner.sessions.tokens() == set()
    assert spawner.provisioner.wait_removed(30)
    assert labelled_containers(spawner.api, spawner.settings.name) == []
    assert list(pathlib.Path(spawner.settings.workspace_root).iterdir()) == []


def test_python_state_lives_across_calls(tenant_a, control_spawner):
    session = open_session(tenant_a, session_id="state")
    assert session.status == pb.SESSION_STATUS_OPEN
    try:
        _, result = call(tenant_a, "state", "import math\nx = 41\nopen('data.txt', 'w').write('kept')")
        assert result.status == cells.CELL_STATUS_OK
        events, result = call(tenant_a, "state", "print(math.floor(2.5))\nx + 1")
        assert stdout(events) == b"2\n"
        assert last_value(result) == b"42"
        assert result.execution_count == 2
        _, result = call(tenant_a, "state", "open('data.txt').read()")
        assert last_value(result) == b"'kept'"
        _, result = call(tenant_a, "state", "1 / 0")
        assert result.status == cells.CELL_STATUS_ERROR
        assert (result.error.name, result.error.value) == ("ZeroDivisionError", "division by zero")
        assert any("1 / 0" in frame for frame in result.error.traceback)
        assert "\x1b[" not in "".join(result.error.traceback)
        _, result = call(tenant_a, "state", "from IPython.display import HTML\nHTML('<b>hi</b>')")
        assert last_value(result, "text/html") == b"<b>hi</b>"

        calls = tenant_a.ListExecutions(pb.ListExecutionsRequest(session_id="state")).executions
        assert len(calls) == 5 and all(c.session_id == "state" for c in calls)
        assert [c.status for c in calls][:2] == [common.EXECUTION_STATUS_COMPLETED, common.EXECUTION_STATUS_FAILED]
        assert tenant_a.GetSession(pb.GetSessionRequest(session_id="state")).calls == 5
    finally:
        closed = tenant_a.CloseSession(pb.CloseSessionRequest(session_id="state"))
    assert closed.status == pb.SESSION_STATUS_CLOSED
    assert_session_gone(control_spawner)
    with pytest.raises(grpc.RpcError) as refused:
        call(tenant_a, "state", "x")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_timeout_interrupts_the_call_and_the_session_goes_on(tenant_a, control_spawner):
    open_session(tenant_a, session_id="timeout")
    try:
        call(tenant_a, "timeout", "x = 7")
        started = time.monotonic()
        _, result = call(tenant_a, "timeout", "import time\ntime.sleep(60)", timeout_ms=1000)
        assert time.monotonic() - started < 20
        assert result.status == cells.CELL_STATUS_TIMEOUT
        assert result.error.name == "KeyboardInterrupt"
        _, result = call(tenant_a, "timeout", "x * 6")
        assert result.status == cells.CELL_STATUS_OK and last_value(result) == b"42"
        timed_out = tenant_a.ListExecutions(pb.ListExecutionsRequest(session_id="timeout")).executions[1]
        assert timed_out.error_code == common.ERROR_CODE_TIMEOUT
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="timeout"))
    assert_session_gone(control_spawner)


def test_one_call_at_a_time(tenant_a, control_spawner):
    open_session(tenant_a, session_id="busy")
    try:
        first = tenant_a.RunCell(
            pb.RunCellRequest(session_id="busy", code="import time\ntime.sleep(3)\n'done'"), timeout=60
        )
        assert next(first).WhichOneof("event") == "accepted"
        rest: list = []
        reader = threading.Thread(target=lambda: rest.extend(first))
        reader.start()
        with pytest.raises(grpc.RpcError) as refused:
            call(tenant_a, "busy", "1")
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert tenant_a.GetSession(pb.GetSessionRequest(session_id="busy")).busy
        reader.join(30)
        assert last_value(rest[-1].result) == b"'done'"
        _, result = call(tenant_a, "busy", "2")
        assert last_value(result) == b"2"
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="busy"))
    assert_session_gone(control_spawner)


def test_idle_timeout_ends_the_session(tenant_a, control_spawner):
    open_session(tenant_a, session_id="idle", idle_timeout_seconds=2, max_lifetime_seconds=60)
    call(tenant_a, "idle", "1")
    time.sleep(3)
    session = tenant_a.GetSession(pb.GetSessionRequest(session_id="idle"))
    assert session.status == pb.SESSION_STATUS_EXPIRED, session
    assert "idle" in session.end_reason
    assert_session_gone(control_spawner)
    with pytest.raises(grpc.RpcError) as refused:
        call(tenant_a, "idle", "1")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = tenant_a.ListSessions(pb.ListSessionsRequest(open_only=True)).sessions
    assert "idle" not in [s.session_id for s in listed]


def test_another_tenants_session_is_not_found(tenant_a, tenant_b, control_spawner):
    open_session(tenant_a, session_id="mine")
    try:
        for attempt in (
            lambda: tenant_b.GetSession(pb.GetSessionRequest(session_id="mine")),
            lambda: tenant_b.CloseSession(pb.CloseSessionRequest(session_id="mine")),
            lambda: list(tenant_b.RunCell(pb.RunCellRequest(session_id="mine", code="1"))),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                attempt()
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        assert "mine" not in [s.session_id for s in tenant_b.ListSessions(pb.ListSessionsRequest()).sessions]
        assert tenant_a.GetSession(pb.GetSessionRequest(session_id="mine")).status == pb.SESSION_STATUS_OPEN
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="mine"))
    assert_session_gone(control_spawner)


def test_node_files_persist_and_each_call_is_a_program(tenant_a, control_spawner):
    open_session(tenant_a, NODE, session_id="node")
    try:
        events, result = call(tenant_a, "node", "require('fs').writeFileSync('n.txt', 'node kept'); globalThis.y = 1")
        assert result.status == cells.CELL_STATUS_OK, result
        events, result = call(tenant_a, "node", "console.log(require('fs').readFileSync('n.txt', 'utf8'), typeof y)")
        assert stdout(events) == b"node kept undefined\n"
        events, result = call(tenant_a, "node", "process.exit(3)")
        assert (result.status, result.exit_code) == (cells.CELL_STATUS_ERROR, 3)
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="node"))
    assert_session_gone(control_spawner)


def test_bad_requests_name_the_field(tenant_a, control_spawner):
    cases = [
        (pb.CreateSessionRequest(language=common.LANGUAGE_UNSPECIFIED), "language"),
        (pb.CreateSessionRequest(language=PYTHON, session_id="no way"), "session_id"),
        (pb.CreateSessionRequest(language=PYTHON, max_lifetime_seconds=10**6), "max_lifetime_seconds"),
        (pb.CreateSessionRequest(language=PYTHON, idle_timeout_seconds=20, max_lifetime_seconds=10), "idle_timeout"),
        (pb.CreateSessionRequest(language=PYTHON, variant="nope"), "variant"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.RpcError) as refused:
            tenant_a.CreateSession(request, timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in refused.value.details()
    assert control_spawner.spawner.sessions.tokens() == set()


def test_the_time_a_session_is_held_counts_against_slot_time(tenant_a, control_spawner):
    before = tenant_a.GetQuota(pb.GetQuotaRequest()).slot_seconds_used
    open_session(tenant_a, session_id="held")
    call(tenant_a, "held", "1")
    time.sleep(2)
    tenant_a.CloseSession(pb.CloseSessionRequest(session_id="held"))
    used = tenant_a.GetQuota(pb.GetQuotaRequest()).slot_seconds_used - before
    assert 2.0 <= used < 30, used
    assert_session_gone(control_spawner)


def test_a_caller_that_goes_away_leaves_the_session_usable(tenant_a, control_spawner):
    open_session(tenant_a, session_id="gone")
    try:
        stream = tenant_a.RunCell(pb.RunCellRequest(session_id="gone", code="import time\ntime.sleep(2)\ny = 5"))
        accepted = next(stream).accepted
        stream.cancel()
        deadline = time.monotonic() + 20
        record = None
        while time.monotonic() < deadline:
            record = tenant_a.GetExecution(pb.GetExecutionRequest(execution_id=accepted.execution_id))
            if record.status == common.EXECUTION_STATUS_CANCELLED:
                break
            time.sleep(0.1)
        assert record is not None and record.status == common.EXECUTION_STATUS_CANCELLED, record
        while tenant_a.GetSession(pb.GetSessionRequest(session_id="gone")).busy:
            time.sleep(0.1)
        time.sleep(2.5)  # the abandoned call runs to its end in the sandbox
        _, result = call(tenant_a, "gone", "y")
        assert last_value(result) == b"5"
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="gone"))
    assert_session_gone(control_spawner)
