"""Control loses its PostgreSQL server and gets it back.

The server is a throw-away one of this module's own (the suite's shared one
stays up): its connections are killed with pg_terminate_backend, then the
whole server is stopped as a crash would (`pg_ctl -m immediate`) and started
again. Calls made meanwhile get UNAVAILABLE at once; an execution in flight
keeps its verdict (recorded once the server is back); afterwards the quota
counters match the records exactly.
"""

from __future__ import annotations

import collections
import threading
import time

import grpc
import psycopg
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.control.server import start as start_control
from tests import quota_ledger
from tests.integration.control.conftest import control_channel, control_settings, new_postgres_database
from tests.integration.control.helpers import request, run
from tests.postgres import Unavailable, start_server, stop_server, temporary_server

pytestmark = pytest.mark.integration

COMPLETED = common.EXECUTION_STATUS_COMPLETED


@pytest.fixture(scope="module")
def lossy_postgres():
    try:
        with temporary_server("control-pg-loss-", fsync=False, max_connections=100) as base_url:
            with psycopg.connect(_plain(base_url) + "/postgres") as conn:
                data_dir = conn.execute("SHOW data_directory").fetchone()[0]
            yield base_url, data_dir
    except Unavailable as exc:
        pytest.fail(str(exc))


def _plain(url: str) -> str:
    return url.replace("+psycopg", "")


@pytest.fixture
def control_on_lossy(lossy_postgres, control_spawner, tmp_path):
    base_url, data_dir = lossy_postgres
    url = new_postgres_database(base_url)
    running = start_control(control_settings(control_spawner.port, tmp_path, url))
    with control_channel(running.port, "tenant-a") as channel:
        try:
            yield control_pb2_grpc.ControlStub(channel), url, data_dir
        finally:
            running.stop(grace_seconds=5)


def terminate_connections(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_plain(url).rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()[0]
    return killed


def quick(stub, text: str = "ok"):
    return run(stub, request({"main.py": f"print({text!r})"}))


def test_killed_connections_are_replaced(control_on_lossy):
    stub, url, _ = control_on_lossy
    for _ in range(3):
        assert quick(stub).finished.status == COMPLETED
    assert terminate_connections(url) > 0  # control's pooled connections
    for _ in range(3):  # each pooled connection is found dead and replaced: no call fails
        assert quick(stub).finished.status == COMPLETED
    stub.GetQuota(pb.GetQuotaRequest(), timeout=10)
    assert quota_ledger.mismatches(url) == []


def test_server_gone_refuses_at_once_and_keeps_the_verdict_in_flight(control_on_lossy):
    stub, url, data_dir = control_on_lossy
    assert quick(stub).finished.status == COMPLETED

    events: list = []
    started = threading.Event()

    def long_one():
        slow = "import time\nprint('started', flush=True)\ntime.sleep(3)\nprint('done')\n"
        for event in stub.Execute(request({"main.py": slow}), timeout=120):
            events.append(event)
            if event.WhichOneof("event") == "stdout":
                started.set()

    reader = threading.Thread(target=long_one)
    reader.start()
    assert started.wait(30), "the long execution never started"

    stop_server(data_dir)
    try:
        for call in (
            lambda: quick(stub, "during"),
            lambda: stub.GetQuota(pb.GetQuotaRequest(), timeout=30),
            lambda: stub.ListExecutions(pb.ListExecutionsRequest(), timeout=30),
        ):
            asked = time.monotonic()
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
            assert "database is unavailable" in refused.value.details()
            assert time.monotonic() - asked < 10, "the refusal waited on the database"
        time.sleep(4)  # the sandbox ends while the database is gone: its verdict waits
    finally:
        start_server(data_dir)

    reader.join(60)
    assert not reader.is_alive(), "the execution in flight never ended"
    finished = events[-1].finished
    assert finished.status == COMPLETED, finished
    assert b"done" in b"".join(e.stdout.data for e in events if e.WhichOneof("event") == "stdout")
    assert stub.GetExecution(pb.GetExecutionRequest(execution_id=finished.execution_id)).status == COMPLETED

    assert quick(stub, "after").finished.status == COMPLETED
    assert quota_ledger.mismatches(url) == []


def test_connections_killed_under_load_leave_the_quota_whole(control_on_lossy):
    """Connections killed again and again while executions are admitted,
    relayed and settled: each call completes or gets UNAVAILABLE (never
    INTERNAL, never a hang), every record ends, and no transaction left a
    counter half-changed."""
    stub, url, _ = control_on_lossy
    stop = threading.Event()
    outcomes: list[str] = []

    def client():
        while not stop.is_set():
            try:
                finished = quick(stub).finished
                code = common.ErrorCode.Name(finished.error_code) if finished.error_code else ""
                outcomes.append(f"{common.ExecutionStatus.Name(finished.status)} {code}".strip())
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for thread in clients:
        thread.start()
    killed = 0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        killed += terminate_connections(url)
        time.sleep(0.1)
    stop.set()
    for thread in clients:
        thread.join(60)
    assert not any(thread.is_alive() for thread in clients), "a call hung"
    assert killed > 0
    # A connection cut under the relay (not the verdict: that is retried)
    # ends its execution with control's own SPAWNER_UNAVAILABLE.
    allowed = {"EXECUTION_STATUS_COMPLETED", "EXECUTION_STATUS_FAILED ERROR_CODE_SPAWNER_UNAVAILABLE", "UNAVAILABLE"}
    assert set(outcomes) <= allowed, collections.Counter(outcomes)
    assert "EXECUTION_STATUS_COMPLETED" in outcomes
    live = [common.EXECUTION_STATUS_QUEUED, common.EXECUTION_STATUS_INSTALLING, common.EXECUTION_STATUS_RUNNING]
    deadline = time.monotonic() + 60
    while stub.ListExecutions(pb.ListExecutionsRequest(statuses=live), timeout=10).executions:
        assert time.monotonic() < deadline, "records still live after the load"
        time.sleep(0.5)
    assert quota_ledger.mismatches(url) == []
    print(collections.Counter(outcomes), f"{killed} connections killed")
