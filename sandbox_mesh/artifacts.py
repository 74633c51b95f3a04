"""Artifacts and their runs, typed: `client.artifacts` of a Client.

Every write names the revision it expects (control refuses a stale one with
ABORTED and changes nothing). Give `revision` to write only over what you
read; leave it out and the current revision is read first (the last writer
wins). RunArtifact is never retried: a run's id is control's to choose, so a
retry after a cut stream could run the artifact twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from sandbox.common.v1 import execution_pb2 as common
from sandbox.control.v1 import artifacts_pb2 as apb
from sandbox.control.v1 import artifacts_pb2_grpc, control_pb2_grpc
from sandbox.control.v1 import control_pb2 as pb
from sandbox_mesh.artifact_records import Artifact, ArtifactFile, FileListing, Run, RunResult, run_event_of
from sandbox_mesh.calls import CALL_TIMEOUT_SECONDS, call_unary, checked_chunks, paged
from sandbox_mesh.errors import MeshError, mesh_error
from sandbox_mesh.events import Event, Execution, Output
from sandbox_mesh.request import LANGUAGES, UsageError, parse_npm, parse_pip, parse_size, step_messages

T = TypeVar("T")
PAGE_SIZE = 200


def package_messages(pip: Sequence[str], npm: Sequence[str]) -> list[common.Package]:
    return [parse_pip(p) for p in pip] + [parse_npm(p) for p in npm]


def inputs_fields(inputs: str) -> dict[str, Any]:
    """Where pre-staged output files come from: "latest" (the latest
    COMPLETED run), "none", or a run id."""
    if inputs == "latest":
        return {"latest": apb.LatestCompletedRun()}
    if inputs == "none":
        return {"none": apb.NoPriorRun()}
    return {"run_id": inputs}


class RunStream:
    """The events of one run, as Execute's (Accepted, StatusChanged, Output,
    StepFinished, Finished); iterate once. `run` is the run record (as
    accepted, then as finished), `result` the finished execution."""

    def __init__(
        self,
        call: Callable[[], Any],
        control: control_pb2_grpc.ControlStub,
    ):
        self._start = call
        self._control = control
        self._call: Any = None
        self.run: Run | None = None
        self.execution_id: str | None = None
        self.result: Execution | None = None

    def __iter__(self) -> Iterator[Event]:
        self._call = self._start()
        try:
            for message in self._call:
                event, run = run_event_of(message)
                if run is not None:
                    self.run = run
                    self.execution_id = run.run_id
                    self.result = run.execution if run.execution.finished else None
                yield event
        except grpc.RpcError as error:
            raise mesh_error(error) from None

    def cancel(self) -> bool:
        """Cancels the run's execution; True when control cancelled it."""
        try:
            if self.execution_id is None:
                return False
            request = pb.CancelExecutionRequest(execution_id=self.execution_id)
            return bool(self._control.CancelExecution(request, timeout=CALL_TIMEOUT_SECONDS).cancelled)
        except grpc.RpcError as error:
            raise mesh_error(error) from None
        finally:
            if self._call is not None:
                self._call.cancel()


