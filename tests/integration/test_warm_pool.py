"""The warm pool on the real engine: hits, refills, the cold path for other
limits, the same hardening as a cold sandbox, nothing of a tenant before
assignment, one execution per container, drained on stop, left alone by the
reaper and removed after a crash."""

from __future__ import annotations

import os
import pathlib
import secrets
import signal
import time

import grpc
import pytest

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2_grpc
from services.common.auth import ClientAuthInterceptor
from services.spawner import sandbox
from services.spawner.provision import PoolKey
from services.spawner.server import start
from tests.integration.conftest import SECRET, assert_nothing_left, labelled_containers, make_settings
from tests.integration.helpers import execute
from tests.integration.helpers import request as program
from tests.integration.test_lifecycle import SpawnerProcess

pytestmark = pytest.mark.integration

HOSTNAME = "import socket\nprint(socket.gethostname())"


# Both hand-offs, and gVisor (the default runtime there, so the pool's
# entries, which name none, are gVisor's).
POOL_VARIANTS = {
    "runner": dict(handoff="runner"),
    "exec": dict(handoff="exec"),
    "gvisor": dict(handoff="runner", default_runtime="gvisor"),
}


def key(running, runtime: str) -> PoolKey:
    """The pool key of `runtime`'s warm sandboxes on this spawner."""
    return PoolKey(runtime, False, running.spawner.settings.default_runtime)


def wall(running) -> str:
    return running.spawner.settings.default_runtime


@pytest.fixture(scope="module", params=list(POOL_VARIANTS))
def pooled(request, docker_api, tmp_path_factory):
    name = f"pool-{secrets.token_hex(4)}"
    root = tmp_path_factory.mktemp("pool-workspaces")
    running = start(make_settings(name, root, warm_pool=("python=2", "node=1"), **POOL_VARIANTS[request.param]))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = spawner_pb2_grpc.SpawnerStub(grpc.intercept_channel(channel, ClientAuthInterceptor(SECRET.encode())))
    yield running, stub, name
    channel.close()
    running.stop(grace_seconds=5)
    assert_nothing_left(docker_api, name, root, running.spawner.cgroups)
    assert running.spawner.cleanup_failures == 0


def wait_full(running, key: PoolKey, seconds: float = 60.0) -> None:
    pool = running.spawner.pool
    deadline = time.monotonic() + seconds
    while pool.ready(key) < pool.targets[key]:
        assert time.monotonic() < deadline, f"the pool did not fill {key} in {seconds} s"
        time.sleep(0.05)


def sample(running, name: str, **labels) -> float:
    return running.spawner.metrics.registry.get_sample_value(name, labels) or 0.0


def _token(container: dict) -> str:
    """A sandbox's token, from its workspace label ('<owner>.<token>.ws')."""
    parts = (container["Labels"] or {}).get(sandbox.LABEL_WORKSPACE, "").split(".")
    return parts[1] if len(parts) == 3 else ""


def warm_containers(running, docker_api, name: str) -> list[dict]:
    """Containers of the spawner's warm sandboxes waiting for an execution
    (not used ones still being removed after their result)."""
    waiting = running.spawner.pool.tokens()
    return [c for c in labelled_containers(docker_api, name) if _token(c) in waiting]


def test_a_warm_sandbox_serves_one_execution_and_the_pool_refills(pooled, docker_api):
    running, stub, name = pooled
    wait_full(running, key(running, "python"))
    hits = sample(
        running, "sandbox_spawner_warm_pool_hits_total", runtime="python", network="none", sandbox_runtime=wall(running)
    )
    warm_before = {c["Id"][:12] for c in warm_containers(running, docker_api, name)}

    first = execute(stub, program({"main.py": HOSTNAME}))
    second = execute(stub, program({"main.py": HOSTNAME}))

    assert first.result.status == second.result.status == common.EXECUTION_STATUS_COMPLETED, first.result
    hosts = {first.stdout.decode().strip(), second.stdout.decode().strip()}
    assert len(hosts) == 2, "two executions shared a container"
    assert hosts <= warm_before, "the executions did not run in the warm sandboxes"
    assert (
        sample(
            running,
            "sandbox_spawner_warm_pool_hits_total",
            runtime="python",
            network="none",
            sandbox_runtime=wall(running),
        )
        == hits + 2
    )
    wait_full(running, key(running, "python"))
    assert running.spawner.provisioner.wait_removed(10)
    remaining = {c["Id"][:12] for c in labelled_containers(docker_api, name)}
    assert not hosts & remaining, "a used warm container was kept"
    assert (
        sample(
            running,
            "sandbox_spawner_warm_pool_refill_seconds_count",
            runtime="python",
            network="none",
            sandbox_runtime=wall(running),
        )
        >= 4
    )


