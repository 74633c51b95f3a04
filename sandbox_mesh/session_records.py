"""What a session and its calls are, as typed records: control's Session
message as a SessionInfo, a call's events and its CellOutcome, with enum
values as lower-case names ("open", "kernel_died"), never numbers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from sandbox.common.v1 import execution_pb2 as common
from sandbox.common.v1 import session_pb2 as cells
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.artifact_records import Package, packages_of
from sandbox_mesh.events import language_name
from sandbox_mesh.request import LANGUAGES, UsageError, parse_npm, parse_pip, parse_size

# Limits a session takes, by the names Client.run uses and by the wire's.
LIMIT_NAMES = ("timeout", "timeout_ms", "memory", "memory_mb", "memory_bytes", "cpus")


def session_status_name(value: int) -> str:
    return pb.SessionStatus.Name(value).removeprefix("SESSION_STATUS_").lower()


def cell_status_name(value: int) -> str:
    return cells.CellStatus.Name(value).removeprefix("CELL_STATUS_").lower()


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """A session as control records it. Timestamps are Unix milliseconds,
    0 when not reached; `expires_at_ms` is when an open one ends unless used."""

    session_id: str
    language: str
    variant: str
    status: str  # "open", "closed", "expired", "failed"
    end_reason: str
    idle_timeout_seconds: int
    max_lifetime_seconds: int
    created_at_ms: int
    last_used_at_ms: int
    ended_at_ms: int
    expires_at_ms: int
    calls: int
    busy: bool  # a call is running
    restarts: int
    packages: tuple[Package, ...]
    timeout_ms: int  # each call's default
    memory_bytes: int
    cpus: float

    @classmethod
    def of(cls, message: pb.Session) -> SessionInfo:
        return cls(
            session_id=message.session_id,
            language=language_name(message.language),
            variant=message.variant,
            status=session_status_name(message.status),
            end_reason=message.end_reason,
            idle_timeout_seconds=message.idle_timeout_seconds,
            max_lifetime_seconds=message.max_lifetime_seconds,
            created_at_ms=message.created_at_ms,
            last_used_at_ms=message.last_used_at_ms,
            ended_at_ms=message.ended_at_ms,
            expires_at_ms=message.expires_at_ms,
            calls=message.calls,
            busy=message.busy,
            restarts=message.restarts,
            packages=packages_of(list(message.packages)),
            timeout_ms=message.limits.timeout_ms,
            memory_bytes=message.limits.memory_bytes,
            cpus=message.limits.cpus,
        )

    @property
    def open(self) -> bool:
        return self.status == "open"


@dataclasses.dataclass(frozen=True)
class ValuePart:
    """One form of a value a call showed: `last_value` for its last
    expression (as in a notebook), else something it displayed."""

    mime_type: str
    data: bytes
    last_value: bool

    @classmethod
    def of(cls, message: cells.ValuePart) -> ValuePart:
        return cls(message.mime_type, message.data, message.last_value)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclasses.dataclass(frozen=True)
class CellError:
    name: str  # "ZeroDivisionError"
    value: str  # "division by zero"
    traceback: list[str]  # one plain-text entry a frame


@dataclasses.dataclass(frozen=True)
class CellOutcome:
    """One finished call: everything it printed and showed, and its verdict."""

    execution_id: str
    status: str  # "ok", "error", "timeout", "kernel_died", "session_ended"
    stdout: bytes
    stderr: bytes
    values: list[ValuePart]
    error: CellError | None
    execution_count: int
    exit_code: int
    duration_ms: int

    @classmethod
    def of(cls, execution_id: str, result: cells.CellResult, stdout: bytes, stderr: bytes) -> CellOutcome:
        error = None
        if result.HasField("error") and (result.error.name or result.error.value or result.error.traceback):
            error = CellError(result.error.name, result.error.value, list(result.error.traceback))
        return cls(
            execution_id=execution_id,
            status=cell_status_name(result.status),
            stdout=stdout,
            stderr=stderr,
            values=[ValuePart.of(part) for part in result.values],
            error=error,
            execution_count=result.execution_count,
            exit_code=result.exit_code,
            duration_ms=result.duration_ms,
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str:
        """The last expression's text/plain form, "" when it had none."""
        for part in reversed(self.values):
            if part.last_value and part.mime_type == "text/plain":
                return part.text
        return ""

    @property
    def images(self) -> list[tuple[str, bytes]]:
        """Every image shown or returned, (mime type, bytes), in order."""
        return [(p.mime_type, p.data) for p in self.values if p.mime_type.startswith("image/")]

    def as_json(self) -> dict[str, Any]:
        """JSON-ready: text as UTF-8 (with replacement), images as hex."""
        record = dataclasses.asdict(self)
        record["stdout"] = self.stdout.decode("utf-8", errors="replace")
        record["stderr"] = self.stderr.decode("utf-8", errors="replace")
        record["values"] = [
            {"mime_type": p.mime_type, "last_value": p.last_value}
            | ({"data_hex": p.data.hex()} if p.mime_type.startswith("image/") else {"data": p.text})
            for p in self.values
        ]
        record["ok"] = self.ok
        record["text"] = self.text
        return record


