"""Control end to end: a real spawner running real containers, control on
SQLite and on PostgreSQL, callers signing as their tenant."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import pathlib
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.control.executions.models import Verdict
from services.control.server import start as start_control
from tests.integration.control.conftest import TENANT_KEYS, control_channel, control_settings
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration

S = common


def _error(call):
    with pytest.raises(grpc.RpcError) as failure:
        call()
    return failure.value


def _wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_execute_streams_and_records(tenant_a):
    code = "import sys\nprint('hello', flush=True)\nprint('warn', file=sys.stderr)\nsum(range(10**6))\n"
    stream = run(tenant_a, request({"main.py": code}, group_id="s-rec"))
    kinds = stream.kinds()
    assert kinds[0] == "accepted" and kinds[-1] == "finished"
    execution_id = stream.events[0].accepted.execution_id
    assert stream.statuses() == [S.EXECUTION_STATUS_RUNNING]
    assert stream.stdout == b"hello\n"
    done = stream.finished
    assert (done.status, done.error_code, done.exit_code) == (S.EXECUTION_STATUS_COMPLETED, 0, 0)
    assert done.execution_id == execution_id and done.group_id == "s-rec"
    assert done.stdout_preview == b"hello\n" and done.stderr_preview == b"warn\n"
    assert done.usage.wall_ms > 0 and done.usage.stdout_bytes == 6
    assert 0 < done.created_at_ms <= done.started_at_ms <= done.finished_at_ms
    assert done.spawner.startswith("127.0.0.1:")
    assert tenant_a.GetExecution(pb.GetExecutionRequest(execution_id=execution_id)) == done
    quota = tenant_a.GetQuota(pb.GetQuotaRequest())
    assert quota.in_flight == 0 and quota.max_in_flight == 4 and quota.tenant == "tenant-a"
    # Settled to the measured CPU, not the 20 s pre-debit; and to the wall
    # time it held a slot, not its 20 s timeout.
    assert quota.cpu_seconds_used < 15
    assert 0 < quota.slot_seconds_used < 15 and quota.daily_slot_seconds > 0
    assert quota.stored_executions >= 1 and quota.max_stored_executions > quota.stored_executions
    assert quota.retention_days == 30


def test_failure_codes_are_recorded(tenant_a):
    stream = run(tenant_a, request({"main.py": "print('x')\nraise SystemExit(3)\n"}))
    assert (stream.finished.status, stream.finished.error_code, stream.finished.exit_code) == (
        S.EXECUTION_STATUS_FAILED,
        S.ERROR_CODE_RUNTIME_ERROR,
        3,
    )
    stream = run(tenant_a, request({"main.py": "import time\ntime.sleep(10)\n"}, timeout_ms=1000))
    assert (stream.finished.status, stream.finished.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_TIMEOUT)


def test_refused_requests_leave_no_record(tenant_a):
    before = tenant_a.GetQuota(pb.GetQuotaRequest()).cpu_seconds_used
    error = _error(lambda: run(tenant_a, request({"../evil.py": "print(1)"}, execution_id="refused-1")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_details_pb2.BadRequest()
    rpc_status.from_call(error).details[0].Unpack(detail)
    assert detail.field_violations[0].field == "files[0].path"
    assert (
        _error(lambda: tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="refused-1"))).code()
        == grpc.StatusCode.NOT_FOUND
    )
    assert tenant_a.GetQuota(pb.GetQuotaRequest()).cpu_seconds_used == pytest.approx(before)
    # Control's own checks come before any record.
    error = _error(lambda: run(tenant_a, request({"a.py": "1"}, execution_id="bad id!")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "execution_id" in error.details()
    error = _error(lambda: run(tenant_a, request({"a.py": "1"}, timeout_ms=3_600_000)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "limits.timeout_ms" in error.details()


def test_packages_are_passed_through_and_the_answer_relayed(tenant_a):
    req = request({"main.py": "print(1)"}, execution_id="with-packages")
    req.packages.add(name="sandbox-mesh-nonexistent-package")
    stream = run(tenant_a, req, timeout=120)
    done = stream.finished
    # The control suite's spawner has no egress: it refuses the packages
    # with FAILED_PRECONDITION before anything starts, and control records
    # that refusal as INPUT_REJECTED, naming the field, nothing charged.
    assert (done.status, done.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_INPUT_REJECTED), done
    assert done.error_message.startswith(
        "the spawner refused the request (FAILED_PRECONDITION): packages: this spawner has no egress"
    ), done.error_message
    assert done.usage.cpu_seconds == 0


def test_duplicate_execution_id(tenant_a):
    run(tenant_a, request({"main.py": "print(1)"}, execution_id="dup-1"))
    error = _error(lambda: run(tenant_a, request({"main.py": "print(1)"}, execution_id="dup-1")))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS


def _start_sleeper(stub, execution_id, group_id=""):
    code = "import time\nprint('started', flush=True)\ntime.sleep(30)\n"
    call = stub.Execute(request({"main.py": code}, execution_id=execution_id, group_id=group_id), timeout=60)
    events = []
    for event in call:
        events.append(event)
        if event.WhichOneof("event") == "stdout":
            break
    return call, events


def test_cancel_execution(tenant_a, tenant_b):
    call, _ = _start_sleeper(tenant_a, "to-cancel")
    # While it runs, the record shows a moving heartbeat and the output so far.
    get = lambda: tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="to-cancel"))  # noqa: E731
    first = _wait_for(lambda: (e := get()).stdout_preview and e)
    assert first.status == S.EXECUTION_STATUS_RUNNING and first.stdout_preview == b"started\n"
    _wait_for(lambda: get().heartbeat_at_ms > first.heartbeat_at_ms)
    # Another tenant cannot see or cancel it.
    assert (
        _error(lambda: tenant_b.CancelExecution(pb.CancelExecutionRequest(execution_id="to-cancel"))).code()
        == grpc.StatusCode.NOT_FOUND
    )
    started = time.monotonic()
    response = tenant_a.CancelExecution(pb.CancelExecutionRequest(execution_id="to-cancel"))
    assert time.monotonic() - started < 10
    assert response.cancelled
    assert (response.execution.status, response.execution.error_code) == (
        S.EXECUTION_STATUS_CANCELLED,
        S.ERROR_CODE_CANCELLED,
    )
    rest = list(call)
    assert rest[-1].WhichOneof("event") == "finished"
    assert rest[-1].finished.status == S.EXECUTION_STATUS_CANCELLED
    again = tenant_a.CancelExecution(pb.CancelExecutionRequest(execution_id="to-cancel"))
    assert not again.cancelled and again.execution.status == S.EXECUTION_STATUS_CANCELLED


def test_cancel_group(tenant_a):
    calls = [_start_sleeper(tenant_a, f"sess-{i}", group_id="sess")[0] for i in range(2)]
    run(tenant_a, request({"main.py": "print(1)"}, execution_id="sess-done", group_id="sess"))
    response = tenant_a.CancelGroup(pb.CancelGroupRequest(group_id="sess"))
    assert sorted(response.cancelled_execution_ids) == ["sess-0", "sess-1"]
    for call in calls:
        assert list(call)[-1].finished.status == S.EXECUTION_STATUS_CANCELLED
    listed = tenant_a.ListExecutions(pb.ListExecutionsRequest(group_id="sess"))
    assert {e.execution_id: e.status for e in listed.executions} == {
        "sess-0": S.EXECUTION_STATUS_CANCELLED,
        "sess-1": S.EXECUTION_STATUS_CANCELLED,
        "sess-done": S.EXECUTION_STATUS_COMPLETED,
    }


def test_a_caller_that_goes_away_cancels_its_execution(tenant_a):
    call, _ = _start_sleeper(tenant_a, "abandoned")
    call.cancel()
    get = lambda: tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="abandoned"))  # noqa: E731
    done = _wait_for(lambda: (e := get()).status in (S.EXECUTION_STATUS_CANCELLED,) and e)
    assert done.error_code == S.ERROR_CODE_CANCELLED and "went away" in done.error_message


def test_tenants_are_isolated(control_server, tenant_a, tenant_b):
    run(tenant_a, request({"main.py": "print(1)"}, execution_id="mine", group_id="iso"))
    for call in (
        lambda: tenant_b.GetExecution(pb.GetExecutionRequest(execution_id="mine")),
        lambda: tenant_b.CancelExecution(pb.CancelExecutionRequest(execution_id="mine")),
        lambda: list(tenant_b.GetOutputFile(pb.GetOutputFileRequest(execution_id="mine", path="x"))),
    ):
        error = _error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND and "mine" in error.details()
    # Same answer as for an id that exists nowhere.
    assert (
        _error(lambda: tenant_b.GetExecution(pb.GetExecutionRequest(execution_id="nowhere"))).details()
        == "execution 'nowhere' not found"
    )
    assert "mine" not in [
        e.execution_id for e in tenant_b.ListExecutions(pb.ListExecutionsRequest(page_size=500)).executions
    ]
    assert tenant_b.CancelGroup(pb.CancelGroupRequest(group_id="iso")).cancelled_execution_ids == []
    # b may use the same id: ids are per tenant.
    run(tenant_b, request({"main.py": "print(2)"}, execution_id="mine"))
    assert tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="mine")).stdout_preview == b"1\n"

    port = control_server.port
    with control_channel(port, "tenant-a", key="not-the-key") as channel:
        error = _error(lambda: control_pb2_grpc.ControlStub(channel).GetQuota(pb.GetQuotaRequest()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    with control_channel(port, "tenant-unknown", key="whatever") as channel:
        error = _error(lambda: control_pb2_grpc.ControlStub(channel).GetQuota(pb.GetQuotaRequest()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        assert _error(lambda: stub.GetQuota(pb.GetQuotaRequest())).code() == grpc.StatusCode.UNAUTHENTICATED
        assert _error(lambda: list(stub.Execute(request({"a.py": "1"})))).code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="sandbox.control.v1.Control")
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_list_executions_pages(tenant_a):
    for i in range(3):
        run(tenant_a, request({"main.py": "print(1)"}, execution_id=f"page-{i}", group_id="paging"))
    seen, token = [], ""
    while True:
        page = tenant_a.ListExecutions(pb.ListExecutionsRequest(group_id="paging", page_size=2, page_token=token))
        seen += [e.execution_id for e in page.executions]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["page-2", "page-1", "page-0"]
    completed = tenant_a.ListExecutions(
        pb.ListExecutionsRequest(group_id="paging", statuses=[S.EXECUTION_STATUS_FAILED])
    )
    assert list(completed.executions) == []
    error = _error(lambda: tenant_a.ListExecutions(pb.ListExecutionsRequest(page_token="nope")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cpu_budget_exhausted(control_server):
    with control_channel(control_server.port, "tenant-c") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        error = _error(lambda: run(stub, request({"main.py": "print(1)"}, timeout_ms=6000)))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        failure = error_details_pb2.QuotaFailure()
        assert rpc_status.from_call(error).details[0].Unpack(failure)
        assert failure.violations[0].subject == "tenant:tenant-c/daily_cpu_seconds"
        quota = stub.GetQuota(pb.GetQuotaRequest())
        assert (quota.daily_cpu_seconds, quota.cpu_seconds_used, quota.in_flight) == (5, 0, 0)


def test_cap_holds_under_50_concurrent_executes(control_server, tenant_a):
    """50 concurrent Execute calls at a cap of 4: the cap is never exceeded
    (checked on the records' lifetimes and by polling GetQuota)."""
    code = "import time\ntime.sleep(1.5)\n"
    barrier = threading.Barrier(50)
    observed, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            observed.append(tenant_a.GetQuota(pb.GetQuotaRequest()).in_flight)
            time.sleep(0.02)

    def one(i):
        barrier.wait()
        try:
            return run(tenant_a, request({"main.py": code}, group_id="fifty", execution_id=f"fifty-{i}")).finished
        except grpc.RpcError as error:
            return error

    poller = threading.Thread(target=poll)
    poller.start()
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        outcomes = list(pool.map(one, range(50)))
    stop.set()
    poller.join()
    finished = [o for o in outcomes if isinstance(o, pb.Execution)]
    refused = [o for o in outcomes if not isinstance(o, pb.Execution)]
    assert len(finished) >= 4 and len(finished) + len(refused) == 50
    assert all(f.status == S.EXECUTION_STATUS_COMPLETED for f in finished)
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        failure = error_details_pb2.QuotaFailure()
        assert rpc_status.from_call(error).details[0].Unpack(failure)
        assert failure.violations[0].subject == "tenant:tenant-a/executions_in_flight"
    assert max(observed) <= 4
    # No instant at which more than 4 recorded executions were in flight.
    listed = tenant_a.ListExecutions(pb.ListExecutionsRequest(group_id="fifty", page_size=100)).executions
    assert len(listed) == len(finished)
    edges = sorted([(e.created_at_ms, 1) for e in listed] + [(e.finished_at_ms, -1) for e in listed])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    assert peak <= 4


def test_watchdog_fails_silent_executions_and_frees_the_slot(control_server, tenant_a):
    executions = control_server.executions
    store = executions.store
    row = store.reserve(
        key=secrets.token_hex(16),
        tenant="tenant-a",
        execution_id="silent",
        group_id="",
        language=S.LANGUAGE_PYTHON,
        timeout_ms=1000,
    )
    assert tenant_a.GetQuota(pb.GetQuotaRequest()).in_flight == 1
    assert executions.heartbeats.sweep() == []  # the heartbeat is fresh
    with store.db.write() as session:
        session.execute(
            sa.text("update executions set heartbeat_at_ms = heartbeat_at_ms - 600000 where key = :k"), {"k": row.key}
        )
    assert executions.heartbeats.sweep() == [row.key]
    silent = tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="silent"))
    assert (silent.status, silent.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_SPAWNER_UNAVAILABLE)
    assert tenant_a.GetQuota(pb.GetQuotaRequest()).in_flight == 0
    # A late finalize does not overturn the verdict.
    assert not executions.relay.record(
        row.key, Verdict("completed", exit_code=0, cpu_seconds=0.0), [("late.txt", b"late")]
    )
    assert tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="silent")).status == S.EXECUTION_STATUS_FAILED
    assert hashlib.sha256(b"late").hexdigest() not in executions.blobs.all()


