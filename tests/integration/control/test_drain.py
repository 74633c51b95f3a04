"""Control as operators run it (`python -m services.control`, SQLite in a
temporary directory, against the suite's in-process spawner): on SIGTERM it
admits nothing more, lets what is in flight finish within its drain, cancels
the rest with a reason the record keeps, and exits."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb
from sandbox.control.v1 import control_pb2_grpc
from services.control.drain import DRAINING_MESSAGE, cancel_message
from tests.integration.conftest import SECRET
from tests.integration.control.conftest import TENANT_KEYS, control_channel
from tests.integration.control.helpers import request
from tests.integration.helpers import free_port

ROOT = pathlib.Path(__file__).resolve().parents[3]
DRAIN_SECONDS = 8


class ControlProcess:
    def __init__(self, tmp_path: pathlib.Path, spawner_port: int, **env: str):
        self.port = free_port()
        self.database = tmp_path / "control.db"
        environment = dict(
            os.environ,
            CONTROL_LISTEN=f"127.0.0.1:{self.port}",
            CONTROL_METRICS_LISTEN="",  # off: the default port may be a running mesh's
            CONTROL_DATA_DIR=str(tmp_path),
            CONTROL_DATABASE_URL=f"sqlite:///{self.database}",
            CONTROL_SPAWNERS=f"127.0.0.1:{spawner_port}",
            CONTROL_SPAWNER_SECRET=SECRET,
            CONTROL_TENANT_KEYS=json.dumps(TENANT_KEYS),
            CONTROL_SLOT_SHARE="1.0",
            **env,
        )
        with open(tmp_path / "control.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.control"], cwd=ROOT, env=environment, stdout=log, stderr=log
            )
        subprocess.run(
            [sys.executable, "scripts/wait_healthy.py", f"127.0.0.1:{self.port}", "30"], cwd=ROOT, check=True
        )

    def record(self, execution_id: str) -> tuple[str, str, str]:
        with sqlite3.connect(self.database) as db:
            row = db.execute(
                "select status, error_code, error_message from executions where execution_id = ?", (execution_id,)
            ).fetchone()
        assert row is not None, execution_id
        return row


@pytest.fixture
def control_process(control_spawner, tmp_path):
    started: list[ControlProcess] = []

    def make(**env: str) -> ControlProcess:
        process = ControlProcess(tmp_path, control_spawner.port, **env)
        started.append(process)
        return process

    yield make
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def _until_stdout(call) -> None:
    for event in call:
        if event.WhichOneof("event") == "stdout":
            return
    raise AssertionError("the stream ended before the program printed")


def _refused_once_draining(stub, seconds: float = 30.0) -> grpc.RpcError:
    """A request that came in before the signal was handled runs as usual;
    the next one is tried (no fixed pause: a loaded machine takes its time)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            list(stub.Execute(request({"main.py": "print(1)"}), timeout=30))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                return exc
        assert time.monotonic() < deadline, "control still admits executions after SIGTERM"
        time.sleep(0.1)


def test_sigterm_drains_then_cancels_with_a_recorded_reason(control_process, control_spawner):
    control = control_process(CONTROL_DRAIN_SECONDS=str(DRAIN_SECONDS))
    with control_channel(control.port, "tenant-a") as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        quick = stub.Execute(
            request(
                {"main.py": "import time\nprint('q', flush=True)\ntime.sleep(1)\nprint('done')"}, execution_id="quick"
            ),
            timeout=120,
        )
        slow = stub.Execute(
            request({"main.py": "import time\nprint('s', flush=True)\ntime.sleep(120)"}, execution_id="slow"),
            timeout=120,
        )
        _until_stdout(quick)
        _until_stdout(slow)
        control.process.send_signal(signal.SIGTERM)

        refused = _refused_once_draining(stub)
        assert refused.code() == grpc.StatusCode.UNAVAILABLE, refused
        assert refused.details() == DRAINING_MESSAGE
        # Only admission stops: reads are still served during the drain.
        assert stub.GetExecution(pb.GetExecutionRequest(execution_id="slow"), timeout=10).execution_id == "slow"

        finished = [e.finished for e in quick if e.WhichOneof("event") == "finished"]
        assert [f.status for f in finished] == [common.EXECUTION_STATUS_COMPLETED], finished
        cut = [e.finished for e in slow if e.WhichOneof("event") == "finished"]
        assert [(f.status, f.error_code) for f in cut] == [
            (common.EXECUTION_STATUS_CANCELLED, common.ERROR_CODE_CANCELLED)
        ], cut
        assert cut[0].error_message == cancel_message(DRAIN_SECONDS)

    # A hang detector, not a measurement: the drain, the cancel, the stop.
    assert control.process.wait(timeout=DRAIN_SECONDS + 60) == 0
    assert control.record("quick") == ("completed", "", "")
    assert control.record("slow") == ("cancelled", "CANCELLED", cancel_message(DRAIN_SECONDS))
    # The spawner killed the cancelled sandbox: its slots are all free again.
    spawner = control_spawner.spawner
    deadline = time.monotonic() + 30
    while spawner.inflight.free_slots != spawner.settings.capacity:
        assert time.monotonic() < deadline, "the spawner's slots were not freed"
        time.sleep(0.1)
