"""The container's limits under runc and under gVisor, and what the engine
says about a program or container that ended."""

from __future__ import annotations

import docker
import pytest

from services.spawner import sandbox
from services.spawner.config import SpawnerSettings

LIMITS = sandbox.ContainerLimits(memory_bytes=256 * 1024 * 1024, cpus=1.0)


def host(gvisor: bool) -> dict:
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")  # builds the config offline
    settings = SpawnerSettings(insecure=True, pids_limit=128, gvisor_pids_limit=1024)
    config = sandbox.host_config(
        api, settings, workspace="/w", limits=LIMITS, cgroup_parent="/p", network=None, gvisor=gvisor
    )
    api.close()
    return config


def test_under_runc_the_engine_counts_the_programs_tasks_and_nproc_is_not_set():
    # RLIMIT_NPROC on the host would count the sandbox user's processes in every sandbox.
    config = host(gvisor=False)
    assert config["PidsLimit"] == 128
    assert "nproc" not in {u["Name"] for u in config["Ulimits"]}


def test_under_gvisor_its_kernel_counts_the_programs_tasks_and_the_engine_bounds_gvisor():
    config = host(gvisor=True)
    assert config["PidsLimit"] == 1024
    (nproc,) = [u for u in config["Ulimits"] if u["Name"] == "nproc"]
    assert nproc["Soft"] == nproc["Hard"] == 128


class FakeApi:
    def __init__(self, exec_answer: dict | Exception, container_state: dict | Exception):
        self.exec_answer, self.container_state = exec_answer, container_state

    def exec_inspect(self, exec_id: str) -> dict:
        if isinstance(self.exec_answer, Exception):
            raise self.exec_answer
        return self.exec_answer

    def inspect_container(self, container_id: str) -> dict:
        if isinstance(self.container_state, Exception):
            raise self.container_state
        return {"State": self.container_state}


GONE = docker.errors.NotFound("No such exec instance")


@pytest.mark.parametrize(
    "answer, code",
    [({"ExitCode": 3, "Running": False}, 3), ({"ExitCode": None, "Running": True}, sandbox.NO_EXIT_CODE), (GONE, -1)],
)
def test_a_program_the_engine_forgot_with_its_container_has_no_exit_code(answer, code):
    handle = sandbox.ExecHandle(FakeApi(answer, {}), "exec-id")  # type: ignore[arg-type]
    assert handle.exit_code() == code


@pytest.mark.parametrize(
    "state, ended",
    [
        ({"Running": True}, None),
        ({"Running": False, "ExitCode": 2, "OOMKilled": False}, sandbox.Ended(2, oom_killed=False)),
        ({"Running": False, "ExitCode": 137, "OOMKilled": True}, sandbox.Ended(137, oom_killed=True)),
        (docker.errors.NotFound("gone"), sandbox.Ended(sandbox.NO_EXIT_CODE, oom_killed=False)),
    ],
)
def test_how_a_container_ended(state, ended):
    container = sandbox.SandboxContainer(FakeApi({}, state), "container-id")  # type: ignore[arg-type]
    assert container.ended() == ended