class Artifacts:
    def __init__(
        self,
        stub: artifacts_pb2_grpc.ArtifactsStub,
        control: control_pb2_grpc.ControlStub,
        call_timeout: float = CALL_TIMEOUT_SECONDS,
    ):
        self._stub = stub
        self._control = control
        self.call_timeout = call_timeout

    def _unary(self, call: Callable[[float], T]) -> T:
        return call_unary(call, self.call_timeout)

    def _write(self, call: Callable[[float], T]) -> T:
        # Writes are not repeated: a retry after a cut reply would be
        # refused as ABORTED (the revision moved) and hide the success.
        try:
            return call(self.call_timeout)
        except grpc.RpcError as error:
            raise mesh_error(error) from None

    # ---- artifacts -------------------------------------------------------

    def create(
        self, language: str, *, title: str = "", entry: str = "", pip: Sequence[str] = (), npm: Sequence[str] = ()
    ) -> Artifact:
        """A new artifact at revision 1, without files."""
        if language not in LANGUAGES:
            raise UsageError("--language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
        request = apb.CreateArtifactRequest(
            language=LANGUAGES[language], title=title, entry=entry, packages=package_messages(pip, npm)
        )
        return Artifact.of(self._write(lambda t: self._stub.CreateArtifact(request, timeout=t)))

    def get(self, artifact_id: str) -> Artifact:
        request = apb.GetArtifactRequest(artifact_id=artifact_id)
        return Artifact.of(self._unary(lambda t: self._stub.GetArtifact(request, timeout=t)))

    def list(self, *, limit: int | None = 50) -> Iterator[Artifact]:
        """Newest first, page by page."""

        def page(size: int, token: str) -> tuple[Sequence[apb.Artifact], str]:
            request = apb.ListArtifactsRequest(page_size=size, page_token=token)
            response = self._unary(lambda t: self._stub.ListArtifacts(request, timeout=t))
            return response.artifacts, response.next_page_token

        return (Artifact.of(message) for message in paged(page, limit, PAGE_SIZE))

    def update(
        self, artifact_id: str, *, title: str | None = None, entry: str | None = None, revision: int | None = None
    ) -> Artifact:
        """Changes the title and/or the entry ("" clears it)."""
        request = apb.UpdateArtifactRequest(
            artifact_id=artifact_id, expected_revision=self._revision(artifact_id, revision), title=title, entry=entry
        )
        return Artifact.of(self._write(lambda t: self._stub.UpdateArtifact(request, timeout=t)))

    def add_packages(
        self, artifact_id: str, *, pip: Sequence[str] = (), npm: Sequence[str] = (), revision: int | None = None
    ) -> Artifact:
        """Unions packages into the list (a listed name is replaced in place)."""
        request = apb.AddPackagesRequest(
            artifact_id=artifact_id,
            expected_revision=self._revision(artifact_id, revision),
            packages=package_messages(pip, npm),
        )
        return Artifact.of(self._write(lambda t: self._stub.AddPackages(request, timeout=t)))

    def _revision(self, artifact_id: str, revision: int | None) -> int:
        return revision if revision is not None else self.get(artifact_id).revision

    # ---- files -----------------------------------------------------------

    def files(self, artifact_id: str) -> FileListing:
        request = apb.ListFilesRequest(artifact_id=artifact_id)
        response = self._unary(lambda t: self._stub.ListFiles(request, timeout=t))
        return FileListing(tuple(ArtifactFile.of(f) for f in response.files), response.revision, response.entry)

    def read(self, artifact_id: str, path: str) -> tuple[bytes, ArtifactFile]:
        """A file's content and metadata."""
        request = apb.ReadFileRequest(artifact_id=artifact_id, path=path)
        response = self._unary(lambda t: self._stub.ReadFile(request, timeout=t))
        return response.content, ArtifactFile.of(response.file)

    def put(
        self, artifact_id: str, path: str, content: bytes | str, *, revision: int | None = None
    ) -> tuple[Artifact, ArtifactFile]:
        """Creates the file, or replaces its content when it exists."""
        listing = self.files(artifact_id)
        expected = listing.revision if revision is None else revision
        data = content.encode() if isinstance(content, str) else content
        write = self._stub.UpdateFile if listing.has(path) else self._stub.CreateFile
        request_type = apb.UpdateFileRequest if listing.has(path) else apb.CreateFileRequest
        request = request_type(artifact_id=artifact_id, expected_revision=expected, path=path, content=data)
        response = self._write(lambda t: write(request, timeout=t))
        return Artifact.of(response.artifact), ArtifactFile.of(response.file)

    def remove(self, artifact_id: str, path: str, *, revision: int | None = None) -> Artifact:
        request = apb.DeleteFileRequest(
            artifact_id=artifact_id, expected_revision=self._revision(artifact_id, revision), path=path
        )
        return Artifact.of(self._write(lambda t: self._stub.DeleteFile(request, timeout=t)).artifact)

    def rename(self, artifact_id: str, path: str, new_path: str, *, revision: int | None = None) -> Artifact:
        """The entry follows the file it names."""
        request = apb.RenameFileRequest(
            artifact_id=artifact_id,
            expected_revision=self._revision(artifact_id, revision),
            path=path,
            new_path=new_path,
        )
        return Artifact.of(self._write(lambda t: self._stub.RenameFile(request, timeout=t)).artifact)

    # ---- runs ------------------------------------------------------------

    def execute(
        self,
        artifact_id: str,
        *,
        path: str = "",
        steps: Sequence[str | Sequence[str]] = (),
        inputs: str = "latest",
        args: Sequence[str] = (),
        timeout: float | None = None,
        memory: int | str | None = None,
        cpus: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes = b"",
        group_id: str = "",
        deadline: float | None = None,
    ) -> RunStream:
        """Starts a run of the artifact as it is now: `path` (default its
        entry) with `args`, or `steps`; iterate the stream for its events.
        `inputs`: "latest", "none" or a run id (see inputs_fields)."""
        if timeout is not None and timeout <= 0:
            raise UsageError("--timeout", "must be positive (seconds)")
        memory_bytes = parse_size(memory) if isinstance(memory, str) else (memory or 0)
        # Step paths are checked by control (the files are there, not here).
        step_list = step_messages(steps, None)
        request = apb.RunArtifactRequest(
            artifact_id=artifact_id,
            path=path,
            steps=step_list,
            limits=common.Limits(
                timeout_ms=round(timeout * 1000) if timeout else 0, memory_bytes=memory_bytes, cpus=cpus or 0.0
            ),
            env=dict(env or {}),
            stdin=stdin,
            args=list(args),
            group_id=group_id,
            **inputs_fields(inputs),
        )
        return RunStream(lambda: self._stub.RunArtifact(request, timeout=deadline), self._control)

    def run(self, artifact_id: str, *, fetch_files: bool = True, **options: Any) -> RunResult:
        """Runs to the end (options as execute's): output, record, files."""
        stream = self.execute(artifact_id, **options)
        out: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
        for event in stream:
            if isinstance(event, Output):
                out[event.stream].append(event.data)
        if stream.run is None or stream.result is None:
            raise MeshError("UNKNOWN", "the stream ended without a finished record")
        run = stream.run
        files = (
            {f.path: self.output_file(run.run_id, f.path) for f in run.execution.output_files} if fetch_files else {}
        )
        return RunResult(run, b"".join(out["stdout"]), b"".join(out["stderr"]), files)

    def get_run(self, run_id: str) -> Run:
        request = apb.GetRunRequest(run_id=run_id)
        return Run.of(self._unary(lambda t: self._stub.GetRun(request, timeout=t)))

    def runs(self, artifact_id: str, *, limit: int | None = 50) -> Iterator[Run]:
        """The artifact's runs, newest first."""

        def page(size: int, token: str) -> tuple[Sequence[apb.Run], str]:
            request = apb.ListRunsRequest(artifact_id=artifact_id, page_size=size, page_token=token)
            response = self._unary(lambda t: self._stub.ListRuns(request, timeout=t))
            return response.runs, response.next_page_token

        return (Run.of(message) for message in paged(page, limit, PAGE_SIZE))

    def output_chunks(self, run_id: str, path: str) -> Iterator[bytes]:
        request = apb.GetRunOutputFileRequest(run_id=run_id, path=path)
        return checked_chunks(self._stub.GetRunOutputFile(request, timeout=self.call_timeout * 10), path)

    def output_file(self, run_id: str, path: str) -> bytes:
        return b"".join(self.output_chunks(run_id, path))
