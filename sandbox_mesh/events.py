"""Typed events and records: what control's protobuf messages say, with
enum values as names ("COMPLETED", "TIMEOUT"), never numbers."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import control_pb2 as pb


def status_name(value: int) -> str:
    return common.ExecutionStatus.Name(value).removeprefix("EXECUTION_STATUS_")


def error_code_name(value: int) -> str | None:
    """None for ERROR_CODE_UNSPECIFIED (no error)."""
    return None if value == 0 else common.ErrorCode.Name(value).removeprefix("ERROR_CODE_")


def language_name(value: int) -> str:
    return common.Language.Name(value).removeprefix("LANGUAGE_").lower()


@dataclasses.dataclass(frozen=True)
class Usage:
    wall_ms: int = 0
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    install_ms: int = 0

    @classmethod
    def of(cls, usage: common.Usage) -> Usage:
        return cls(
            usage.wall_ms,
            usage.cpu_seconds,
            usage.peak_memory_bytes,
            usage.stdout_bytes,
            usage.stderr_bytes,
            usage.install_ms,
        )


@dataclasses.dataclass(frozen=True)
class StoredFile:
    path: str
    size: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class Execution:
    """An execution as control records it."""

    execution_id: str
    group_id: str  # the caller's label (Execute's group_id)
    session_id: str  # the live session it is a call of, "" for Execute
    language: str
    status: str
    error_code: str | None
    error_message: str
    exit_code: int
    usage: Usage
    output_files: tuple[StoredFile, ...]
    dropped_output_files: tuple[str, ...]
    created_at_ms: int
    finished_at_ms: int
    runtime: str
    spawner: str

    @classmethod
    def of(cls, message: pb.Execution) -> Execution:
        return cls(
            execution_id=message.execution_id,
            group_id=message.group_id,
            session_id=message.session_id,
            language=language_name(message.language),
            status=status_name(message.status),
            error_code=error_code_name(message.error_code),
            error_message=message.error_message,
            exit_code=message.exit_code,
            usage=Usage.of(message.usage),
            output_files=tuple(StoredFile(f.path, f.size, f.sha256) for f in message.output_files),
            dropped_output_files=tuple(message.dropped_output_files),
            created_at_ms=message.created_at_ms,
            finished_at_ms=message.finished_at_ms,
            runtime=message.runtime,
            spawner=message.spawner,
        )

    @property
    def finished(self) -> bool:
        return self.status in ("COMPLETED", "FAILED", "CANCELLED")


@dataclasses.dataclass(frozen=True)
class Accepted:
    execution_id: str
    status: str
    kind: Literal["accepted"] = "accepted"


@dataclasses.dataclass(frozen=True)
class StatusChanged:
    status: str
    elapsed_ms: int
    kind: Literal["status"] = "status"


@dataclasses.dataclass(frozen=True)
class Output:
    stream: Literal["stdout", "stderr"]
    data: bytes
    step_index: int
    kind: Literal["output"] = "output"


@dataclasses.dataclass(frozen=True)
class StepFinished:
    index: int
    path: str
    status: str
    exit_code: int
    duration_ms: int
    kind: Literal["step"] = "step"


@dataclasses.dataclass(frozen=True)
class Finished:
    execution: Execution
    kind: Literal["finished"] = "finished"


Event = Accepted | StatusChanged | Output | StepFinished | Finished


def event_of(message: pb.ExecuteEvent) -> Event:
    which = message.WhichOneof("event")
    if which == "accepted":
        return Accepted(message.accepted.execution_id, status_name(message.accepted.status))
    if which == "status":
        return StatusChanged(status_name(message.status.status), message.status.elapsed_ms)
    if which == "stdout":
        return Output("stdout", message.stdout.data, message.stdout.step_index)
    if which == "stderr":
        return Output("stderr", message.stderr.data, message.stderr.step_index)
    if which == "step":
        step = message.step
        return StepFinished(step.index, step.path, status_name(step.status), step.exit_code, step.duration_ms)
    if which == "finished":
        return Finished(Execution.of(message.finished))
    raise ValueError(f"an event control does not send: {which!r}")


def event_json(event: Event) -> dict[str, Any]:
    """One event as a JSON-ready dict: output decoded as UTF-8 (with
    replacement), the raw bytes only when that would lose something."""
    record = dataclasses.asdict(event)
    if isinstance(event, Output):
        text = event.data.decode("utf-8", errors="replace")
        record["data"] = text
        if text.encode() != event.data:
            record["data_hex"] = event.data.hex()
    return record


@dataclasses.dataclass(frozen=True)
class Result:
    """A finished execution with everything it printed and left behind."""

    execution: Execution
    stdout: bytes
    stderr: bytes
    # Output files by path (relative to /workspace/output/).
    files: dict[str, bytes]

    @property
    def execution_id(self) -> str:
        return self.execution.execution_id

    @property
    def status(self) -> str:
        return self.execution.status

    @property
    def error_code(self) -> str | None:
        return self.execution.error_code

    @property
    def exit_code(self) -> int:
        return self.execution.exit_code

    @property
    def usage(self) -> Usage:
        return self.execution.usage

    @property
    def ok(self) -> bool:
        return self.execution.status == "COMPLETED"


@dataclasses.dataclass(frozen=True)
class Quota:
    tenant: str
    max_in_flight: int
    in_flight: int
    daily_cpu_seconds: float
    cpu_seconds_used: float
    daily_slot_seconds: float
    slot_seconds_used: float
    max_slots: int
    slots_held: int
    day: str

    @classmethod
    def of(cls, q: pb.Quota) -> Quota:
        return cls(
            q.tenant,
            q.max_in_flight,
            q.in_flight,
            q.daily_cpu_seconds,
            q.cpu_seconds_used,
            q.daily_slot_seconds,
            q.slot_seconds_used,
            q.max_slots,
            q.slots_held,
            q.day,
        )


@dataclasses.dataclass(frozen=True)
class Logs:
    """What control keeps of an execution's output: the first bytes of
    stdout and of stderr (CONTROL_PREVIEW_BYTES each, 64 KiB by default),
    written while it runs; `*_truncated` when the program wrote more."""

    execution_id: str
    status: str
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool

    @classmethod
    def of(cls, message: pb.Execution) -> Logs:
        return cls(
            message.execution_id,
            status_name(message.status),
            message.stdout_preview,
            message.stderr_preview,
            message.stdout_truncated,
            message.stderr_truncated,
        )
