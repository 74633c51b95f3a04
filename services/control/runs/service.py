"""The run service: starts runs of runnable artifacts and answers the reads.

A run is an execution of the execution service (admission against the
quota, the relay to a spawner, previews, verdict and output files) plus one
append-only `runs` row (models.py): the artifact, the revision whose files
were staged, what was asked to run, and which earlier run's outputs were
pre-staged (prestage.py). The run id is also the execution's id, so
Control's GetExecution and GetOutputFile work on a run too.

Runs own their rows. They are written in the execution's admission
transaction, which the run service opens itself (`ExecutionService.admit`
works inside the caller's transaction): a run and its execution exist
together or not at all, so no reader ever sees an execution named like a run
without its run, or a run without its execution. A run is checked at
control's door like any execution (`ExecutionService.check`) before either
row is written; a spawner that still refuses it ends it FAILED /
INPUT_REJECTED. Should an execution row be deleted, the database deletes the
run's rows with it (ON DELETE CASCADE, revision 0102): the execution store
knows nothing of runs.
"""

from __future__ import annotations

import builtins
import json
import secrets
from collections.abc import Iterator, Sequence

from google.protobuf import json_format
from sqlmodel import Session

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as apb
from sandbox.control.v1 import control_pb2 as pb
from services.common.contract.ids import ID_RE
from services.common.contract.languages import as_language
from services.control.artifacts import store as artifact_store
from services.control.artifacts.models import ArtifactRow
from services.control.artifacts.rules import check_artifact_id
from services.control.config import PrestageLimits
from services.control.db import Database
from services.control.errors import FailedPrecondition, InvalidArgument, NotFound
from services.control.executions import messages, states
from services.control.executions.in_flight import InFlightExecution
from services.control.executions.models import ExecutionRow
from services.control.executions.service import ExecutionService
from services.control.pagination import PageRequest
from services.control.runs import store
from services.control.runs.models import RunRow
from services.control.runs.prestage import Prestage, judge_prestage

# Random bytes of a run id (run_ + 20 hex).
RUN_ID_BYTES = 10
# Runs per ListRuns page (artifacts.proto).
MAX_PAGE_SIZE = 200


def new_run_id() -> str:
    return "run_" + secrets.token_hex(RUN_ID_BYTES)


