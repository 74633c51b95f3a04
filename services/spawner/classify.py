"""The one place an execution's facts become its status and error code.

Facts come from the spawner's own actions (its kills), the kernel (the
cgroup's OOM-kill count, the engine's OOMKilled flag, the workspace
filesystem's free space), the engine (exit codes of each exec), the egress's
decision log and the harvest. What the sandboxed
code printed is never consulted, except the installer's own output to tell a
missing package from other install failures.
"""

from __future__ import annotations

import dataclasses

from sandbox.common.v1 import execution_pb2 as common
from services.common.contract import failures
from services.spawner.outputs import Drop

Code = common.ErrorCode
Status = common.ExecutionStatus

NAMED_IN_MESSAGE = 5  # denials or dropped files quoted in an error message


@dataclasses.dataclass
class Facts:
    kill: tuple[common.ErrorCode, str] | None = None  # (ErrorCode, message) of the spawner's own kill
    oom_kills: int = 0
    engine_oom: bool = False
    memory_bytes: int = 0
    install_failed: bool = False
    install_not_found: bool = False
    install_output: str = ""  # tail of the installer's output
    egress_denials: tuple[str, ...] = ()
    egress_lost: bool = False  # the egress restarted or did not answer while the execution ran
    failed_step: tuple[int, str, int] | None = None  # (index, path, exit code)
    step_count: int = 1
    outputs_dropped: int = 0  # files the harvest did not return, for any reason
    outputs_over_caps: int = 0  # of those, the ones a cap dropped
    output_drops: tuple[Drop, ...] = ()  # the harvest's named drops (bounded)
    workspace_exhausted: str = ""  # which of the workspace's limits was used up, after the run
    sandbox_ended: int | None = None  # the sandbox's exit code when it ended by itself under a program


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: common.ExecutionStatus
    error_code: common.ErrorCode = Code.ERROR_CODE_UNSPECIFIED
    message: str = ""


def classify(facts: Facts) -> Verdict:
    if facts.kill is not None:
        code, message = facts.kill
        status = (
            Status.EXECUTION_STATUS_CANCELLED if code == Code.ERROR_CODE_CANCELLED else Status.EXECUTION_STATUS_FAILED
        )
        return Verdict(status, code, message)
    if facts.install_failed and facts.egress_lost:
        # Not the packages' fault: their only way out went away under them.
        return Verdict(Status.EXECUTION_STATUS_FAILED, Code.ERROR_CODE_SPAWNER_UNAVAILABLE, failures.EGRESS_LOST)
    failed = facts.install_failed or facts.failed_step is not None
    if failed and facts.egress_denials:
        return Verdict(
            Status.EXECUTION_STATUS_FAILED,
            Code.ERROR_CODE_EGRESS_DENIED,
            "the egress refused: " + "; ".join(facts.egress_denials[:NAMED_IN_MESSAGE]),
        )
    if failed and (facts.oom_kills > 0 or facts.engine_oom):
        return Verdict(
            Status.EXECUTION_STATUS_FAILED,
            Code.ERROR_CODE_MEMORY_LIMIT,
            f"killed by the OOM killer at the {facts.memory_bytes}-byte memory limit",
        )
    if failed and facts.workspace_exhausted:
        return Verdict(Status.EXECUTION_STATUS_FAILED, Code.ERROR_CODE_OUTPUT_LIMIT, facts.workspace_exhausted)
    if failed and facts.sandbox_ended is not None:
        # Not the program's exit: the sandbox itself stopped (under gVisor,
        # its kernel, at the host's pids limit for it).
        if facts.failed_step is None:
            where = "the package install"
        else:
            index, path, _ = facts.failed_step
            where = path if facts.step_count == 1 else f"step {index + 1}/{facts.step_count} {path}"
        return Verdict(
            Status.EXECUTION_STATUS_FAILED,
            Code.ERROR_CODE_RUNTIME_ERROR,
            f"the sandbox ended while {where} ran (exit {facts.sandbox_ended}), "
            "as it does when the program's processes and threads need more than the sandbox's limit",
        )
    if facts.install_failed:
        # Any install that cannot complete is the caller's packages failing to
        # resolve; the installer's own words say which and why.
        what = "package not found" if facts.install_not_found else "package install failed"
        return Verdict(
            Status.EXECUTION_STATUS_FAILED, Code.ERROR_CODE_PACKAGE_NOT_FOUND, f"{what}: {facts.install_output}"
        )
    if facts.failed_step is not None:
        index, path, exit_code = facts.failed_step
        where = path if facts.step_count == 1 else f"step {index + 1}/{facts.step_count} {path}"
        return Verdict(Status.EXECUTION_STATUS_FAILED, Code.ERROR_CODE_RUNTIME_ERROR, f"{where} exited {exit_code}")
    if facts.outputs_over_caps:
        over_caps = [str(drop) for drop in facts.output_drops if drop.kind.over_cap][:NAMED_IN_MESSAGE]
        message = f"{facts.outputs_dropped} output files dropped: " + ", ".join(over_caps)
        return Verdict(Status.EXECUTION_STATUS_FAILED, Code.ERROR_CODE_OUTPUT_LIMIT, message)
    return Verdict(Status.EXECUTION_STATUS_COMPLETED)