def test_output_files_are_stored_all_or_nothing(control_server, tenant_a, tenant_b):
    executions = control_server.executions
    store = executions.store
    record = executions.relay.record

    def reserve(execution_id):
        return store.reserve(
            key=secrets.token_hex(16),
            tenant="tenant-a",
            execution_id=execution_id,
            group_id="",
            language=S.LANGUAGE_PYTHON,
            timeout_ms=1000,
        )

    row = reserve("files-ok")
    big = bytes(range(256)) * 1000
    files = [("out/big.bin", big), ("out/small.txt", b"small")]
    assert record(row.key, Verdict("completed", exit_code=0, cpu_seconds=0.1), files)
    got = tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="files-ok"))
    assert [(f.path, f.size) for f in got.output_files] == [("out/big.bin", len(big)), ("out/small.txt", 5)]
    chunks = list(tenant_a.GetOutputFile(pb.GetOutputFileRequest(execution_id="files-ok", path="out/big.bin")))
    assert len(chunks) > 1 and b"".join(c.data for c in chunks) == big
    assert chunks[0].sha256 == hashlib.sha256(big).hexdigest() and chunks[-1].size == len(big)
    assert (
        _error(
            lambda: list(tenant_b.GetOutputFile(pb.GetOutputFileRequest(execution_id="files-ok", path="out/big.bin")))
        ).code()
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        _error(
            lambda: list(tenant_a.GetOutputFile(pb.GetOutputFileRequest(execution_id="files-ok", path="nope")))
        ).code()
        == grpc.StatusCode.NOT_FOUND
    )

    # The transaction fails half-way (two rows for one path): no row, no new
    # blob, the verdict not applied; the blob another execution uses stays.
    blobs_before = executions.blobs.all()
    broken = reserve("files-broken")
    with pytest.raises(sa.exc.IntegrityError):
        record(
            broken.key,
            Verdict("completed", exit_code=0, cpu_seconds=0.1),
            [("a.txt", b"fresh content"), ("a.txt", b"small"), ("b.txt", b"more fresh")],
        )
    assert executions.blobs.all() == blobs_before
    assert (
        tenant_a.GetExecution(pb.GetExecutionRequest(execution_id="files-broken")).status == S.EXECUTION_STATUS_QUEUED
    )
    assert record(broken.key, Verdict("failed", "RUNTIME_ERROR", exit_code=1, cpu_seconds=0.1), [("a.txt", b"small")])
    assert executions.blobs.all() == blobs_before


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_dead_spawner_is_skipped(control_spawner, tmp_path):
    dead = _dead_port()
    settings = control_settings(
        control_spawner.port, tmp_path, "", spawners=(f"127.0.0.1:{dead}", f"127.0.0.1:{control_spawner.port}")
    )
    running = start_control(settings)
    try:
        with control_channel(running.port, "tenant-a") as channel:
            stream = run(control_pb2_grpc.ControlStub(channel), request({"main.py": "print('ok')"}))
        assert stream.finished.status == S.EXECUTION_STATUS_COMPLETED
        assert stream.finished.spawner == f"127.0.0.1:{control_spawner.port}"
        assert [s.address for s in running.executions.relay.pool.healthy()] == [f"127.0.0.1:{control_spawner.port}"]
    finally:
        running.stop()


