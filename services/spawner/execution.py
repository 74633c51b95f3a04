"""One execution: stage, run in a sandbox container, stream, classify, clean up.

`Execution.run()` runs on a worker thread of its own and pushes events into a
bounded queue that the gRPC call drains. Clean-up therefore never depends on
the caller still listening: a caller that goes away cancels the execution,
its events are dropped, and the worker still removes the container, the
workspace and the cgroup parent.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from typing import Callable, Iterator

import docker

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.spawner import sandbox
from services.spawner.cgroups import CgroupLayout, CgroupParent, CgroupUsage
from services.spawner.config import SpawnerSettings
from services.spawner.validation import ExecutionSpec
from services.spawner.workspace import Workspace

log = logging.getLogger(__name__)

ErrorCode = common.ErrorCode
Status = common.ExecutionStatus

_STDIN_WRAPPER = 'exec "$@" < /workspace/stdin'
_INTERPRETERS = {"python": ["python3"], "node": ["node"]}
_EVENT_QUEUE_SIZE = 64


class Execution:
    def __init__(
        self,
        spec: ExecutionSpec,
        settings: SpawnerSettings,
        api: docker.APIClient,
        cgroups: CgroupLayout,
        on_cleanup_failure: Callable[[str, Exception], None],
        on_finished: Callable[["Execution"], None],
    ):
        self.spec = spec
        self.settings = settings
        self.api = api
        self.cgroups = cgroups
        self.on_cleanup_failure = on_cleanup_failure
        self.on_finished = on_finished
        self.token = secrets.token_hex(8)
        self.admitted_at = time.monotonic()
        self.finished = threading.Event()
        self._events: queue.Queue = queue.Queue(maxsize=_EVENT_QUEUE_SIZE)
        self._listener_gone = threading.Event()
        self._lock = threading.Lock()
        self._kill: tuple[int, str] | None = None  # (ErrorCode, message); first wins
        self._container: sandbox.SandboxContainer | None = None
        self._stdout_bytes = 0
        self._stderr_bytes = 0
        self._oom_from_engine = False

    # ---- called from other threads -------------------------------------

    def cancel(self, code: int = ErrorCode.ERROR_CODE_CANCELLED, message: str = "cancelled") -> bool:
        """Kills the execution; the first reason given is the one reported."""
        with self._lock:
            if self.finished.is_set():
                return False
            if self._kill is None:
                self._kill = (code, message)
            container = self._container
        if container is not None:
            try:
                container.kill()
            except docker.errors.DockerException as exc:
                # The worker's clean-up still force-removes the container.
                log.error("execution %s: kill failed: %s", self.spec.execution_id, exc)
        return True

    def listener_gone(self) -> None:
        """The caller hung up (cancelled, deadline passed, or disconnected)."""
        self._listener_gone.set()
        self.cancel(ErrorCode.ERROR_CODE_CANCELLED, "the caller went away")

    def events(self) -> Iterator[pb.ExecuteEvent]:
        """The events for the caller, ending with the result."""
        while True:
            try:
                event = self._events.get(timeout=0.5)
            except queue.Empty:
                if self.finished.is_set() and self._events.empty():
                    return
                continue
            if event is None:
                return
            yield event

    # ---- the worker ----------------------------------------------------

    def run(self) -> None:
        try:
            result = self._run()
        except Exception as exc:  # noqa: BLE001 - any failure here is the spawner's
            log.exception("execution %s failed in the spawner", self.spec.execution_id)
            result = pb.ExecuteResult(
                status=Status.EXECUTION_STATUS_FAILED,
                error_code=ErrorCode.ERROR_CODE_SPAWNER_UNAVAILABLE,
                error_message=f"spawner error: {exc}",
                exit_code=-1,
            )
        with self._lock:
            self.finished.set()
        # Free the slot before the caller sees the result, so a caller that
        # immediately sends the next request finds it free.
        self.on_finished(self)
        self._emit(pb.ExecuteEvent(result=result))
        self._emit(None)

    def _run(self) -> pb.ExecuteResult:
        spec = self.spec
        token = self.token
        workspace: Workspace | None = None
        container: sandbox.SandboxContainer | None = None
        parent = self.cgroups.parent_for(self.settings.name, token)
        steps: list[common.StepResult] = []
        exit_code = -1
        wall_ms = 0
        failure: tuple[int, str] | None = None
        usage = CgroupUsage()
        try:
            self._phase(pb.PHASE_STARTING)
            workspace = Workspace.create(self.settings.workspace_root, spec.execution_id, token)
            workspace.stage(spec.files, spec.stdin)
            if spec.prior_outputs:
                workspace.stage_outputs(spec.prior_outputs)
            container = self._create_container(workspace, parent, token)
            with self._lock:
                self._container = container
                killed_early = self._kill is not None
            if not killed_early:
                container.start()
                self._phase(pb.PHASE_RUNNING)
                exit_code, wall_ms, steps, failure = self._run_steps(container)
            self._phase(pb.PHASE_FINISHING)
        finally:
            usage = self._clean_up(container, workspace, parent)
        return self._result(exit_code, wall_ms, steps, failure, usage)

    def _create_container(
        self, workspace: Workspace, parent: CgroupParent, token: str
    ) -> sandbox.SandboxContainer:
        spec, settings = self.spec, self.settings
        image = settings.python_image if spec.language == "python" else settings.node_image
        host_config = sandbox.host_config(
            self.api,
            settings,
            workspace=str(workspace.path),
            limits=sandbox.ContainerLimits(spec.memory_bytes, spec.cpus),
            cgroup_parent=parent.docker_value,
            network=None,
        )
        labels = {
            sandbox.LABEL_ROLE: sandbox.ROLE_SANDBOX,
            sandbox.LABEL_SPAWNER: settings.name,
            sandbox.LABEL_EXECUTION: spec.execution_id,
            sandbox.LABEL_TENANT: spec.tenant,
            sandbox.LABEL_CREATED: str(int(time.time())),
            sandbox.LABEL_WORKSPACE: workspace.path.name,
        }
        return sandbox.SandboxContainer.create(
            self.api, image=image, host_config=host_config, labels=labels, environment={}
        )

    def _run_steps(self, container: sandbox.SandboxContainer):
        """Runs the steps in order until one fails or the execution is killed.
        Returns (last exit code, wall ms, step results, failure or None)."""
        spec = self.spec
        timer = threading.Timer(spec.timeout_ms / 1000, self._time_out)
        timer.daemon = True
        timer.start()
        started = time.monotonic()
        results: list[common.StepResult] = []
        exit_code = -1
        failure = None
        try:
            for index, step in enumerate(spec.steps):
                argv = ["/bin/sh", "-c", _STDIN_WRAPPER, "sandbox-run"]
                argv += [*_INTERPRETERS[spec.language], step.path, *step.args]
                try:
                    handle = container.exec(argv, dict(spec.env))
                    self._relay(handle.stream(), index)
                    exit_code = handle.exit_code()
                    duration = handle.finished_at - handle.started_at
                except docker.errors.APIError:
                    if self._killed() is None:
                        raise
                    exit_code, duration = -1, 0.0  # killed before the exec began
                killed = self._killed()
                ok = exit_code == 0 and killed is None
                result = common.StepResult(
                    index=index,
                    path=step.path,
                    status=Status.EXECUTION_STATUS_COMPLETED if ok else Status.EXECUTION_STATUS_FAILED,
                    exit_code=exit_code,
                    duration_ms=int(duration * 1000),
                )
                results.append(result)
                self._emit(pb.ExecuteEvent(step=result))
                if not ok:
                    failure = (index, step.path)
                    break
        finally:
            timer.cancel()
        return exit_code, int((time.monotonic() - started) * 1000), results, failure

    def _relay(self, chunks: Iterator[tuple[int, bytes]], step_index: int) -> None:
        """Streams output to the caller up to the cap; past it, kills the run
        and keeps draining so the engine's stream ends cleanly."""
        cap = self.settings.max_output_bytes
        for stream, data in chunks:
            already = self._stdout_bytes + self._stderr_bytes
            if stream == sandbox.STDOUT:
                self._stdout_bytes += len(data)
            else:
                self._stderr_bytes += len(data)
            if already >= cap:
                continue
            allowed = data[: cap - already]
            chunk = pb.OutputChunk(data=allowed, step_index=step_index)
            if stream == sandbox.STDOUT:
                self._emit(pb.ExecuteEvent(stdout=chunk))
            else:
                self._emit(pb.ExecuteEvent(stderr=chunk))
            if already + len(data) > cap:
                marker = f"\n[sandbox-mesh: output limit of {cap} bytes reached; execution stopped]\n"
                self._emit(pb.ExecuteEvent(stderr=pb.OutputChunk(data=marker.encode(), step_index=step_index)))
                self.cancel(ErrorCode.ERROR_CODE_OUTPUT_LIMIT, f"stdout and stderr passed {cap} bytes")

    def _time_out(self) -> None:
        self.cancel(ErrorCode.ERROR_CODE_TIMEOUT, f"time limit of {self.spec.timeout_ms} ms reached")

    def _killed(self) -> tuple[int, str] | None:
        with self._lock:
            return self._kill

    def _clean_up(self, container, workspace, parent: CgroupParent) -> CgroupUsage:
        """Removes everything the execution made; every failure is reported."""
        if container is not None:
            try:
                container.kill()
                self._oom_from_engine = container.oom_killed()
                container.remove()
            except docker.errors.DockerException as exc:
                self.on_cleanup_failure("container", exc)
            with self._lock:
                self._container = None
        usage = parent.read()
        try:
            parent.remove()
        except OSError as exc:
            self.on_cleanup_failure("cgroup", exc)
        if workspace is not None:
            try:
                workspace.remove()
            except OSError as exc:
                self.on_cleanup_failure("workspace", exc)
        return usage

    def _result(self, exit_code, wall_ms, steps, failure, usage: CgroupUsage) -> pb.ExecuteResult:
        spec = self.spec
        result = pb.ExecuteResult(
            exit_code=exit_code,
            steps=steps,
            usage=common.Usage(
                wall_ms=wall_ms,
                cpu_seconds=usage.cpu_seconds,
                peak_memory_bytes=usage.peak_memory_bytes,
                stdout_bytes=self._stdout_bytes,
                stderr_bytes=self._stderr_bytes,
            ),
        )
        killed = self._killed()
        if killed is not None:
            code, message = killed
            result.error_code = code
            result.error_message = message
            result.status = (
                Status.EXECUTION_STATUS_CANCELLED
                if code == ErrorCode.ERROR_CODE_CANCELLED
                else Status.EXECUTION_STATUS_FAILED
            )
        elif failure is not None and (usage.oom_kills > 0 or self._oom_from_engine):
            result.status = Status.EXECUTION_STATUS_FAILED
            result.error_code = ErrorCode.ERROR_CODE_MEMORY_LIMIT
            result.error_message = f"killed by the OOM killer at the {spec.memory_bytes}-byte memory limit"
        elif failure is not None:
            index, path = failure
            where = path if len(spec.steps) == 1 else f"step {index + 1}/{len(spec.steps)} {path}"
            result.status = Status.EXECUTION_STATUS_FAILED
            result.error_code = ErrorCode.ERROR_CODE_RUNTIME_ERROR
            result.error_message = f"{where} exited {exit_code}"
        else:
            result.status = Status.EXECUTION_STATUS_COMPLETED
        return result

    # ---- event plumbing ------------------------------------------------

    def _phase(self, phase: int) -> None:
        elapsed = int((time.monotonic() - self.admitted_at) * 1000)
        self._emit(pb.ExecuteEvent(phase=pb.PhaseEvent(phase=phase, elapsed_ms=elapsed)))

    def _emit(self, event: pb.ExecuteEvent | None) -> None:
        # Blocks while the caller is slow (back-pressure keeps memory bounded);
        # drops events once the caller is gone.
        while not self._listener_gone.is_set():
            try:
                self._events.put(event, timeout=0.2)
                return
            except queue.Full:
                continue
