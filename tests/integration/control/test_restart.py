"""Control and spawners killed mid-execution (docs/operations.md): a
restarted control settles at once what its previous process relayed, and
frees the tenant's slot; a spawner killed mid-run ends its execution at
once, which no other spawner runs again, and its restart reaps what it left.

Control and the killed spawner run as processes, as operators run them;
both are killed with SIGKILL."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as S
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from sandbox.spawner.v1 import spawner_pb2 as spb
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.control.config import ControlSettings
from services.control.db import Database
from services.control.executions import reconcile
from services.control.executions.ownership import Owner
from services.control.executions.store import ExecutionStore
from services.control.server import start as start_control
from services.spawner.server import start as start_spawner
from tests.integration.conftest import SECRET, assert_nothing_left, labelled_containers, make_settings
from tests.integration.control.conftest import TENANT_KEYS, control_channel, control_settings
from tests.integration.control.helpers import request, run
from tests.integration.helpers import collect, free_port
from tests.integration.helpers import request as spawner_request
from tests.integration.test_lifecycle import SpawnerProcess

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[3]
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(120)\n"
# Bounds of the waits below: far above what each step takes, far below the
# watchdog's grace (2 x the 60 s timeout) that settled these before.
SETTLE_SECONDS = 20


class ControlProcess:
    """`python -m services.control` with SQLite in `data_dir`."""

    def __init__(self, data_dir: pathlib.Path, spawners: list[int], **env: str):
        self.port = free_port()
        self.log = data_dir / f"control-{self.port}.log"
        environment = dict(
            os.environ,
            CONTROL_LISTEN=f"127.0.0.1:{self.port}",
            CONTROL_METRICS_LISTEN="",  # off: the default port may be a running mesh's
            CONTROL_DATA_DIR=str(data_dir),
            CONTROL_SPAWNERS=",".join(f"127.0.0.1:{port}" for port in spawners),
            CONTROL_SPAWNER_SECRET=SECRET,
            CONTROL_TENANT_KEYS=json.dumps(TENANT_KEYS),
            CONTROL_MAX_IN_FLIGHT="1",
            CONTROL_SLOT_SHARE="1",
            CONTROL_MAX_TIMEOUT_MS="60000",
            LOG_FORMAT="text",
            **env,
        )
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.control"], cwd=ROOT, env=environment, stdout=log, stderr=log
            )
        waited = subprocess.run(
            [sys.executable, "scripts/wait_healthy.py", f"127.0.0.1:{self.port}", "30"], cwd=ROOT, check=False
        )
        assert waited.returncode == 0, self.log.read_text()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def controls():
    started: list[ControlProcess] = []

    def make(data_dir: pathlib.Path, spawners: list[int], **env: str) -> ControlProcess:
        started.append(ControlProcess(data_dir, spawners, **env))
        return started[-1]

    yield make
    for control in started:
        if control.process.poll() is None:
            control.process.kill()
            control.process.wait()


def start_sleeper(stub, execution_id: str):
    """Starts the sleeper and returns its call once it printed (it runs)."""
    call = stub.Execute(request({"main.py": SLEEPER}, timeout_ms=60_000, execution_id=execution_id), timeout=120)
    for event in call:
        if event.WhichOneof("event") == "stdout" and b"started" in event.stdout.data:
            return call
    raise AssertionError("the sleeper never started")


def wait_for_verdict(stub, execution_id: str, seconds: float = SETTLE_SECONDS) -> pb.Execution:
    deadline = time.monotonic() + seconds
    while True:
        execution = stub.GetExecution(pb.GetExecutionRequest(execution_id=execution_id), timeout=5)
        if execution.status in (S.EXECUTION_STATUS_COMPLETED, S.EXECUTION_STATUS_FAILED, S.EXECUTION_STATUS_CANCELLED):
            return execution
        assert time.monotonic() < deadline, f"still {S.ExecutionStatus.Name(execution.status)} after {seconds}s"
        time.sleep(0.2)


def spawner_knows(listed: spb.ListExecutionsResponse, key: str) -> tuple[bool, spb.ExecutionEnded | None]:
    """Whether the spawner runs `key`, and how it ended there (None: it did not)."""
    ended = next((e for e in listed.ended if e.execution_id == key), None)
    return any(e.execution_id == key for e in listed.in_flight), ended


def key_of(data_dir: pathlib.Path, execution_id: str) -> str:
    """Control's key of tenant-a's `execution_id` (the id its spawner saw)."""
    database = Database(f"sqlite:///{data_dir}/control.db")
    try:
        return ExecutionStore(database, ControlSettings(spawners=("x:1",)).quota_for).get("tenant-a", execution_id).key
    finally:
        database.dispose()


def assert_settled_and_slot_free(control: ControlProcess, execution_id: str) -> pb.Execution:
    with control_channel(control.port, "tenant-a") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        settled = wait_for_verdict(stub, execution_id)
        assert (settled.status, settled.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_SPAWNER_UNAVAILABLE)
        # One execution in flight at most: a new one is admitted only if the slot is free.
        after = run(stub, request({"main.py": "print('next')"}), timeout=60).finished
        assert (after.status, after.stdout_preview) == (S.EXECUTION_STATUS_COMPLETED, b"next\n")
        return settled


def test_a_restarted_control_settles_what_it_relayed_at_once(control_spawner, controls, tmp_path):
    first = controls(tmp_path, [control_spawner.port], CONTROL_REPLICA_ID="control-restart")
    with control_channel(first.port, "tenant-a") as channel:
        call = start_sleeper(control_pb2_grpc.ControlStub(channel), "sleeper")
        first.kill()
        with pytest.raises(grpc.RpcError):
            list(call)
    second = controls(tmp_path, [control_spawner.port], CONTROL_REPLICA_ID="control-restart")
    settled = assert_settled_and_slot_free(second, "sleeper")
    assert "control process relaying the execution stopped" in settled.error_message
    # The spawner noticed its caller was gone and killed the run; its usage was recorded.
    running, ended = spawner_knows(control_spawner.spawner.executions(), key_of(tmp_path, "sleeper"))
    assert not running and ended is not None
    assert settled.usage.wall_ms == ended.usage.wall_ms > 0
    assert second.process.poll() is None


def test_a_replica_that_never_comes_back_is_settled_when_its_lease_runs_out(control_spawner, controls, tmp_path):
    first = controls(tmp_path, [control_spawner.port], CONTROL_LEASE_SECONDS="2")
    with control_channel(first.port, "tenant-a") as channel:
        call = start_sleeper(control_pb2_grpc.ControlStub(channel), "sleeper")
        first.kill()
        with pytest.raises(grpc.RpcError):
            list(call)
    # Another replica (a name of its own): it waits for the dead one's lease.
    other = controls(tmp_path, [control_spawner.port], CONTROL_LEASE_SECONDS="2")
    assert_settled_and_slot_free(other, "sleeper")


def test_an_execution_its_spawner_still_runs_is_cancelled_there_then_settled(control_spawner, tmp_path):
    """The relay died but the spawner's call did not end (a control process
    frozen rather than killed, a connection not yet seen broken): the run is
    stopped on the spawner, then settled with the usage measured there."""
    url = f"sqlite:///{tmp_path}/control.db"
    database = Database(url)
    database.migrate()
    gone = ExecutionStore(database, ControlSettings(spawners=("x:1",)).quota_for, owner=Owner("control-gone", "dead"))
    row = gone.reserve(
        key="k" + "0" * 31, tenant="tenant-a", execution_id="orphan", group_id="", language=1, timeout_ms=60_000
    )
    address = f"127.0.0.1:{control_spawner.port}"
    assert gone.assign_spawner(row.key, address)
    database.dispose()
    # The dead relay's call, as the spawner sees it: still open.
    with grpc.insecure_channel(address) as raw:
        from_spawner = spawner_pb2_grpc.SpawnerStub(
            grpc.intercept_channel(raw, ClientAuthInterceptor(SECRET.encode()))
        ).Execute(spawner_request({"main.py": SLEEPER}, execution_id=row.key, timeout_ms=60_000), timeout=120)
        for event in from_spawner:  # until the code runs
            if event.WhichOneof("event") == "stdout":
                break
        outcome: list = []
        reader = threading.Thread(target=lambda: outcome.append(collect(from_spawner)))
        reader.start()
        assert spawner_knows(control_spawner.spawner.executions(), row.key)[0]
        running = start_control(control_settings(control_spawner.port, tmp_path, url, max_in_flight=1))
        try:
            reader.join(SETTLE_SECONDS)
            assert outcome and outcome[0].result.status == S.EXECUTION_STATUS_CANCELLED
            assert_settled_and_slot_free_in(running.port, "orphan")
        finally:
            running.stop()


def test_an_execution_still_queued_when_its_relay_died_is_settled_with_nothing_charged(control_spawner, tmp_path):
    url = f"sqlite:///{tmp_path}/control.db"
    database = Database(url)
    database.migrate()
    gone = ExecutionStore(database, ControlSettings(spawners=("x:1",)).quota_for, owner=Owner("control-gone", "dead"))
    gone.reserve(key="q" * 32, tenant="tenant-a", execution_id="queued", group_id="", language=1, timeout_ms=60_000)
    database.dispose()
    running = start_control(control_settings(control_spawner.port, tmp_path, url, max_in_flight=1))
    try:
        with control_channel(running.port, "tenant-a") as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            settled = wait_for_verdict(stub, "queued")
            assert (settled.status, settled.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_SPAWNER_UNAVAILABLE)
            assert "before a spawner took it" in settled.error_message
            quota = stub.GetQuota(pb.GetQuotaRequest(), timeout=5)
            assert (quota.in_flight, quota.cpu_seconds_used, quota.slots_held) == (0, 0, 0)
    finally:
        running.stop()


def test_an_execution_whose_relay_thread_ended_without_a_verdict_is_settled(control_spawner, tmp_path, monkeypatch):
    """A relay in this very process that ended without recording a verdict
    (the database refused both its verdict and its fallback): the execution
    is settled by the next pass, not left holding the tenant's slot until
    the watchdog's grace runs out."""
    monkeypatch.setattr(reconcile, "ABANDONED_AFTER_MS", 0)
    url = f"sqlite:///{tmp_path}/control.db"
    running = start_control(control_settings(control_spawner.port, tmp_path, url, max_in_flight=1))
    try:
        # Admitted by this process, as admission writes it, with no relay.
        running.executions.store.reserve(
            key="a" * 32, tenant="tenant-a", execution_id="abandoned", group_id="", language=1, timeout_ms=60_000
        )
        with control_channel(running.port, "tenant-a") as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            settled = wait_for_verdict(stub, "abandoned")
            assert (settled.status, settled.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_SPAWNER_UNAVAILABLE)
            after = run(stub, request({"main.py": "print('next')"}), timeout=60).finished
            assert (after.status, after.stdout_preview) == (S.EXECUTION_STATUS_COMPLETED, b"next\n")
    finally:
        running.stop()


