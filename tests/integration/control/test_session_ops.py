"""Interrupting, restarting and recovering sessions through control, on the
real engine (docs/sessions.md): a cancel interrupts the running call and the
session keeps its variables; a restart keeps the files and loses the
variables; a crash counts as a restart; a session whose spawner died is
recorded FAILED without any call, its slot freed, its sandbox reaped when a
spawner comes back; idle expiry is recorded without a read; retention
deletes an ended session's record."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest
from sqlmodel import select

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.control.server import start as start_control
from services.control.sessions.models import SessionRow
from services.spawner.server import start as start_spawner
from tests.integration.conftest import assert_nothing_left, labelled_containers, make_settings
from tests.integration.control.conftest import control_channel, control_settings
from tests.integration.control.test_sessions import (
    NODE,
    assert_session_gone,
    call,
    last_value,
    open_session,
    stdout,
)
from tests.integration.test_lifecycle import SpawnerProcess

pytestmark = pytest.mark.integration


# Catches every KeyboardInterrupt (a sleep, not a bare loop: CPython may
# raise it past the `try` of a one-line `while True: pass`).
STUBBORN = """
import time
while True:
    try:
        time.sleep(1)
    except KeyboardInterrupt:
        pass
"""


def cancel_while_running(stub, session_id: str, code: str, after_seconds: float = 1.0):
    """Starts a call of `code`, cancels it after `after_seconds`; returns its
    events, how long the call took to end after the cancel, and its id."""
    stream = stub.RunCell(pb.RunCellRequest(session_id=session_id, code=code), timeout=90)
    accepted = next(stream).accepted
    events: list[pb.CellEvent] = []
    reader = threading.Thread(target=lambda: events.extend(stream))
    reader.start()
    time.sleep(after_seconds)
    cancelled_at = time.monotonic()
    response = stub.CancelExecution(pb.CancelExecutionRequest(execution_id=accepted.execution_id), timeout=30)
    reader.join(30)
    assert not reader.is_alive()
    assert response.cancelled, response
    return events, time.monotonic() - cancelled_at, accepted.execution_id


def assert_cancelled(stub, execution_id: str) -> None:
    record = stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id))
    assert record.status == common.EXECUTION_STATUS_CANCELLED, record
    assert "interrupted" in record.error_message


@pytest.mark.parametrize(("name", "code"), [("busy", "while True: pass"), ("asleep", "import time\ntime.sleep(60)")])
def test_cancel_interrupts_the_running_call_and_the_session_keeps_its_variables(tenant_a, control_spawner, name, code):
    name = f"cancel-{name}"
    open_session(tenant_a, session_id=name)
    try:
        call(tenant_a, name, "x = 6")
        events, took, execution_id = cancel_while_running(tenant_a, name, code)
        result = events[-1].result
        assert took < 3, took
        assert result.status == cells.CELL_STATUS_ERROR, result
        assert result.error.name == "KeyboardInterrupt"
        assert_cancelled(tenant_a, execution_id)
        _, result = call(tenant_a, name, "x * 7")
        assert last_value(result) == b"42"
        assert tenant_a.GetSession(pb.GetSessionRequest(session_id=name)).restarts == 0
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id=name))
    assert_session_gone(control_spawner)


def test_a_call_that_ignores_the_interrupt_gets_a_fresh_interpreter(tenant_a, control_spawner):
    open_session(tenant_a, session_id="stubborn")
    try:
        call(tenant_a, "stubborn", "x = 1\nopen('kept.txt', 'w').write('kept')")
        stubborn = STUBBORN
        events, took, execution_id = cancel_while_running(tenant_a, "stubborn", stubborn)
        assert 4 < took < 15, (took, events[-1])
        assert events[-1].result.error.name == "KeyboardInterrupt"
        assert "fresh interpreter" in events[-1].result.error.value
        assert_cancelled(tenant_a, execution_id)
        _, result = call(tenant_a, "stubborn", "open('kept.txt').read()")
        assert last_value(result) == b"'kept'"
        _, result = call(tenant_a, "stubborn", "x")
        assert result.error.name == "NameError"
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="stubborn"))
    assert_session_gone(control_spawner)


def test_cancel_kills_a_running_node_program_and_the_session_goes_on(tenant_a, control_spawner):
    open_session(tenant_a, NODE, session_id="node-cancel")
    try:
        call(tenant_a, "node-cancel", "require('fs').writeFileSync('n.txt', 'kept')")
        events, took, execution_id = cancel_while_running(tenant_a, "node-cancel", "while (true) {}")
        result = events[-1].result
        assert took < 3, took
        assert (result.status, result.error.name) == (cells.CELL_STATUS_ERROR, "KeyboardInterrupt")
        assert_cancelled(tenant_a, execution_id)
        events, result = call(tenant_a, "node-cancel", "console.log(require('fs').readFileSync('n.txt', 'utf8'))")
        assert stdout(events) == b"kept\n"
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="node-cancel"))
    assert_session_gone(control_spawner)


def test_restart_keeps_files_and_loses_variables(tenant_a, tenant_b, control_spawner):
    open_session(tenant_a, session_id="restart")
    try:
        call(tenant_a, "restart", "x = 1\nopen('kept.txt', 'w').write('kept')")
        with pytest.raises(grpc.RpcError) as refused:
            tenant_b.RestartSession(pb.RestartSessionRequest(session_id="restart"))
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        session = tenant_a.RestartSession(pb.RestartSessionRequest(session_id="restart"), timeout=120)
        assert (session.status, session.restarts) == (pb.SESSION_STATUS_OPEN, 1)
        _, result = call(tenant_a, "restart", "x")
        assert result.error.name == "NameError"
        _, result = call(tenant_a, "restart", "open('kept.txt').read()")
        assert last_value(result) == b"'kept'"
        assert result.execution_count == 2  # a fresh interpreter counts its cells from 1

        # A running call is interrupted first, and recorded cancelled.
        stream = tenant_a.RunCell(pb.RunCellRequest(session_id="restart", code="y = 2\nimport time\ntime.sleep(60)"))
        accepted = next(stream).accepted
        events: list[pb.CellEvent] = []
        reader = threading.Thread(target=lambda: events.extend(stream))
        reader.start()
        time.sleep(1)
        session = tenant_a.RestartSession(pb.RestartSessionRequest(session_id="restart"), timeout=120)
        reader.join(30)
        assert session.restarts == 2 and events[-1].result.error.name == "KeyboardInterrupt"
        assert_cancelled(tenant_a, accepted.execution_id)
        _, result = call(tenant_a, "restart", "y")
        assert result.error.name == "NameError"
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="restart"))
    with pytest.raises(grpc.RpcError) as refused:
        tenant_a.RestartSession(pb.RestartSessionRequest(session_id="restart"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert_session_gone(control_spawner)


def test_a_crash_counts_as_a_restart_and_an_explicit_one_after_it_too(tenant_a, control_spawner):
    open_session(tenant_a, session_id="crash")
    try:
        call(tenant_a, "crash", "open('kept.txt', 'w').write('kept')")
        _, result = call(tenant_a, "crash", "import os\nos._exit(1)")
        assert result.status == cells.CELL_STATUS_KERNEL_DIED
        assert tenant_a.GetSession(pb.GetSessionRequest(session_id="crash")).restarts == 1
        _, result = call(tenant_a, "crash", "open('kept.txt').read()")
        assert last_value(result) == b"'kept'"
        session = tenant_a.RestartSession(pb.RestartSessionRequest(session_id="crash"), timeout=120)
        assert session.restarts == 2
        _, result = call(tenant_a, "crash", "1 + 1")
        assert last_value(result) == b"2"
    finally:
        tenant_a.CloseSession(pb.CloseSessionRequest(session_id="crash"))
    assert_session_gone(control_spawner)


def test_idle_expiry_is_recorded_without_a_read(tenant_a, control_server, control_spawner):
    open_session(tenant_a, session_id="idle-sweep", idle_timeout_seconds=2, max_lifetime_seconds=60)
    store = control_server.session_sweeper.store
    deadline = time.monotonic() + 15
    status = "open"
    while status == "open" and time.monotonic() < deadline:
        time.sleep(0.2)
        with store.db.read() as session:
            rows = session.exec(select(SessionRow).where(SessionRow.session_id == "idle-sweep")).all()
        status = rows[0].status
    assert status == "expired"
    listed = tenant_a.ListSessions(pb.ListSessionsRequest(open_only=True)).sessions
    assert "idle-sweep" not in [s.session_id for s in listed]
    assert_session_gone(control_spawner)


def status_in_store(running, session_id: str) -> SessionRow:
    """The record as stored: read without bringing it up to date."""
    with running.session_sweeper.store.db.read() as session:
        return session.exec(select(SessionRow).where(SessionRow.session_id == session_id)).one()


def wait_until_ended(running, session_id: str, seconds: float) -> SessionRow:
    deadline = time.monotonic() + seconds
    row = status_in_store(running, session_id)
    while row.status == "open" and time.monotonic() < deadline:
        time.sleep(0.1)
        row = status_in_store(running, session_id)
    return row


@pytest.mark.parametrize("comes_back", ["after its grace", "at once"])
def test_a_session_whose_spawner_died_is_recorded_failed_without_a_call(docker_api, tmp_path, comes_back):
    """The spawner is killed with SIGKILL. Either it stays away past the grace
    (control fails the session on silence), or a successor answers at once
    without the session (control fails it on the answer). Either way: no
    call needed, the tenant's one session slot is free again, and the
    successor reaps the sandbox."""
    (tmp_path / "dying").mkdir()
    dying = SpawnerProcess(tmp_path / "dying")
    grace = 2 if comes_back == "after its grace" else 600
    settings = control_settings(
        dying.port,
        tmp_path,
        f"sqlite:///{tmp_path}/control.db",
        max_in_flight=1,
        reconcile_interval_seconds=0.5,
        session_spawner_grace_seconds=grace,
    )
    running = start_control(settings)
    successor = None
    try:
        with control_channel(running.port, "tenant-a") as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            open_session(stub, session_id="orphan")
            call(stub, "orphan", "x = 1")
            with pytest.raises(grpc.RpcError) as refused:
                open_session(stub, session_id="second")  # one open session at a time for this tenant
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            os.kill(dying.process.pid, signal.SIGKILL)
            dying.process.wait(10)
            killed = time.monotonic()
            if comes_back == "at once":
                successor = start_spawner(make_settings(dying.name, dying.root, listen=f"127.0.0.1:{dying.port}"))
            row = wait_until_ended(running, "orphan", 15)
            assert row.status == "failed", row
            assert time.monotonic() - killed < grace + 8
            expected = "has not answered" if comes_back == "after its grace" else "no longer holds it"
            assert expected in row.end_reason
            assert "orphan" not in [
                s.session_id for s in stub.ListSessions(pb.ListSessionsRequest(open_only=True)).sessions
            ]
            if successor is None:
                successor = start_spawner(make_settings(dying.name, dying.root, listen=f"127.0.0.1:{dying.port}"))
            # The tenant's slot is free: a new session opens (on the successor,
            # once control's channel has reconnected: UNAVAILABLE until then).
            deadline = time.monotonic() + 30
            while True:
                try:
                    open_session(stub, session_id="second")
                    break
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            _, result = call(stub, "second", "1 + 1")
            assert last_value(result) == b"2"
            stub.CloseSession(pb.CloseSessionRequest(session_id="second"))
        assert_session_gone(successor)
    finally:
        running.stop()
        dying.channel.close()
        if dying.process.poll() is None:
            dying.process.kill()
            dying.process.wait(10)
        if successor is None:
            successor = start_spawner(make_settings(dying.name, dying.root))
        try:
            assert_nothing_left(docker_api, dying.name, dying.root, successor.spawner.cgroups)
        finally:
            successor.stop(grace_seconds=5)
            for leftover in labelled_containers(docker_api, dying.name):
                docker_api.remove_container(leftover["Id"], force=True)


def test_retention_deletes_an_ended_sessions_record(control_spawner, tmp_path):
    settings = control_settings(
        control_spawner.port,
        tmp_path,
        f"sqlite:///{tmp_path}/control.db",
        retention_days=2 / 86_400,  # two seconds
        retention_sweep_seconds=0.5,
    )
    running = start_control(settings)
    try:
        with control_channel(running.port, "tenant-a") as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            open_session(stub, session_id="kept-a-while")
            call(stub, "kept-a-while", "1")
            stub.CloseSession(pb.CloseSessionRequest(session_id="kept-a-while"))
            assert stub.GetSession(pb.GetSessionRequest(session_id="kept-a-while")).status == pb.SESSION_STATUS_CLOSED
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    stub.GetSession(pb.GetSessionRequest(session_id="kept-a-while"))
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.NOT_FOUND
                    break
                time.sleep(0.2)
            else:
                pytest.fail("the ended session's record was not deleted")
            assert list(stub.ListExecutions(pb.ListExecutionsRequest(session_id="kept-a-while")).executions) == []
    finally:
        running.stop()
    assert_session_gone(control_spawner)
