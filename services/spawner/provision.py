"""A sandbox: a started, hardened container with its own workspace, cgroup
parent, network (when it has one) and, with the runner hand-off, the
spawner's one connection to the runner inside. Made the same way whether an
execution asked for it just now (the cold path) or the warm pool made it
ahead of demand; either way it serves one execution and is then taken apart.

Nothing of any tenant is in a sandbox until it is assigned: its files are
staged, its egress credentials minted and the egress told its address only
then (services/spawner/execution.py).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable

import docker

from services.common.contract.runtimes import language_of
from services.common.contract.sandbox_runtimes import GVISOR, RUNC
from services.spawner import cleanup, handoff, sandbox
from services.spawner.cgroups import CgroupLayout, CgroupParent
from services.spawner.cleanup import CleanUpReport, OnFailure
from services.spawner.config import SpawnerSettings
from services.spawner.install_cache import InstallCache
from services.spawner.netpool import Lease
from services.spawner.network import NetworkAccess
from services.spawner.workspace import Workspace, WorkspaceLimits

_TOKEN_BYTES = 8
# What a warm sandbox's workspace is called before any execution owns it.
WARM_OWNER = "warm"
# How long a started runner may take to open its socket.
RUNNER_START_SECONDS = 10.0
_STDIN_WRAPPER = 'exec "$@" < /workspace/stdin'


@dataclasses.dataclass(frozen=True)
class PoolKey:
    """What makes two sandboxes interchangeable before assignment."""

    runtime: str  # the image: services/common/contract/runtimes.py
    network: bool
    sandbox_runtime: str = RUNC  # the kernel wall: services/common/contract/sandbox_runtimes.py
    session: bool = False  # its interpreter started ahead, for a session (sessions/manager.py)


@dataclasses.dataclass
class Sandbox:
    key: PoolKey
    limits: sandbox.ContainerLimits
    token: str
    workspace: Workspace
    parent: CgroupParent
    created_at: float = dataclasses.field(default_factory=time.monotonic)
    container: sandbox.SandboxContainer | None = None
    lease: Lease | None = None
    runner: handoff.RunnerConnection | None = None

    def ended(self) -> sandbox.Ended | None:
        """How its container ended by itself; None while it runs or before it exists."""
        return self.container.ended() if self.container is not None else None

    def start_program(
        self, argv: list[str], environment: dict[str, str], workdir: str, stdin: bool
    ) -> sandbox.ExecHandle | handoff.RunnerProgram:
        """Starts one program in the started sandbox; `stdin` feeds it the
        workspace's stdin file (else it reads nothing)."""
        if self.container is None:
            raise RuntimeError("the sandbox has no container")
        if self.runner is not None:
            return self.runner.start(argv, environment, workdir, sandbox.STDIN_PATH if stdin else None)
        if stdin:
            argv = ["/bin/sh", "-c", _STDIN_WRAPPER, "sandbox-run", *argv]
        return self.container.exec(argv, environment, workdir=workdir)