class RunService:
    def __init__(self, executions: ExecutionService, database: Database, limits: PrestageLimits):
        self.executions = executions
        self.db = database
        self.limits = limits

    # ---- starting a run --------------------------------------------------

    def start(
        self, tenant: str, request: apb.RunArtifactRequest, caller_seconds: float | None = None
    ) -> tuple[InFlightExecution, str]:
        """Validates, resolves the inputs and admits the run (raises
        InvalidArgument, NotFound, FailedPrecondition, QuotaExceeded); the
        caller then reads `events(tenant, execution, run_id)`.
        `caller_seconds`: what is left of the caller's deadline (None: none)."""
        check_artifact_id(request.artifact_id)
        if request.path and request.steps:
            raise InvalidArgument("steps", "give either path or steps, not both")
        source = request.WhichOneof("inputs_from_run") or "latest"
        if source == "run_id" and not ID_RE.match(request.run_id):
            raise InvalidArgument("run_id", "must match [A-Za-z0-9_-]{1,64}")
        with self.db.read() as session:
            artifact = artifact_store.load_artifact(session, tenant, request.artifact_id, lock=True)
            files = artifact_store.files_with_contents(session, artifact.id)
            path = _entry_path(artifact, {f.path for f in files}, request)
            source_row = self._source(session, tenant, artifact.id, source, request.run_id)
        prestage = self._prestage(source_row)
        run_id = new_run_id()
        execute = pb.ExecuteRequest(
            execution_id=run_id,
            group_id=request.group_id,
            language=as_language(artifact.language),
            files=[common.File(path=f.path, content=f.content) for f in files],
            entry=path,
            steps=request.steps,
            packages=[common.Package(name=p.name, version=p.version) for p in artifact_store.packages_of(artifact)],
            limits=request.limits,
            env=request.env,
            stdin=request.stdin,
            args=request.args,
            install=request.install,
        )
        admission = self.executions.check(execute)
        with self.db.write() as session:
            execution = self.executions.admit(session, tenant, admission)
            run = RunRow(
                id=run_id,
                tenant=tenant,
                artifact_id=artifact.id,
                execution_key=execution.key,
                revision=artifact.revision,
                path=path,
                steps_json=messages.steps_json(request.steps),
                inputs_from_run_id=prestage.inputs_from_run_id,
                prestaged_files=len(prestage.files),
                prestaged_bytes=prestage.total,
                prestage_notice=prestage.notice,
                created_at_ms=execution.created_at_ms,
            )
            store.add_run(session, run, sorted({path} if path else {s.path for s in request.steps}))
        in_flight = self.executions.launch(
            execution,
            execute,
            caller_seconds=caller_seconds,
            prior_outputs=prestage.files,
            stderr_notice=prestage.stderr_notice(),
        )
        return in_flight, run_id

    def _source(self, session: Session, tenant: str, artifact_id: str, source: str, run_id: str) -> RunRow | None:
        """The run whose outputs are pre-staged: the latest completed one, a
        named finished one, or none."""
        if source == "latest":
            return store.latest_completed(session, artifact_id)
        if source != "run_id":
            return None
        found = store.run_of_artifact(session, tenant, artifact_id, run_id)
        if found is None:
            # Also another artifact's or another tenant's run.
            raise NotFound(f"run_id: run {run_id!r} of artifact {artifact_id!r} not found")
        run, status = found
        if status not in states.TERMINAL:
            raise FailedPrecondition("run_id", f"run {run_id!r} has not finished; its outputs are not stored yet")
        return run

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
            found = store.run_with_execution(session, tenant, run_id)
        if found is None:
            raise NotFound(f"run_id: run {run_id!r} not found")
        run, execution, revision = found
        return self._message(run, execution, revision, detail=True)

    def list(self, tenant: str, artifact_id: str, page_size: int, page_token: str) -> tuple[list[apb.Run], str]:
        check_artifact_id(artifact_id)
        page = PageRequest.parse(page_size, page_token, max_size=MAX_PAGE_SIZE)
        with self.db.read() as session:
            artifact = artifact_store.load_artifact(session, tenant, artifact_id, lock=True)
            rows, token = store.list_runs(session, tenant, artifact.id, page)
        return [self._message(run, execution, artifact.revision, detail=False) for run, execution in rows], token

    # builtins.list: inside the class `list` names the method above
    def latest(self, tenant: str, artifact_id: str, paths: Sequence[str]) -> builtins.list[apb.LatestRun]:
        """Per path, the newest run that started it; paths without runs are left out."""
        check_artifact_id(artifact_id)
        with self.db.read() as session:
            artifact = artifact_store.load_artifact(session, tenant, artifact_id, lock=True)
            wanted = sorted(set(paths)) or store.started_paths(session, artifact.id)
            found = []
            for path in wanted:
                row = store.latest_run_of_path(session, artifact.id, path)
                if row is not None:
                    found.append((path, *row))
        return [
            apb.LatestRun(path=path, run=self._message(run, execution, artifact.revision, detail=True))
            for path, run, execution in found
        ]

    def output_file(self, tenant: str, run_id: str, path: str) -> Iterator[pb.OutputFileChunk]:
        self.get(tenant, run_id)  # NOT_FOUND for another tenant's run
        yield from self.executions.output_file(tenant, run_id, path)


def _entry_path(artifact: ArtifactRow, names: set[str], request: apb.RunArtifactRequest) -> str:
    """The path a run starts ("" when it runs steps); every named file must
    be in the artifact."""
    if request.steps:
        for index, step in enumerate(request.steps):
            if step.path not in names:
                raise InvalidArgument(f"steps[{index}].path", f"no file {step.path!r} in the artifact")
        return ""
    path = request.path or artifact.entry
    if not path:
        raise FailedPrecondition("path", "the artifact has no entry file; name a path or steps")
    if path not in names:
        raise InvalidArgument("path", f"no file {path!r} in the artifact")
    return path