def assert_settled_and_slot_free_in(port: int, execution_id: str) -> pb.Execution:
    with control_channel(port, "tenant-a") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        settled = wait_for_verdict(stub, execution_id)
        assert (settled.status, settled.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_SPAWNER_UNAVAILABLE)
        assert settled.usage.wall_ms > 0  # measured on the spawner
        after = run(stub, request({"main.py": "print('next')"}), timeout=60).finished
        assert (after.status, after.stdout_preview) == (S.EXECUTION_STATUS_COMPLETED, b"next\n")
        return settled


def test_a_spawner_killed_mid_run_ends_the_execution_once_and_its_restart_reaps(control_spawner, docker_api, tmp_path):
    """Killed with SIGKILL while the code sleeps: the execution fails at
    once, SPAWNER_UNAVAILABLE; the other spawner never runs it; the next
    execution goes to the other spawner; the dead spawner's restart removes
    its sandbox, workspace and cgroup parent."""
    (tmp_path / "dying").mkdir()
    dying = SpawnerProcess(tmp_path / "dying", SPAWNER_CAPACITY="8")  # more free slots: control picks it
    try:
        killed_mid_run(control_spawner, dying, tmp_path)
    finally:
        if dying.process.poll() is None:
            dying.process.kill()
        dying.process.wait(10)
        dying.channel.close()
        # Its successor under the same name (also the test's clean-up).
        successor = start_spawner(make_settings(dying.name, dying.root))
        try:
            assert_nothing_left(docker_api, dying.name, dying.root, successor.spawner.cgroups)
        finally:
            successor.stop(grace_seconds=5)
            for leftover in labelled_containers(docker_api, dying.name):
                docker_api.remove_container(leftover["Id"], force=True)