class Provisioner:
    def __init__(
        self,
        settings: SpawnerSettings,
        api: docker.APIClient,
        cgroups: CgroupLayout,
        network: NetworkAccess | None,
    ):
        self.settings = settings
        self.api = api
        self.cgroups = cgroups
        self.network = network
        self.install_cache = (
            InstallCache(settings.install_cache_dir, settings.install_cache_max_bytes)
            if settings.install_cache_dir
            else None
        )
        # Sandboxes stopped but not yet removed (their removal runs after
        # their caller has the result); at most this many at once, past
        # which removal happens before the result again.
        self._deferred_removals = threading.BoundedSemaphore(settings.capacity)
        self._removing: set[str] = set()  # tokens of sandboxes removed after their result
        self._removed = threading.Condition()

    def plan(self, key: PoolKey, limits: sandbox.ContainerLimits, owner: str = WARM_OWNER) -> Sandbox:
        """A sandbox's names, so that clean-up finds whatever part of it a
        failed start left; nothing is made yet."""
        token = secrets.token_hex(_TOKEN_BYTES)
        return Sandbox(
            key=key,
            limits=limits,
            token=token,
            workspace=Workspace.at(self.settings.workspace_root, owner, token),
            parent=self.cgroups.parent_for(self.settings.name, token),
        )

    def make_workspace(self, box: Sandbox) -> None:
        s = self.settings
        box.workspace.create(WorkspaceLimits(s.max_workspace_bytes, s.max_workspace_inodes))

    def start(
        self,
        box: Sandbox,
        labels: dict[str, str],
        adopt: Callable[[sandbox.SandboxContainer], bool] = lambda _: True,
    ) -> bool:
        """Creates and starts the container, then connects to its runner.
        `adopt` sees the container as soon as it exists (so that a cancel can
        kill it) and says whether to go on; False when it said stop."""
        if box.key.network:
            if self.network is None:
                raise RuntimeError("a sandbox with a network needs the egress")
            box.lease = self.network.lease()
        box.container = self._create_container(box, labels)
        if not adopt(box.container):
            return False
        box.container.start()
        if self._uses_runner(box.key):
            box.runner = handoff.connect(box.workspace.path, RUNNER_START_SECONDS, box.container.running)
        return True

    def destroy(self, box: Sandbox, on_failure: OnFailure) -> CleanUpReport:
        """Takes everything of the sandbox away; never raises (each failure
        goes to `on_failure` and the rest goes on)."""
        report = self.stop(box, on_failure)
        self.remove(box, on_failure)
        return report

    def stop(self, box: Sandbox, on_failure: OnFailure) -> CleanUpReport:
        """Kills everything in the sandbox and reads what it used."""
        return cleanup.stop(box.container, box.parent, on_failure)

    def may_defer_removal(self, box: Sandbox) -> bool:
        """Whether a stopped sandbox may be removed after its result is sent;
        if so, call removal_deferred_done() once it is removed."""
        if not self._deferred_removals.acquire(blocking=False):
            return False
        with self._removed:
            self._removing.add(box.token)
        return True

    def removal_deferred_done(self, box: Sandbox) -> None:
        self._deferred_removals.release()
        with self._removed:
            self._removing.discard(box.token)
            self._removed.notify_all()

    def removing(self) -> set[str]:
        """Tokens of sandboxes being removed after their result (owned: the
        reaper must leave them to their execution)."""
        with self._removed:
            return set(self._removing)

    def wait_removed(self, timeout_seconds: float) -> bool:
        """Waits until no removal runs after its result; False at the timeout."""
        with self._removed:
            return self._removed.wait_for(lambda: not self._removing, timeout_seconds)

    def remove(self, box: Sandbox, on_failure: OnFailure) -> None:
        """Removes the stopped sandbox's container, cgroup parent, workspace
        and network lease; never raises."""
        if box.runner is not None:
            try:
                box.runner.close()
            except Exception as exc:
                on_failure("container", exc)
            box.runner = None
        cleanup.remove(
            box.container, box.workspace, box.parent, on_failure, end_by_signal=box.key.sandbox_runtime != GVISOR
        )
        box.container = None
        if self.network is not None and box.lease is not None:  # only now: its sandbox is gone
            try:
                self.network.release(box.lease)
            except Exception as exc:
                on_failure("network", exc)
            box.lease = None

    def _uses_runner(self, key: PoolKey) -> bool:
        """gVisor sandboxes always use `docker exec`: the runner's socket,
        bound inside gVisor, is gVisor's own and never reaches the host
        (docs/security.md, What changes under gVisor)."""
        return self.settings.handoff == "runner" and key.sandbox_runtime != GVISOR

    def _create_container(self, box: Sandbox, labels: dict[str, str]) -> sandbox.SandboxContainer:
        settings = self.settings
        network = self.network if box.lease is not None else None
        host_config = sandbox.host_config(
            self.api,
            settings,
            workspace=str(box.workspace.path),
            limits=box.limits,
            cgroup_parent=box.parent.docker_value,
            network=box.lease.network if box.lease else None,
            extra_binds=network.binds() if network else None,
            oci_runtime=settings.engine_runtime(box.key.sandbox_runtime, box.lease is not None),
            gvisor=box.key.sandbox_runtime == GVISOR,
        )
        labels = {
            sandbox.LABEL_ROLE: sandbox.ROLE_SANDBOX,
            sandbox.LABEL_SPAWNER: settings.name,
            sandbox.LABEL_CREATED: str(int(time.time())),
            sandbox.LABEL_WORKSPACE: box.workspace.path.name,
            **labels,
        }
        command = None
        if self._uses_runner(box.key):
            command = handoff.runner_command(language_of(box.key.runtime))
        return sandbox.SandboxContainer.create(
            self.api,
            image=settings.runtime_images()[box.key.runtime],
            host_config=host_config,
            labels=labels,
            environment={},
            command=command,
        )
