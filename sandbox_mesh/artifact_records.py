"""Typed artifacts, their files and runs: what control's Artifacts service
says, with enum values as names, never numbers (as sandbox_mesh.events)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as apb
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.events import Accepted, Event, Execution, Finished, Usage, event_of, language_name


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    version: str = ""

    def spec(self, language: str) -> str:
        """As pip or npm spell it: `requests==2.32`, `lodash@4`."""
        if not self.version:
            return self.name
        return f"{self.name}@{self.version}" if language == "node" else f"{self.name}{self.version}"


def packages_of(messages: list[common.Package]) -> tuple[Package, ...]:
    return tuple(Package(p.name, p.version) for p in messages)


@dataclasses.dataclass(frozen=True)
class Artifact:
    artifact_id: str
    language: str
    title: str
    entry: str
    packages: tuple[Package, ...]
    revision: int
    created_at_ms: int
    updated_at_ms: int
    file_count: int
    total_bytes: int

    @classmethod
    def of(cls, message: apb.Artifact) -> Artifact:
        return cls(
            artifact_id=message.artifact_id,
            language=language_name(message.language),
            title=message.title,
            entry=message.entry,
            packages=packages_of(list(message.packages)),
            revision=message.revision,
            created_at_ms=message.created_at_ms,
            updated_at_ms=message.updated_at_ms,
            file_count=message.file_count,
            total_bytes=message.total_bytes,
        )


@dataclasses.dataclass(frozen=True)
class ArtifactFile:
    """A file's metadata (never its content)."""

    path: str
    size: int
    sha256: str
    modified_revision: int

    @classmethod
    def of(cls, message: apb.ArtifactFile) -> ArtifactFile:
        return cls(message.path, message.size, message.sha256, message.modified_revision)


@dataclasses.dataclass(frozen=True)
class FileListing:
    """An artifact's files at one revision."""

    files: tuple[ArtifactFile, ...]
    revision: int
    entry: str

    def has(self, path: str) -> bool:
        return any(f.path == path for f in self.files)


@dataclasses.dataclass(frozen=True)
class Run:
    """A run of an artifact: its execution plus what it ran."""

    run_id: str
    artifact_id: str
    revision: int
    stale: bool
    path: str
    # Each step as (path, *args).
    steps: tuple[tuple[str, ...], ...]
    inputs_from_run_id: str
    prestaged_files: int
    prestaged_bytes: int
    prestage_notice: str
    execution: Execution
    created_at_ms: int

    @classmethod
    def of(cls, message: apb.Run) -> Run:
        return cls(
            run_id=message.run_id,
            artifact_id=message.artifact_id,
            revision=message.revision,
            stale=message.stale,
            path=message.path,
            steps=tuple((s.path, *s.args) for s in message.steps),
            inputs_from_run_id=message.inputs_from_run_id,
            prestaged_files=message.prestaged_files,
            prestaged_bytes=message.prestaged_bytes,
            prestage_notice=message.prestage_notice,
            execution=Execution.of(message.execution),
            created_at_ms=message.created_at_ms,
        )

    @property
    def status(self) -> str:
        return self.execution.status


@dataclasses.dataclass(frozen=True)
class RunResult:
    """A finished run with everything it printed and left behind."""

    run: Run
    stdout: bytes
    stderr: bytes
    # Output files by path (relative to /workspace/output/).
    files: dict[str, bytes]

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def status(self) -> str:
        return self.run.execution.status

    @property
    def error_code(self) -> str | None:
        return self.run.execution.error_code

    @property
    def exit_code(self) -> int:
        return self.run.execution.exit_code

    @property
    def usage(self) -> Usage:
        return self.run.execution.usage

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETED"


# A run's events are an execution's: the same status, output and step
# messages, with the run record where Execute has `accepted` and `finished`.
RELAYED: tuple[Literal["status", "stdout", "stderr", "step"], ...] = ("status", "stdout", "stderr", "step")


def run_event_of(message: apb.RunEvent) -> tuple[Event, Run | None]:
    """The event as Execute's (so sandboxctl shows both alike) and, for
    `accepted` and `finished`, the run record."""
    which = message.WhichOneof("event")
    if which == "accepted":
        run = Run.of(message.accepted)
        return Accepted(run.run_id, run.execution.status), run
    if which == "finished":
        run = Run.of(message.finished)
        return Finished(run.execution), run
    if which in RELAYED:
        relayed = pb.ExecuteEvent()
        getattr(relayed, which).CopyFrom(getattr(message, which))
        return event_of(relayed), None
    raise ValueError(f"an event control does not send: {which!r}")
