"""The spawner as a process: SIGTERM drain, bounded memory under a flood,
capacity under a burst, metrics, and the sweep."""

from __future__ import annotations

import os
import pathlib
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner import sandbox
from services.spawner.cgroups import CgroupLayout
from tests.integration.conftest import RUNTIME_IMAGE, SECRET, assert_nothing_left, labelled_containers
from tests.integration.helpers import collect, execute, free_port, request

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]


class SpawnerProcess:
    """`python -m services.spawner` as operators run it."""

    def __init__(self, tmp_path: pathlib.Path, name: str = "", **env):
        self.name = name or f"proc-{secrets.token_hex(4)}"
        self.port = free_port()
        self.metrics_port = free_port()
        self.root = tmp_path / "workspaces"
        self.log = tmp_path / "spawner.log"
        environment = dict(
            os.environ,
            SPAWNER_LISTEN=f"127.0.0.1:{self.port}",
            SPAWNER_METRICS_LISTEN=f"127.0.0.1:{self.metrics_port}",
            SPAWNER_NAME=self.name,
            SPAWNER_WORKSPACE_ROOT=str(self.root),
            SPAWNER_SECRET=SECRET,
            **env,
        )
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.spawner"], cwd=ROOT, env=environment, stdout=log, stderr=log
            )
        subprocess.run(
            [sys.executable, "scripts/wait_healthy.py", f"127.0.0.1:{self.port}", "30"], cwd=ROOT, check=True
        )
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = spawner_pb2_grpc.SpawnerStub(
            grpc.intercept_channel(self.channel, ClientAuthInterceptor(SECRET.encode()))
        )

    def peak_rss_bytes(self) -> int:
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> int:
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


@pytest.fixture
def spawner_process(docker_api, tmp_path):
    started = []

    def make(**env):
        process = SpawnerProcess(tmp_path, **env)
        started.append(process)
        return process

    yield make
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()
        for container in labelled_containers(docker_api, process.name):
            docker_api.remove_container(container["Id"], force=True)