def test_every_behaviour_holds_in_a_warm_sandbox(pooled):
    running, stub, _ = pooled
    wait_full(running, key(running, "node"))
    code = (
        "import os, sys\n"
        "print(sys.argv[1:], os.environ['GREETING'], sys.stdin.read(), os.getcwd())\n"
        "print('to stderr', file=sys.stderr)\n"
        "open('/workspace/output/out.txt', 'w').write('kept')\n"
        "sys.exit(3)\n"
    )
    req = program({"main.py": code}, args=["a b", "ü"], env={"GREETING": "hi"}, stdin=b"typed")
    outcome = execute(stub, req)
    assert outcome.stdout.decode() == "['a b', 'ü'] hi typed /workspace/code\n"
    assert outcome.stderr == b"to stderr\n"
    assert outcome.result.exit_code == 3
    assert outcome.result.error_code == common.ERROR_CODE_RUNTIME_ERROR
    assert [f.path for f in outcome.result.output_files] == ["out.txt"]
    node = execute(stub, program({"main.js": "console.log(1 + 1)"}, language="node"))
    assert node.stdout == b"2\n" and node.result.status == common.EXECUTION_STATUS_COMPLETED


def test_a_timeout_and_a_cancel_end_a_warm_sandbox(pooled):
    running, stub, _ = pooled
    wait_full(running, key(running, "python"))
    outcome = execute(stub, program({"main.py": "while True: pass"}, timeout_ms=1000))
    assert outcome.result.error_code == common.ERROR_CODE_TIMEOUT
    assert outcome.result.usage.cpu_seconds > 0.3


def test_other_limits_take_the_cold_path(pooled, docker_api):
    running, stub, name = pooled
    labels = {"runtime": "python", "network": "none", "sandbox_runtime": wall(running), "reason": "limits"}
    misses = sample(running, "sandbox_spawner_warm_pool_misses_total", **labels)
    outcome = execute(stub, program({"main.py": HOSTNAME}, memory_bytes=96 * 1024 * 1024))
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED
    assert outcome.stdout.decode().strip() not in {c["Id"][:12] for c in warm_containers(running, docker_api, name)}
    assert sample(running, "sandbox_spawner_warm_pool_misses_total", **labels) == misses + 1


