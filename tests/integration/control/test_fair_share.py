"""Issue 11.6, slot hogging, against a real control and a real spawner of
4 slots: tenant A fills the mesh with programs that sleep (their CPU barely
moves). Tenant B's execution still starts at once and completes; A holds
only its share (2 of 4), its excess waits and runs later, or is refused
RESOURCE_EXHAUSTED at its caller's deadline with nothing charged; and A's
daily slot-time budget runs out though its CPU budget is all but untouched.

On the code before the fair queue, A held all 4 slots and B waited for one
of A's sleepers to end."""

from __future__ import annotations

import secrets
import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.control.server import start as start_control
from services.spawner.server import start as start_spawner
from tests.integration.conftest import assert_nothing_left, make_settings
from tests.integration.control.conftest import control_channel, control_settings, new_postgres_database
from tests.integration.control.helpers import request, run

pytestmark = pytest.mark.integration

SLOTS = 4
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"
SLEEPER_TIMEOUT_MS = 6000
# A's budget: three sleepers (18 s) fit, a fourth asking 5 s more never will.
A_DAILY_SLOT_SECONDS = 22
# B's execution must start within this of asking (a container start is ~1 s).
PROMPT_SECONDS = 5
# Every wait of the test is bounded by this.
WAIT_SECONDS = 60


@pytest.fixture(scope="module")
def small_spawner(docker_api, tmp_path_factory):
    name = f"fair-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("fair-workspaces")
    running = start_spawner(make_settings(name, root, capacity=SLOTS))
    yield running
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)


@pytest.fixture(params=["sqlite", "postgresql"])
def fair_control(request, small_spawner, tmp_path):
    url = "" if request.param == "sqlite" else new_postgres_database(request.getfixturevalue("postgres"))
    settings = control_settings(
        small_spawner.port,
        tmp_path,
        url,
        slot_share=0.5,
        max_in_flight=4,
        queue_timeout_seconds=30,
        tenant_quotas={"tenant-a": {"daily_slot_seconds": A_DAILY_SLOT_SECONDS}},
    )
    running = start_control(settings)
    yield running
    running.stop(grace_seconds=5)


class Sleeper(threading.Thread):
    """One of A's sleepers: its events as they come, and when it started."""

    def __init__(self, stub, execution_id: str):
        super().__init__(daemon=True)
        self.stub, self.execution_id = stub, execution_id
        self.events: list = []
        self.error: grpc.RpcError | None = None
        self.running = threading.Event()

    def run(self):
        req = request({"main.py": SLEEPER}, execution_id=self.execution_id, timeout_ms=SLEEPER_TIMEOUT_MS)
        try:
            for event in self.stub.Execute(req, timeout=WAIT_SECONDS):
                self.events.append(event)
                if event.WhichOneof("event") == "status" and event.status.status == common.EXECUTION_STATUS_RUNNING:
                    self.running.set()
        except grpc.RpcError as error:
            self.error = error

    @property
    def finished(self) -> pb.Execution:
        assert self.events and self.events[-1].WhichOneof("event") == "finished", (self.events, self.error)
        return self.events[-1].finished


def _wait_for(predicate, what: str, timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout}s: {what}")


def _quota_failure(error: grpc.RpcError) -> str:
    detail = error_details_pb2.QuotaFailure()
    assert rpc_status.from_call(error).details[0].Unpack(detail)
    return detail.violations[0].subject


def test_a_tenant_filling_the_mesh_with_sleepers_holds_only_its_share(fair_control):
    with (
        control_channel(fair_control.port, "tenant-a") as a_channel,
        control_channel(fair_control.port, "tenant-b") as b_channel,
    ):
        a, b = control_pb2_grpc.ControlStub(a_channel), control_pb2_grpc.ControlStub(b_channel)

        # A asks for three sleepers; two run (its share of 4 slots), one waits.
        sleepers = [Sleeper(a, f"sleeper-{i}") for i in range(3)]
        for sleeper in sleepers:
            sleeper.start()
        _wait_for(lambda: sum(s.running.is_set() for s in sleepers) == 2, "two of A's sleepers running")
        waiting = next(s for s in sleepers if not s.running.is_set())
        quota = a.GetQuota(pb.GetQuotaRequest())
        assert (quota.mesh_slots, quota.max_slots, quota.slots_held, quota.in_flight) == (SLOTS, 2, 2, 3)
        get = pb.GetExecutionRequest(execution_id=waiting.execution_id)
        assert a.GetExecution(get).status == common.EXECUTION_STATUS_QUEUED

        # A fourth, whose caller gives up after 3 s: refused at its deadline, nothing kept or charged.
        impatient = request({"main.py": SLEEPER}, execution_id="impatient", timeout_ms=1000)
        with pytest.raises(grpc.RpcError) as refused:
            list(a.Execute(impatient, timeout=3))
        # RESOURCE_EXHAUSTED, not DEADLINE_EXCEEDED: control answered just before the caller's deadline.
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        assert _quota_failure(refused.value) == "tenant:tenant-a/slot_share"
        with pytest.raises(grpc.RpcError) as missing:
            a.GetExecution(pb.GetExecutionRequest(execution_id="impatient"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

        # B is not made to wait for A.
        asked = time.monotonic()
        stream = run(b, request({"main.py": "print('b ran')"}, execution_id="b-prompt"), timeout=WAIT_SECONDS)
        b_done = stream.finished
        assert b_done.status == common.EXECUTION_STATUS_COMPLETED and stream.stdout == b"b ran\n"
        assert time.monotonic() - asked < PROMPT_SECONDS + SLEEPER_TIMEOUT_MS / 1000
        first_sleeper_end = min(
            a.GetExecution(pb.GetExecutionRequest(execution_id=s.execution_id)).finished_at_ms or 2**62
            for s in sleepers
        )
        assert b_done.started_at_ms - b_done.created_at_ms < PROMPT_SECONDS * 1000
        assert b_done.started_at_ms < first_sleeper_end, "B waited for one of A's slots"
        assert a.GetExecution(get).status == common.EXECUTION_STATUS_QUEUED  # A's excess still waits

        # A's excess runs once one of A's own slots frees.
        for sleeper in sleepers:
            sleeper.join(WAIT_SECONDS)
        ends = sorted(s.finished.finished_at_ms for s in sleepers if s is not waiting)
        assert waiting.finished.started_at_ms >= ends[0]
        for sleeper in sleepers:
            assert (sleeper.finished.status, sleeper.finished.error_code) == (
                common.EXECUTION_STATUS_FAILED,
                common.ERROR_CODE_TIMEOUT,
            )

        # Sleeping spent A's wall-clock budget, not its CPU.
        quota = a.GetQuota(pb.GetQuotaRequest())
        assert quota.slot_seconds_used >= 3 * SLEEPER_TIMEOUT_MS / 1000
        assert quota.cpu_seconds_used < 3
        assert (quota.in_flight, quota.slots_held) == (0, 0)
        with pytest.raises(grpc.RpcError) as spent:
            run(a, request({"main.py": "print(1)"}, timeout_ms=5000))
        assert spent.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert _quota_failure(spent.value) == "tenant:tenant-a/daily_slot_seconds"
        # B's budget is its own.
        assert run(b, request({"main.py": "print(2)"})).finished.status == common.EXECUTION_STATUS_COMPLETED
