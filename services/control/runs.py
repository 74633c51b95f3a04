"""Runs of runnable artifacts.

A run is an execution of the Control domain (services.control.executions:
admission against the quota, the relay to a spawner, previews, verdict and
output files) plus one append-only `runs` row (run_models.py) written in the
execution's admission transaction: the artifact, the revision whose files
were staged, what was asked to run, and which earlier run's outputs were
pre-staged. The run id is also the execution's id, so Control's
GetExecution and GetOutputFile work on a run too.

Pre-staging: by default the output files of the artifact's latest COMPLETED
run (or of a named finished run of the same artifact, whatever its status)
are sent as the spawner's `prior_outputs`, landing in /workspace/output/.
Over the bounds (PrestageLimits) or with a path the spawner would refuse,
nothing is pre-staged and the run starts anyway with a notice as the first
stderr chunk (kept in the stderr preview) and in `prestage_notice`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence

from google.protobuf import json_format
from sqlmodel import col, select

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as apb
from sandbox.control.v1 import control_pb2 as pb
from services.control.artifact_models import ArtifactFileRow, ArtifactRow
from services.control.artifacts import (
    _load,
    _packages_of,
    check_artifact_id,
    MAX_PAGE_SIZE,
)
from services.control.config import PrestageLimits
from services.control.db import Database
from services.control.errors import FailedPrecondition, InvalidArgument, NotFound
from services.control.executions import messages, states
from services.control.executions.in_flight import InFlightExecution
from services.control.executions.models import COMPLETED, ExecutionRow, StoredFile
from services.control.executions.service import ExecutionService
from services.control.pagination import PageRequest, Position, cut, newest_first
from services.control.run_models import RunPathRow, RunRow
from services.spawner.paths import check_path as path_refusal
from services.spawner.validation import ID_RE

@dataclasses.dataclass(frozen=True)
class Prestage:
    source_run_id: str = ""
    files: tuple[common.File, ...] = ()
    notice: str = ""

    @property
    def total(self) -> int:
        return sum(len(f.content) for f in self.files)


def new_run_id() -> str:
    return "run_" + secrets.token_hex(10)


def judge_prestage(stored: Sequence[StoredFile], limits: PrestageLimits) -> str:
    """Why these files cannot be pre-staged ("" when they can)."""
    total = sum(f.size for f in stored)
    if len(stored) > limits.max_files:
        return f"{len(stored)} files, more than the {limits.max_files} allowed"
    if total > limits.max_bytes:
        return f"{total} bytes, more than the {limits.max_bytes} allowed"
    for f in stored:
        if f.size > limits.max_file_bytes:
            return f"{f.path!r} has {f.size} bytes, more than the {limits.max_file_bytes} allowed per file"
        reason = path_refusal(f.path, max_length=limits.max_path_length)
        if reason:
            return f"{f.path!r} cannot be staged: {reason}"
    return ""


class Runs:
    def __init__(
        self,
        executions: ExecutionService,
        database: Database,
        limits: PrestageLimits,
        clock: Callable[[], float] = time.time,
    ):
        self.executions = executions
        self.db = database
        self.limits = limits
        self.clock = clock

    # ---- starting a run --------------------------------------------------

    def start(self, tenant: str, request: apb.RunArtifactRequest) -> tuple[InFlightExecution, str]:
        """Validates, resolves the inputs and admits the run (raises
        InvalidArgument, NotFound, FailedPrecondition, QuotaExceeded); the
        caller then reads `events(tenant, execution, run_id)`."""
        check_artifact_id(request.artifact_id)
        if request.path and request.steps:
            raise InvalidArgument("steps", "give either path or steps, not both")
        source = request.WhichOneof("inputs_from_run") or "latest"
        if source == "run_id" and not ID_RE.match(request.run_id):
            raise InvalidArgument("run_id", "must match [A-Za-z0-9_-]{1,64}")
        with self.db.read() as session:
            artifact = _load(session, tenant, request.artifact_id, lock=True)
            files = list(
                session.exec(
                    select(ArtifactFileRow)
                    .where(ArtifactFileRow.artifact_id == artifact.id)
                    .order_by(ArtifactFileRow.path)
                )
            )
            names = {f.path for f in files}
            path = ""
            if request.steps:
                for index, step in enumerate(request.steps):
                    if step.path not in names:
                        raise InvalidArgument(f"steps[{index}].path", f"no file {step.path!r} in the artifact")
            else:
                path = request.path or artifact.entry
                if not path:
                    raise FailedPrecondition("path", "the artifact has no entry file; name a path or steps")
                if path not in names:
                    raise InvalidArgument("path", f"no file {path!r} in the artifact")
            source_row = None
            if source == "latest":
                source_row = session.exec(
                    select(RunRow)
                    .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
                    .where(RunRow.artifact_id == artifact.id, ExecutionRow.status == COMPLETED)
                    .order_by(col(RunRow.created_at_ms).desc(), col(RunRow.id).desc())
                    .limit(1)
                ).first()
            elif source == "run_id":
                found = session.exec(
                    select(RunRow, ExecutionRow.status)
                    .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
                    .where(RunRow.id == request.run_id, RunRow.tenant == tenant, RunRow.artifact_id == artifact.id)
                ).first()
                if found is None:
                    # Also another artifact's or another tenant's run.
                    raise NotFound(f"run_id: run {request.run_id!r} of artifact {artifact.id!r} not found")
                source_row, status = found
                if status not in states.TERMINAL:
                    raise FailedPrecondition("run_id", f"run {request.run_id!r} has not finished; its outputs are not stored yet")
        prestage = self._prestage(source_row)
        run_id = new_run_id()
        notice = (
            f"[sandbox] outputs of run {prestage.source_run_id} not pre-staged: {prestage.notice}\n"
            if prestage.notice
            else ""
        )
        execute = pb.ExecuteRequest(
            execution_id=run_id,
            session_id=request.session_id,
            language=artifact.language,
            files=[common.File(path=f.path, content=f.content) for f in files],
            entry=path,
            steps=request.steps,
            packages=[common.Package(name=p.name, version=p.version) for p in _packages_of(artifact)],
            limits=request.limits,
            env=request.env,
            stdin=request.stdin,
            args=request.args,
            install=request.install,
        )
        run_paths = sorted({path} if path else {s.path for s in request.steps})
        admission = self.executions.check(execute)
        # The run's rows are written in the execution's admission
        # transaction: a run and its execution exist together or not at all.
        with self.db.write() as session:
            execution = self.executions.admit(session, tenant, admission)
            session.add(
                RunRow(
                    id=run_id,
                    tenant=tenant,
                    artifact_id=artifact.id,
                    execution_key=execution.key,
                    revision=artifact.revision,
                    path=path,
                    steps_json=messages.steps_json(request.steps),
                    inputs_from_run_id=prestage.source_run_id if prestage.files or not prestage.notice else "",
                    prestaged_files=len(prestage.files),
                    prestaged_bytes=prestage.total,
                    prestage_notice=prestage.notice,
                    created_at_ms=execution.created_at_ms,
                )
            )
            session.flush()
            for run_path in run_paths:
                session.add(
                    RunPathRow(run_id=run_id, path=run_path, artifact_id=artifact.id, created_at_ms=execution.created_at_ms)
                )
        in_flight = self.executions.launch(
            execution, execute, prior_outputs=prestage.files, stderr_notice=notice.encode()
        )
        return in_flight, run_id

    def _prestage(self, source: RunRow | None) -> Prestage:
        if source is None:
            return Prestage()
        stored = self.executions.store.files(source.execution_key)
        reason = judge_prestage(stored, self.limits)
        if reason:
            return Prestage(source.id, (), reason)
        files = []
        for f in stored:
            content = b"".join(data for _, data in self.executions.blobs.read(f.sha256)) if f.size else b""
            files.append(common.File(path=f.path, content=content))
        return Prestage(source.id, tuple(files))

    def events(self, tenant: str, execution: InFlightExecution, run_id: str) -> Iterator[apb.RunEvent]:
        for event in self.executions.events(execution):
            kind = event.WhichOneof("event")
            if kind == "accepted":
                yield apb.RunEvent(accepted=self.get(tenant, run_id))
            elif kind == "finished":
                yield apb.RunEvent(finished=self.get(tenant, run_id))
            else:
                yield apb.RunEvent(**{kind: getattr(event, kind)})

    # ---- reads -----------------------------------------------------------

    def _message(self, run: RunRow, execution: ExecutionRow, current_revision: int, *, detail: bool) -> apb.Run:
        files = self.executions.store.files(execution.key) if detail else None
        message = apb.Run(
            run_id=run.id,
            artifact_id=run.artifact_id,
            revision=run.revision,
            stale=run.revision < current_revision,
            path=run.path,
            inputs_from_run_id=run.inputs_from_run_id,
            prestaged_files=run.prestaged_files,
            prestaged_bytes=run.prestaged_bytes,
            prestage_notice=run.prestage_notice,
            execution=messages.execution(execution, files, detail=detail),
            created_at_ms=run.created_at_ms,
        )
        for step in json.loads(run.steps_json):
            message.steps.append(json_format.ParseDict(step, common.Step()))
        return message

    def get(self, tenant: str, run_id: str) -> apb.Run:
        if not run_id or not ID_RE.match(run_id):
            raise InvalidArgument("run_id", "must match [A-Za-z0-9_-]{1,64}")
        with self.db.read() as session:
            found = session.exec(
                select(RunRow, ExecutionRow, ArtifactRow.revision)
                .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
                .join(ArtifactRow, col(ArtifactRow.id) == col(RunRow.artifact_id))
                .where(RunRow.id == run_id, RunRow.tenant == tenant)
            ).first()
        if found is None:
            raise NotFound(f"run_id: run {run_id!r} not found")
        run, execution, revision = found
        return self._message(run, execution, revision, detail=True)

    def list(self, tenant: str, artifact_id: str, page_size: int, page_token: str) -> tuple[list[apb.Run], str]:
        check_artifact_id(artifact_id)
        page = PageRequest.parse(page_size, page_token, max_size=MAX_PAGE_SIZE)
        with self.db.read() as session:
            artifact = _load(session, tenant, artifact_id, lock=True)
            query = (
                select(RunRow, ExecutionRow)
                .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
                .where(RunRow.artifact_id == artifact.id, RunRow.tenant == tenant)
            )
            query = newest_first(query, col(RunRow.created_at_ms), col(RunRow.id), page)
            rows, token = cut(list(session.exec(query)), page, lambda found: Position(found[0].created_at_ms, found[0].id))
        return [self._message(run, execution, artifact.revision, detail=False) for run, execution in rows], token

    def latest(self, tenant: str, artifact_id: str, paths: Sequence[str]) -> list[apb.LatestRun]:
        """Per path, the newest run that started it; paths without runs are left out."""
        check_artifact_id(artifact_id)
        with self.db.read() as session:
            artifact = _load(session, tenant, artifact_id, lock=True)
            wanted = sorted(set(paths)) or sorted(
                session.exec(select(RunPathRow.path).where(RunPathRow.artifact_id == artifact.id).distinct())
            )
            found = []
            for path in wanted:
                row = session.exec(
                    select(RunRow, ExecutionRow)
                    .join(RunPathRow, col(RunPathRow.run_id) == col(RunRow.id))
                    .join(ExecutionRow, col(ExecutionRow.key) == col(RunRow.execution_key))
                    .where(RunPathRow.artifact_id == artifact.id, RunPathRow.path == path)
                    .order_by(col(RunPathRow.created_at_ms).desc(), col(RunRow.id).desc())
                    .limit(1)
                ).first()
                if row is not None:
                    found.append((path, *row))
        return [
            apb.LatestRun(path=path, run=self._message(run, execution, artifact.revision, detail=True))
            for path, run, execution in found
        ]

    def output_file(self, tenant: str, run_id: str, path: str) -> Iterator[pb.OutputFileChunk]:
        self.get(tenant, run_id)  # NOT_FOUND for another tenant's run
        yield from self.executions.output_file(tenant, run_id, path)