def test_a_warm_sandbox_is_hardened_like_a_cold_one_and_holds_nothing_of_a_tenant(pooled, docker_api):
    running, _, name = pooled
    wait_full(running, key(running, "python"))
    settings = running.spawner.settings
    (warm_id, *_) = [c["Id"] for c in warm_containers(running, docker_api, name)]
    warm = docker_api.inspect_container(warm_id)
    host = warm["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == settings.default_memory_bytes
    assert host["NanoCpus"] == int(settings.default_cpus * 1e9)
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert any(opt.startswith("seccomp=") for opt in host["SecurityOpt"])
    assert host["NetworkMode"] == "none"
    nproc = [u["Hard"] for u in host["Ulimits"] if u["Name"] == "nproc"]
    assert host["Runtime"] == settings.engine_runtime(wall(running), network=False)
    if wall(running) == "runc":
        assert host["PidsLimit"] == settings.pids_limit and nproc == []
    else:  # gVisor: its own kernel counts the program's tasks; the engine bounds gVisor's
        assert host["PidsLimit"] == settings.gvisor_pids_limit and nproc == [settings.pids_limit]
    assert host["CgroupParent"] and host["IpcMode"] == "private"
    # No tenant anywhere: labels, environment, workspace.
    labels = warm["Config"]["Labels"]
    assert sandbox.LABEL_TENANT not in labels and sandbox.LABEL_EXECUTION not in labels
    assert not [e for e in warm["Config"]["Env"] if "PROXY" in e.upper()]
    (bind,) = [b for b in host["Binds"] if b.split(":")[1] == sandbox.WORKSPACE]
    workspace = pathlib.Path(bind.split(":")[0])
    assert list((workspace / "code").iterdir()) == [] and not (workspace / "stdin").exists()
    # Each warm sandbox has its own workspace and cgroup parent.
    others = [docker_api.inspect_container(c["Id"])["HostConfig"] for c in warm_containers(running, docker_api, name)]
    assert len({h["CgroupParent"] for h in others}) == len(others)
    assert len({tuple(h["Binds"]) for h in others}) == len(others)


def test_the_reaper_leaves_warm_sandboxes_alone(pooled, docker_api):
    running, stub, name = pooled
    wait_full(running, key(running, "python"))
    before = {c["Id"] for c in warm_containers(running, docker_api, name)}
    running.spawner.reap()  # no age limit: anything unowned goes
    assert {c["Id"] for c in warm_containers(running, docker_api, name)} == before
    assert execute(stub, program({"main.py": "print(1)"})).result.status == common.EXECUTION_STATUS_COMPLETED


def test_warm_sandboxes_of_a_crashed_spawner_are_reaped_at_the_next_start(docker_api, tmp_path):
    crashed = SpawnerProcess(tmp_path, SPAWNER_WARM_POOL="python=2")
    try:
        deadline = time.monotonic() + 60
        while len(labelled_containers(docker_api, crashed.name)) < 2:
            assert time.monotonic() < deadline, "the pool did not fill"
            time.sleep(0.1)
    finally:
        os.kill(crashed.process.pid, signal.SIGKILL)
        crashed.process.wait(10)
        crashed.channel.close()
    assert len(labelled_containers(docker_api, crashed.name)) >= 2
    successor = start(make_settings(crashed.name, crashed.root, warm_pool=()))
    try:
        assert labelled_containers(docker_api, crashed.name) == []
    finally:
        successor.stop(grace_seconds=5)
    assert_nothing_left(docker_api, crashed.name, crashed.root, successor.spawner.cgroups)


LEAVE_TRACES = """
import os, subprocess
subprocess.Popen(['sleep', '300'], start_new_session=True)
open('/tmp/trace', 'w').write('left')
open('/workspace/trace', 'w').write('left')
print('left traces', flush=True)
"""

LOOK_FOR_TRACES = """
import os
sleepers = [p for p in os.listdir('/proc') if p.isdigit()
            and open(f'/proc/{p}/cmdline', 'rb').read().startswith(b'sleep')]
print(sleepers, os.path.exists('/tmp/trace'), os.path.exists('/workspace/trace'))
"""


def test_what_one_execution_leaves_behind_never_reaches_the_next(pooled):
    running, stub, _ = pooled
    wait_full(running, key(running, "python"))
    first = execute(stub, program({"main.py": LEAVE_TRACES}))
    assert first.stdout == b"left traces\n"
    wait_full(running, key(running, "python"))
    second = execute(stub, program({"main.py": LOOK_FOR_TRACES}))
    assert second.stdout == b"[] False False\n", second.stderr


def test_warm_sandboxes_that_died_while_waiting_are_not_used(pooled, docker_api):
    running, stub, name = pooled
    wait_full(running, key(running, "python"))
    failures_before = running.spawner.cleanup_failures
    for container in warm_containers(running, docker_api, name):
        docker_api.kill(container["Id"])  # as an engine restart would
    outcome = execute(stub, program({"main.py": "print('still served')"}))
    assert outcome.result.status == common.EXECUTION_STATUS_COMPLETED, outcome.result
    assert outcome.stdout == b"still served\n"
    wait_full(running, key(running, "python"))
    assert running.spawner.cleanup_failures == failures_before
