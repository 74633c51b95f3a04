"""One execution: stage, install, run, harvest, clean up, classify.

`Execution.run()` runs on a worker thread of its own and puts events into a
bounded channel (services/common/channel.py) that the gRPC call drains.
Clean-up therefore never depends on the caller still listening: a caller that
goes away abandons the channel and cancels the execution, its events are
dropped, and the worker still removes the container, the workspace and the
cgroup parent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import docker

from sandbox.common.v1 import execution_pb2 as common
from sandbox.spawner.v1 import spawner_pb2 as pb
from services.common.channel import EventChannel
from services.common.contract import failures
from services.spawner import install, outputs, sandbox
from services.spawner.cgroups import CgroupUsage
from services.spawner.classify import Facts, classify
from services.spawner.config import SpawnerSettings
from services.spawner.handoff import HandoffError, RunnerProgram
from services.spawner.install_step import install_packages
from services.spawner.provision import Provisioner, Sandbox
from services.spawner.validation import ExecutionSpec
from services.spawner.workspace import Workspace

log = logging.getLogger(__name__)

ErrorCode = common.ErrorCode
Status = common.ExecutionStatus

_INTERPRETERS = {"python": ["python3"], "node": ["node"]}
_EVENT_QUEUE_SIZE = 64


class Execution:
    def __init__(
        self,
        spec: ExecutionSpec,
        settings: SpawnerSettings,
        provisioner: Provisioner,
        on_cleanup_failure: Callable[[str, Exception, str], None],  # (what, error, execution id)
        on_finished: Callable[[Execution, pb.ExecuteResult], None],
        box: Sandbox,
    ):
        self.spec = spec
        self.settings = settings
        self.api = provisioner.api
        self.network = provisioner.network
        self._provisioner = provisioner
        self.on_cleanup_failure = on_cleanup_failure
        self.on_finished = on_finished
        # The sandbox it runs in: a warm one, already started, or one only
        # planned that it makes itself. Its token names everything it owns.
        self._sandbox = box
        self._warm = False
        self.token = box.token
        self.admitted_at = time.monotonic()
        self.finished = threading.Event()
        self._events: EventChannel[pb.ExecuteEvent] = EventChannel(_EVENT_QUEUE_SIZE)
        self._lock = threading.Lock()
        # Held while a cancel's kill is in flight: the sandbox is frozen only
        # after it (a gVisor sandbox frozen while its kill runs never dies).
        self._killing = threading.Lock()
        self._kill: tuple[ErrorCode, str] | None = None  # (ErrorCode, message); first wins
        self._container: sandbox.SandboxContainer | None = None
        self._environment: dict[str, str] = {}  # of every program: its egress proxy and credentials
        self._admitted = False  # told the egress about it (so revoke, and ask what it refused)
        self._stopped = False  # its sandbox frozen or killed, its usage read
        self._facts = Facts(memory_bytes=spec.memory_bytes, step_count=len(spec.steps))
        self._usage = CgroupUsage()  # measured at clean-up, charged whatever else failed
        self._stdout_bytes = 0
        self._stderr_bytes = 0
        self._output_cut = False
        # What the caller is told if the spawner fails now (never the
        # engine's own words: they are logged).
        self._failure = failures.SPAWNER_FAILED

    def use_warm(self, box: Sandbox) -> None:
        """Runs in this warm sandbox instead of making one (before run())."""
        self._sandbox, self._warm, self.token = box, True, box.token

    # ---- called from other threads -------------------------------------

    def cancel(self, code: ErrorCode = ErrorCode.ERROR_CODE_CANCELLED, message: str = "cancelled") -> bool:
        """Kills the execution; the first reason given is the one reported."""
        with self._lock:
            if self.finished.is_set():
                return False
            if self._kill is None:
                self._kill = (code, message)
            container = self._container
        if container is not None:
            with self._killing:
                try:
                    container.kill()
                except docker.errors.DockerException as exc:
                    # The worker's clean-up still force-removes the container.
                    log.error("execution %s: kill failed: %s", self.spec.execution_id, exc)
        return True

    def listener_gone(self) -> None:
        """The caller hung up (cancelled, deadline passed, or disconnected)."""
        self._events.abandon()
        self.cancel(ErrorCode.ERROR_CODE_CANCELLED, "the caller went away")

    def events(self) -> Iterator[pb.ExecuteEvent]:
        """The events for the caller, ending with the result."""
        return iter(self._events)

    # ---- the worker ----------------------------------------------------

    def run(self) -> None:
        deferred = False
        try:
            try:
                result = self._run()
            except Exception:
                log.exception("execution %s failed in the spawner (%s)", self.spec.execution_id, self._failure)
                result = pb.ExecuteResult(
                    status=Status.EXECUTION_STATUS_FAILED,
                    error_code=ErrorCode.ERROR_CODE_SPAWNER_UNAVAILABLE,
                    error_message=self._failure,
                    exit_code=sandbox.NO_EXIT_CODE,
                )
                self._charge(result)
            # The result is complete once the sandbox is stopped; removing it
            # takes longer than running a small program, so it happens after
            # the caller has the result (a bounded number at once).
            deferred = self._provisioner.may_defer_removal(self._sandbox)
            if not deferred:
                self._remove()
            with self._lock:
                self.finished.set()
            # Free the slot before the caller sees the result, so a caller that
            # immediately sends the next request finds it free.
            self.on_finished(self, result)
            self._emit(pb.ExecuteEvent(result=result))
        finally:
            self._events.close()
            if deferred:
                self._remove()
                self._provisioner.removal_deferred_done(self._sandbox)

    def _run(self) -> pb.ExecuteResult:
        spec = self.spec
        result = pb.ExecuteResult(exit_code=sandbox.NO_EXIT_CODE)
        box = self._sandbox
        try:
            self._phase(pb.PHASE_STARTING)
            if not self._warm:
                self._failure = failures.WORKSPACE_NOT_PREPARED
                self._provisioner.make_workspace(box)
                self._failure = failures.SANDBOX_NOT_STARTED
                labels = {sandbox.LABEL_EXECUTION: spec.execution_id, sandbox.LABEL_TENANT: spec.tenant}
                started = self._provisioner.start(box, labels, adopt=self._adopt)
            else:
                started = self._adopt(box.container)
            if started:
                self._failure = failures.WORKSPACE_NOT_PREPARED
                box.workspace.stage(spec.files, spec.stdin)
                if spec.prior_outputs:
                    box.workspace.stage_outputs(spec.prior_outputs)
                self._failure = failures.SANDBOX_NOT_STARTED
                self._assign_network(box)
                self._failure = failures.SANDBOX_FAILED
                installed = self._install(box, result) if spec.packages else True
                if installed and self._killed() is None:
                    self._run_steps(box, result)
            self._phase(pb.PHASE_FINISHING)
            self._stop(box)  # nothing may write to the outputs while they are read
            self._failure = failures.OUTPUTS_NOT_COLLECTED
            self._harvest(box.workspace, result)
            self._facts.workspace_exhausted = box.workspace.exhausted()
            self._failure = failures.SPAWNER_FAILED
        finally:
            self._stop(box)  # if it is not yet
        return self._finish(result)

    def _adopt(self, container: sandbox.SandboxContainer | None) -> bool:
        """From now on a cancel kills this container; False if one came first."""
        with self._lock:
            self._container = container
            return self._kill is None and container is not None

    def _assign_network(self, box: Sandbox) -> None:
        """Mints the execution's egress credentials and tells the egress its
        sandbox's address, before any program runs in it."""
        if self.network is None or box.lease is None or box.container is None:
            return
        spec = self.spec
        self._environment = self.network.environment(spec.execution_id, spec.tenant, box.lease.egress_address)
        self._admitted = True
        self.network.admit_sandbox(self.api, box.container.id, spec.execution_id, box.lease.network)

    def _install(self, box: Sandbox, result: pb.ExecuteResult) -> bool:
        """Installs the requested packages into the workspace (the install
        step shared with sessions: services/spawner/install_step.py)."""
        spec = self.spec
        self._phase(pb.PHASE_INSTALLING)
        limit_ms = self.settings.install_timeout_ms
        outcome = install_packages(
            box,
            self._provisioner.install_cache,
            spec.language,
            spec.packages,
            allow_sdist=spec.allow_sdist,
            allow_scripts=spec.allow_install_scripts,
            environment=self._environment,
            timeout_ms=limit_ms,
            on_timeout=lambda: self.cancel(
                ErrorCode.ERROR_CODE_TIMEOUT, f"package install took longer than {limit_ms} ms"
            ),
            killed=lambda: self._killed() is not None,
        )
        result.usage.install_ms = outcome.install_ms
        self._note_sandbox_ended(box, outcome.exit_code)
        if outcome.ok or self._killed() is not None:
            return outcome.ok
        self._facts.install_failed = True
        self._facts.install_not_found = outcome.not_found
        self._facts.install_output = outcome.output
        result.exit_code = outcome.exit_code
        return False

    def _run_steps(self, box: Sandbox, result: pb.ExecuteResult) -> None:
        """Runs the steps in order until one fails or the execution is killed."""
        spec = self.spec
        environment = {**self._environment, **spec.env}
        if spec.packages:
            environment.update(install.run_environment(spec.language))
        self._phase(pb.PHASE_RUNNING)
        timer = threading.Timer(spec.timeout_ms / 1000, self._time_out)
        timer.daemon = True
        started = time.monotonic()
        timer.start()
        try:
            for index, step in enumerate(spec.steps):
                argv = [*_INTERPRETERS[spec.language], step.path, *step.args]
                handle = None
                try:
                    handle = box.start_program(argv, environment, f"{sandbox.WORKSPACE}/code", stdin=True)
                    self._relay(handle.stream(), index)
                except (docker.errors.APIError, HandoffError):
                    if self._killed() is None:
                        raise
                if isinstance(handle, RunnerProgram) and handle.violation:
                    log.warning("execution %s: the runner broke the protocol: %s", spec.execution_id, handle.violation)
                exit_code = sandbox.exit_code_of(handle, self._killed())
                self._note_sandbox_ended(box, exit_code)
                duration = handle.finished_at - handle.started_at if handle and handle.finished_at else 0.0
                ok = exit_code == 0 and self._killed() is None
                step_result = common.StepResult(
                    index=index,
                    path=step.path,
                    status=Status.EXECUTION_STATUS_COMPLETED if ok else Status.EXECUTION_STATUS_FAILED,
                    exit_code=exit_code,
                    duration_ms=int(duration * 1000),
                )
                result.steps.append(step_result)
                result.exit_code = exit_code
                self._emit(pb.ExecuteEvent(step=step_result))
                if not ok:
                    self._facts.failed_step = (index, step.path, exit_code)
                    break
        finally:
            timer.cancel()
            result.usage.wall_ms = int((time.monotonic() - started) * 1000)

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
            if already < cap:
                chunk = pb.OutputChunk(data=data[: cap - already], step_index=step_index)
                self._emit(pb.ExecuteEvent(stdout=chunk) if stream == sandbox.STDOUT else pb.ExecuteEvent(stderr=chunk))
            if already + len(data) > cap and not self._output_cut:
                self._output_cut = True
                marker = f"\n[sandbox-mesh: output limit of {cap} bytes reached; execution stopped]\n"
                self._emit(pb.ExecuteEvent(stderr=pb.OutputChunk(data=marker.encode(), step_index=step_index)))
                # Killed from another thread: this one must keep reading, or the
                # engine blocks the kill while it cannot flush the stream to us.
                threading.Thread(
                    target=self.cancel,
                    args=(ErrorCode.ERROR_CODE_OUTPUT_LIMIT, f"stdout and stderr passed {cap} bytes"),
                    daemon=True,
                ).start()

    def _harvest(self, workspace: Workspace, result: pb.ExecuteResult) -> None:
        """Streams /workspace/output/ back in chunks; the result lists each
        file's path and size, and names what was dropped."""
        if not workspace.output.is_dir():
            return
        harvest = outputs.select(str(workspace.output), self.settings.output_caps())
        for path, size in harvest.files:
            for chunk in outputs.file_chunks(str(workspace.output), path, size):
                self._emit(pb.ExecuteEvent(output_file=chunk))
            result.output_files.append(common.OutputFile(path=path, size=size))
        result.dropped_output_files.extend(str(drop) for drop in harvest.dropped)
        result.usage.output_files = len(harvest.files)
        result.usage.output_files_dropped = harvest.dropped_count
        self._facts.outputs_dropped = harvest.dropped_count
        self._facts.outputs_over_caps = harvest.over_cap_count
        self._facts.output_drops = tuple(harvest.dropped)

    def _note_sandbox_ended(self, box: Sandbox, exit_code: int) -> None:
        """No exit code and no kill: the sandbox ended under the program (under gVisor
        the host's OOM killer or pids limit ends its whole kernel); the engine says how."""
        ended = box.ended() if exit_code == sandbox.NO_EXIT_CODE and self._killed() is None else None
        if ended is not None:
            self._facts.sandbox_ended = ended.exit_code
            self._facts.engine_oom = self._facts.engine_oom or ended.oom_killed

    def _time_out(self) -> None:
        self.cancel(ErrorCode.ERROR_CODE_TIMEOUT, f"time limit of {self.spec.timeout_ms} ms reached")

    def _killed(self) -> tuple[ErrorCode, str] | None:
        with self._lock:
            return self._kill

    def _stop(self, box: Sandbox) -> None:
        """Ends the execution's sandbox and keeps what it used; never raises
        (services/spawner/cleanup.py). From now on a cancel has nothing to do."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._container = None
        with self._killing:
            pass  # a cancel's kill in flight ends first (no later one starts: no container)
        if self._admitted and self.network is not None:
            try:  # its credentials die with it
                self._facts.egress_lost = not self.network.revoke(self.spec.execution_id)
            except Exception as exc:
                self._facts.egress_lost = True
                self._cleanup_failed("egress admission", exc)
        report = self._provisioner.stop(box, self._cleanup_failed)
        self._facts.engine_oom = self._facts.engine_oom or report.engine_oom
        self._usage = report.usage

    def _remove(self) -> None:
        """Removes what the sandbox made; never raises."""
        self._provisioner.remove(self._sandbox, self._cleanup_failed)

    def _cleanup_failed(self, what: str, exc: Exception) -> None:
        self.on_cleanup_failure(what, exc, self.spec.execution_id)

    def _finish(self, result: pb.ExecuteResult) -> pb.ExecuteResult:
        facts = self._facts
        facts.kill = self._killed()
        facts.oom_kills = self._usage.oom_kills
        failed = facts.install_failed or facts.failed_step is not None
        if self._admitted and self.network is not None and failed and facts.kill is None:
            try:
                facts.egress_denials = tuple(self.network.denials(self.spec.execution_id))
            except Exception as exc:
                log.error("execution %s: cannot read the egress's decisions: %s", self.spec.execution_id, exc)
        verdict = classify(facts)
        result.status, result.error_code, result.error_message = verdict.status, verdict.error_code, verdict.message
        self._charge(result)
        return result

    def _charge(self, result: pb.ExecuteResult) -> None:
        result.usage.cpu_seconds = self._usage.cpu_seconds
        result.usage.peak_memory_bytes = self._usage.peak_memory_bytes
        result.usage.stdout_bytes = self._stdout_bytes
        result.usage.stderr_bytes = self._stderr_bytes

    # ---- event plumbing ------------------------------------------------

    def _phase(self, phase: pb.Phase) -> None:
        elapsed = int((time.monotonic() - self.admitted_at) * 1000)
        self._emit(pb.ExecuteEvent(phase=pb.PhaseEvent(phase=phase, elapsed_ms=elapsed)))

    def _emit(self, event: pb.ExecuteEvent) -> None:
        # Blocks while the caller is slow (back-pressure keeps memory bounded);
        # drops events once the caller is gone.
        self._events.put(event)