def refused_once_draining(stub, seconds: float = 30.0) -> grpc.RpcError:
    """The refusal of a new execution once the signalled process drains. A
    request that came in before the signal was handled runs normally; the
    next one is asked for (no fixed pause: a loaded machine may take its time)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            collect(stub.Execute(request({"main.py": "print(1)"}), timeout=10))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                return exc
        assert time.monotonic() < deadline, "still admitting executions after SIGTERM"
        time.sleep(0.1)


def test_sigterm_drains_then_cancels_and_leaves_nothing(spawner_process, docker_api):
    drain_seconds = 8
    spawner = spawner_process(SPAWNER_DRAIN_SECONDS=str(drain_seconds))
    # `quick` needs a second after its first line; the drain gives it eight.
    quick = request({"main.py": "import time\nprint('q', flush=True)\ntime.sleep(1)\nprint('done')"})
    slow = request({"main.py": "import time\nprint('s', flush=True)\ntime.sleep(120)"})
    quick_call = spawner.stub.Execute(quick, timeout=120)
    slow_call = spawner.stub.Execute(slow, timeout=120)
    for call in (quick_call, slow_call):
        for event in call:
            if event.WhichOneof("event") == "stdout":
                break
    spawner.process.send_signal(signal.SIGTERM)
    refused = refused_once_draining(spawner.stub)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE, refused
    assert "shutting down" in (refused.details() or "")
    quick_outcome, slow_outcome = collect(quick_call), collect(slow_call)
    assert quick_outcome.result.status == common.EXECUTION_STATUS_COMPLETED  # finished within the drain
    assert quick_outcome.stdout.endswith(b"done\n")  # it ran to its end ("q" was read above)
    assert slow_outcome.result.status == common.EXECUTION_STATUS_CANCELLED  # cut at the drain's end
    assert "shutting down" in slow_outcome.result.error_message
    # A hang detector, not a measurement: the drain, then clean-up.
    assert spawner.process.wait(timeout=drain_seconds + 60) == 0
    layout = CgroupLayout.detect("/sys/fs/cgroup", docker_api.info().get("CgroupDriver", "cgroupfs"))
    assert_nothing_left(docker_api, spawner.name, spawner.root, layout)
    assert layout.spawner_directories(spawner.name) == []


def test_one_gigabyte_flood_is_cut_and_memory_stays_bounded(spawner_process):
    spawner = spawner_process(SPAWNER_MAX_OUTPUT_BYTES=str(128 * 1024 * 1024))
    before = spawner.peak_rss_bytes()
    code = "import sys\nblock = 'x' * 65536\nfor _ in range(16384):\n    sys.stdout.write(block)"  # 1 GiB
    outcome = execute(spawner.stub, request({"main.py": code}, timeout_ms=120_000), timeout=180)
    assert outcome.result.error_code == common.ERROR_CODE_OUTPUT_LIMIT, outcome.result
    assert len(outcome.stdout) == 128 * 1024 * 1024
    grown = spawner.peak_rss_bytes() - before
    assert grown < 96 * 1024 * 1024, f"spawner peak RSS grew by {grown / 2**20:.0f} MiB"
    assert spawner.stop() == 0


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_burst_of_twenty_against_capacity_four(spawner_process, docker_api):
    """Twenty at once against four slots: every slot is used, never more than
    four run at the same time, and the rest are refused at once (how many
    run in all depends on how the machine schedules the twenty callers, so
    it is not counted exactly)."""
    spawner = spawner_process(SPAWNER_CAPACITY="4")
    barrier = threading.Barrier(20)
    results: list = [None] * 20
    # Each program reports when it ran (the containers share the host's clock).
    code = "import time\nstart = time.time()\ntime.sleep(5)\nprint(start, time.time())"

    def run(i):
        barrier.wait()
        try:
            outcome = execute(spawner.stub, request({"main.py": code}), timeout=120)
            results[i] = (outcome.result.status, outcome.stdout)
        except grpc.RpcError as exc:
            results[i] = (exc.code(), b"")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    completed = [
        tuple(map(float, out.split())) for status, out in results if status == common.EXECUTION_STATUS_COMPLETED
    ]
    refused = [status for status, _ in results if status == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert len(completed) + len(refused) == 20, results
    assert len(completed) >= 4 and refused, results
    assert _most_at_once(completed) <= 4, completed
    assert spawner.stop() == 0
    assert labelled_containers(docker_api, spawner.name) == []
    assert list(spawner.root.iterdir()) == []


def test_metrics_endpoint(spawner_server, stub):
    execute(stub, request({"main.py": "print(1)"}))
    execute(stub, request({"main.py": "import sys\nsys.exit(4)"}))
    body = urllib.request.urlopen(f"http://127.0.0.1:{spawner_server.metrics_port}/metrics", timeout=10).read().decode()
    assert 'sandbox_spawner_executions_total{error_code="none",status="completed"}' in body
    assert 'sandbox_spawner_executions_total{error_code="runtime_error",status="failed"}' in body
    assert "sandbox_spawner_execution_duration_seconds_bucket" in body
    assert "sandbox_spawner_free_slots 4.0" in body
    assert "sandbox_spawner_in_flight 0.0" in body


def test_sweep_removes_old_unowned_leftovers_only(spawner_server, stub, docker_api, spawner_name, workspace_root):
    spawner = spawner_server.spawner
    orphan = docker_api.create_container(
        RUNTIME_IMAGE,
        command=[*sandbox.RUNNER_COMMAND, "hold"],
        labels={
            sandbox.LABEL_ROLE: sandbox.ROLE_SANDBOX,
            sandbox.LABEL_SPAWNER: spawner_name,
            sandbox.LABEL_WORKSPACE: "orphan.0123456789abcdef.ws",
        },
        host_config=docker_api.create_host_config(network_mode="none"),
    )
    orphan_workspace = pathlib.Path(workspace_root) / "orphan.0123456789abcdef.ws"
    orphan_workspace.mkdir()
    req = request({"main.py": "import time\nprint('owned', flush=True)\ntime.sleep(60)"})
    call = stub.Execute(req, timeout=60)
    try:
        for event in call:
            if event.WhichOneof("event") == "stdout":
                break
        spawner.reap(min_age_seconds=3600)  # everything is younger: nothing goes
        assert orphan_workspace.exists()
        assert any(c["Id"] == orphan["Id"] for c in labelled_containers(docker_api, spawner_name))
        time.sleep(1.1)
        spawner.reap(min_age_seconds=1)  # the orphan goes, the execution in flight stays
        assert not orphan_workspace.exists()
        ids = [c["Id"] for c in labelled_containers(docker_api, spawner_name)]
        assert orphan["Id"] not in ids
        assert len(labelled_containers(docker_api, spawner_name, req.execution_id)) == 1
    finally:
        call.cancel()
        for container in labelled_containers(docker_api, spawner_name):
            if container["Id"] == orphan["Id"]:
                docker_api.remove_container(orphan["Id"], force=True)
        # The cancelled execution's sandbox goes in the background; the next
        # test of this spawner must not find it still there.
        deadline = time.monotonic() + 30
        while labelled_containers(docker_api, spawner_name, req.execution_id):
            assert time.monotonic() < deadline, "the cancelled execution's sandbox was not removed in 30 s"
            time.sleep(0.1)