# ---- a call's events -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellAccepted:
    execution_id: str
    kind: Literal["accepted"] = "accepted"


@dataclasses.dataclass(frozen=True)
class CellOutput:
    stream: Literal["stdout", "stderr"]
    data: bytes
    kind: Literal["output"] = "output"


@dataclasses.dataclass(frozen=True)
class CellValue:
    part: ValuePart
    kind: Literal["value"] = "value"


@dataclasses.dataclass(frozen=True)
class CellFinished:
    outcome: CellOutcome
    kind: Literal["finished"] = "finished"


CellEvent = CellAccepted | CellOutput | CellValue | CellFinished


# ---- building a CreateSessionRequest ---------------------------------------


def session_limits(values: Mapping[str, Any]) -> common.Limits:
    """Limits from Client.run's names (timeout in seconds, memory in bytes
    or "256m", cpus) or the wire's (timeout_ms, memory_mb, memory_bytes)."""
    unknown = sorted(set(values) - set(LIMIT_NAMES))
    if unknown:
        raise UsageError("limits", f"unknown limit {unknown[0]!r} (known: {', '.join(LIMIT_NAMES)})")
    timeout_ms = values.get("timeout_ms") or 0
    if values.get("timeout"):
        timeout_ms = round(float(values["timeout"]) * 1000)
    memory = values.get("memory")
    memory_bytes = values.get("memory_bytes") or 0
    if memory:
        memory_bytes = parse_size(memory) if isinstance(memory, str) else int(memory)
    if values.get("memory_mb"):
        memory_bytes = int(values["memory_mb"]) * 1024 * 1024
    if timeout_ms < 0 or memory_bytes < 0 or (values.get("cpus") or 0) < 0:
        raise UsageError("limits", "limits must not be negative")
    return common.Limits(
        timeout_ms=int(timeout_ms), memory_bytes=int(memory_bytes), cpus=float(values.get("cpus") or 0)
    )


def create_request(
    language: str,
    *,
    session_id: str | None,
    variant: str,
    limits: common.Limits,
    packages: Sequence[str | common.Package | Package],
    files: Mapping[str, bytes | str] | None,
    idle_timeout_seconds: int,
    max_lifetime_seconds: int,
    allow_sdist: bool = False,
    allow_install_scripts: bool = False,
) -> pb.CreateSessionRequest:
    """Package specs as pip (`pandas==2.2`) or npm (`lodash@4`) spell them,
    after the session's language; UsageError names what is wrong."""
    if language not in LANGUAGES:
        raise UsageError("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
    parse = parse_npm if language == "node" else parse_pip
    package_messages = []
    for package in packages:
        if isinstance(package, str):
            package_messages.append(parse(package))
        elif isinstance(package, Package):
            package_messages.append(common.Package(name=package.name, version=package.version))
        else:
            package_messages.append(package)
    return pb.CreateSessionRequest(
        session_id=session_id or "",
        language=LANGUAGES[language],
        limits=limits,
        variant=variant,
        idle_timeout_seconds=idle_timeout_seconds,
        max_lifetime_seconds=max_lifetime_seconds,
        files=[
            common.File(path=path, content=content.encode() if isinstance(content, str) else content)
            for path, content in (files or {}).items()
        ],
        packages=package_messages,
        install=pb.InstallOptions(allow_sdist=allow_sdist, allow_install_scripts=allow_install_scripts),
    )