def killed_mid_run(control_spawner, dying: SpawnerProcess, tmp_path: pathlib.Path) -> None:
    other = f"127.0.0.1:{control_spawner.port}"
    settings = control_settings(
        control_spawner.port, tmp_path, "", spawners=(f"127.0.0.1:{dying.port}", other), max_in_flight=2
    )
    running = start_control(settings)
    try:
        with control_channel(running.port, "tenant-a") as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            call = start_sleeper(stub, "doomed")
            os.kill(dying.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            finished = [e.finished for e in call if e.WhichOneof("event") == "finished"]
            assert time.monotonic() - killed < SETTLE_SECONDS
            (doomed,) = finished
            assert (doomed.status, doomed.error_code) == (S.EXECUTION_STATUS_FAILED, S.ERROR_CODE_SPAWNER_UNAVAILABLE)
            assert doomed.spawner == f"127.0.0.1:{dying.port}"
            assert doomed.stdout_preview.count(b"started") == 1  # what reached control before the kill
            key = running.executions.store.get("tenant-a", "doomed").key
            assert spawner_knows(control_spawner.spawner.executions(), key) == (False, None)
            after = run(stub, request({"main.py": "print('elsewhere')"}), timeout=60).finished
            assert (after.status, after.spawner) == (S.EXECUTION_STATUS_COMPLETED, other)
            assert wait_for_verdict(stub, "doomed").status == S.EXECUTION_STATUS_FAILED  # never changed again
    finally:
        running.stop()