def test_no_spawner_within_the_queue_timeout(control_spawner, tmp_path):
    settings = control_settings(
        control_spawner.port, tmp_path, "", spawners=(f"127.0.0.1:{_dead_port()}",), queue_timeout_seconds=1
    )
    running = start_control(settings)
    try:
        with control_channel(running.port, "tenant-a") as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            done = run(stub, request({"main.py": "print(1)"})).finished
            assert (done.status, done.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_SPAWNER_UNAVAILABLE)
            assert "no spawner" in done.error_message
            quota = stub.GetQuota(pb.GetQuotaRequest())
            assert (quota.in_flight, quota.cpu_seconds_used) == (0, 0)
    finally:
        running.stop()


def test_grpcurl_with_reflection_and_hand_made_headers(control_server):
    bin_dir = pathlib.Path(sys.executable).parent
    target = f"127.0.0.1:{control_server.port}"
    listed = subprocess.run(
        [str(bin_dir / "grpcurl"), "-plaintext", target, "list"], capture_output=True, text=True, timeout=60, check=True
    )
    assert "sandbox.control.v1.Control" in listed.stdout.split()

    method = "sandbox.control.v1.Control/GetQuota"
    headers = subprocess.run(
        [sys.executable, "-m", "services.control.sign", "tenant-b", method, "{}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "SANDBOX_TENANT_KEY": TENANT_KEYS["tenant-b"]},
    ).stdout
    answer = subprocess.run(
        [str(bin_dir / "grpcurl"), "-plaintext", *shlex.split(headers), "-d", "{}", target, method],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["tenant"] == "tenant-b"
