"""One hardened sandbox container, driven through the Docker Engine API.

The container's PID 1 is the runtime image's runner in `hold` mode, which only
idles and reaps orphans; every program (the package install, then each step)
runs as a `docker exec`, so its exit code comes from the engine and not from
anything the sandboxed code prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http
import time
from collections.abc import Iterator
from typing import Protocol

import docker
from docker.types import LogConfig, Ulimit

from services.spawner import exec_stream, seccomp
from services.spawner.config import SpawnerSettings

SANDBOX_UID = 10001
WORKSPACE = "/workspace"
RUNNER = "/opt/sandbox/runner.py"
# Isolated and without site: the runner needs neither the environment's
# PYTHON* variables nor site-packages, and each sandbox pays its start-up.
RUNNER_COMMAND = ("python3", "-I", "-S", RUNNER)
STDIN_PATH = f"{WORKSPACE}/stdin"

LABEL_ROLE = "sandbox-mesh.role"
ROLE_SANDBOX = "sandbox"
LABEL_SPAWNER = "sandbox-mesh.spawner"
LABEL_EXECUTION = "sandbox-mesh.execution"
LABEL_TENANT = "sandbox-mesh.tenant"
LABEL_CREATED = "sandbox-mesh.created"
LABEL_WORKSPACE = "sandbox-mesh.workspace"

STDOUT, STDERR = exec_stream.STDOUT, exec_stream.STDERR
NO_EXIT_CODE = -1  # reported for a program that never finished

OPEN_FILES_LIMIT = 1024
# The host's OOM killer should pick sandboxes before anything else.
SANDBOX_OOM_SCORE_ADJ = 500
NANO_CPUS_PER_CPU = 1_000_000_000
# A sandbox with a network resolves no name itself (the egress does, for the
# proxy). The engine's embedded resolver (127.0.0.11, in every container on
# a user-defined network) forwards names it does not know to the container's
# DNS servers, or the host's when none is set, even from an internal
# network; given the sandbox's own loopback, where nothing listens, every
# forwarded query stays inside the sandbox and goes unanswered, quickly.
SANDBOX_NAMESERVERS = ["127.0.0.1"]
SANDBOX_RESOLVER_OPTIONS = ["timeout:1", "attempts:1"]
# The engine's answers to a kill of a container that is gone or not running.
_NOTHING_TO_KILL = (http.HTTPStatus.NOT_FOUND, http.HTTPStatus.CONFLICT)


@dataclasses.dataclass(frozen=True)
class ContainerLimits:
    memory_bytes: int
    cpus: float


def host_config(
    api: docker.APIClient,
    settings: SpawnerSettings,
    *,
    workspace: str,
    limits: ContainerLimits,
    cgroup_parent: str,
    network: str | None,
    extra_binds: dict[str, dict[str, str]] | None = None,
    oci_runtime: str | None = None,
    gvisor: bool = False,
) -> dict:
    """The container's hardening and limits. `gvisor`: it runs under gVisor,
    whose own kernel counts the program's processes and threads."""
    fsize = settings.file_size_limit_bytes
    ulimits = [
        Ulimit(name="fsize", soft=fsize, hard=fsize),
        Ulimit(name="nofile", soft=OPEN_FILES_LIMIT, hard=OPEN_FILES_LIMIT),
        Ulimit(name="core", soft=0, hard=0),
    ]
    pids_limit = settings.pids_limit
    if gvisor:
        # The engine's pids limit counts gVisor's own host threads and
        # processes (several per program process), and reaching it ends the
        # whole sandbox. The program's limit is RLIMIT_NPROC, which gVisor
        # counts inside the sandbox (a fork past it fails with EAGAIN, as
        # runc's pids limit makes it); the engine gets a wider bound for
        # gVisor itself. Under runc RLIMIT_NPROC would count every process of
        # the sandbox user on the host, across sandboxes, so it is not set.
        ulimits.append(Ulimit(name="nproc", soft=settings.pids_limit, hard=settings.pids_limit))
        pids_limit = settings.gvisor_pids_limit
    return api.create_host_config(
        binds={workspace: {"bind": WORKSPACE, "mode": "rw"}, **(extra_binds or {})},
        read_only=True,
        tmpfs={"/tmp": f"rw,nosuid,nodev,size={settings.tmpfs_bytes}"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true", seccomp.security_opt(settings.seccomp_profile)],
        mem_limit=limits.memory_bytes,
        memswap_limit=limits.memory_bytes,  # no swap: the limit is the limit
        nano_cpus=int(limits.cpus * NANO_CPUS_PER_CPU),
        pids_limit=pids_limit,
        ulimits=ulimits,
        network_mode=network or "none",
        dns=SANDBOX_NAMESERVERS if network else None,
        dns_opt=SANDBOX_RESOLVER_OPTIONS if network else None,
        cgroup_parent=cgroup_parent,
        runtime=oci_runtime or settings.oci_runtime,
        ipc_mode="private",
        oom_score_adj=SANDBOX_OOM_SCORE_ADJ,
        # Nothing reads a sandbox's own stdout and stderr (programs' output
        # comes through the runner or `docker exec`), and the engine's log
        # file would be host disk the code can fill without a bound through
        # /proc/1/fd/1. With no log driver the engine discards what comes.
        log_config=LogConfig(type=LogConfig.types.NONE),
    )


@dataclasses.dataclass(frozen=True)
class Ended:
    """A container that stopped: the engine's facts about it."""

    exit_code: int
    oom_killed: bool


class SandboxContainer:
    def __init__(self, api: docker.APIClient, container_id: str):
        self.api = api
        self.id = container_id

    @classmethod
    def create(
        cls,
        api: docker.APIClient,
        *,
        image: str,
        host_config: dict,
        labels: dict[str, str],
        environment: dict[str, str],
        command: list[str] | None = None,
    ) -> SandboxContainer:
        created = api.create_container(
            image=image,
            command=command or [*RUNNER_COMMAND, "hold"],
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            working_dir=f"{WORKSPACE}/code",
            environment=environment,
            labels=labels,
            host_config=host_config,
            network_disabled=host_config.get("NetworkMode") == "none",
            stop_signal="SIGKILL",
        )
        return cls(api, created["Id"])

    def start(self) -> None:
        self.api.start(self.id)

    def exec(self, argv: list[str], environment: dict[str, str], workdir: str = f"{WORKSPACE}/code") -> ExecHandle:
        created = self.api.exec_create(
            self.id,
            argv,
            stdout=True,
            stderr=True,
            stdin=False,
            user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            environment=environment,
            workdir=workdir,
        )
        return ExecHandle(self.api, created["Id"])

    def kill(self) -> None:
        try:
            self.api.kill(self.id)
        except docker.errors.APIError as exc:
            # Gone or not running any more, which is what we wanted.
            if exc.status_code not in _NOTHING_TO_KILL:
                raise

    def image_id(self) -> str:
        return str(self.api.inspect_container(self.id)["Image"])

    def running(self) -> bool:
        try:
            return bool(self.api.inspect_container(self.id)["State"].get("Running"))
        except docker.errors.NotFound:
            return False

    def oom_killed(self) -> bool:
        try:
            return bool(self.api.inspect_container(self.id)["State"].get("OOMKilled"))
        except docker.errors.NotFound:
            return False

    def ended(self) -> Ended | None:
        """How the container ended; None while it runs."""
        try:
            state = self.api.inspect_container(self.id)["State"]
        except docker.errors.NotFound:
            return Ended(NO_EXIT_CODE, oom_killed=False)
        if state.get("Running"):
            return None
        return Ended(int(state.get("ExitCode") or 0), oom_killed=bool(state.get("OOMKilled")))

    def wait_ended(self, timeout_seconds: int) -> None:
        """Returns once the container is not running (raises on timeout)."""
        with contextlib.suppress(docker.errors.NotFound):
            self.api.wait(self.id, timeout=timeout_seconds)

    def remove(self) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(self.id, force=True, v=True)


class ExecHandle:
    def __init__(self, api: docker.APIClient, exec_id: str):
        self.api = api
        self.id = exec_id
        self.started_at = 0.0
        self.finished_at = 0.0

    def stream(self) -> Iterator[tuple[int, bytes]]:
        """Yields (STDOUT|STDERR, bytes) as the program writes them, until it
        is gone (services/spawner/exec_stream.py)."""
        self.started_at = time.monotonic()
        try:
            yield from exec_stream.frames(self.api.exec_start(self.id, socket=True), self._running)
        finally:
            self.finished_at = time.monotonic()

    def _running(self) -> bool:
        try:
            return bool(self.api.exec_inspect(self.id).get("Running"))
        except docker.errors.NotFound:
            return False  # forgotten with its container, which ended
        except docker.errors.APIError:
            return True  # no answer: asked again after the next quiet interval

    def exit_code(self) -> int:
        """The program's exit code; NO_EXIT_CODE if it never finished: its
        container was killed before the exec started, or ended under it (the
        engine then forgets the exec)."""
        try:
            code = self.api.exec_inspect(self.id).get("ExitCode")
        except docker.errors.NotFound:
            return NO_EXIT_CODE
        return NO_EXIT_CODE if code is None else int(code)


class Program(Protocol):
    """A started program: an ExecHandle, or a RunnerProgram (handoff.py)."""

    def exit_code(self) -> int: ...


def exit_code_of(handle: Program | None, killed: object) -> int:
    """A program's exit code; NO_EXIT_CODE when it never began (killed
    first) or the engine lost it because the execution was killed."""
    if handle is None:
        return NO_EXIT_CODE
    try:
        return handle.exit_code()
    except docker.errors.APIError:
        if killed is None:
            raise
        return NO_EXIT_CODE
