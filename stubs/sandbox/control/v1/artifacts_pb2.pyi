from sandbox.common.v1 import execution_pb2 as _execution_pb2
from sandbox.control.v1 import control_pb2 as _control_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LatestCompletedRun(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NoPriorRun(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunArtifactRequest(_message.Message):
    __slots__ = ("artifact_id", "path", "steps", "latest", "run_id", "none", "limits", "env", "stdin", "args", "install", "group_id")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NONE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    INSTALL_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    path: str
    steps: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Step]
    latest: LatestCompletedRun
    run_id: str
    none: NoPriorRun
    limits: _execution_pb2.Limits
    env: _containers.ScalarMap[str, str]
    stdin: bytes
    args: _containers.RepeatedScalarFieldContainer[str]
    install: _control_pb2.InstallOptions
    group_id: str
    def __init__(self, artifact_id: _Optional[str] = ..., path: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[_execution_pb2.Step, _Mapping]]] = ..., latest: _Optional[_Union[LatestCompletedRun, _Mapping]] = ..., run_id: _Optional[str] = ..., none: _Optional[_Union[NoPriorRun, _Mapping]] = ..., limits: _Optional[_Union[_execution_pb2.Limits, _Mapping]] = ..., env: _Optional[_Mapping[str, str]] = ..., stdin: _Optional[bytes] = ..., args: _Optional[_Iterable[str]] = ..., install: _Optional[_Union[_control_pb2.InstallOptions, _Mapping]] = ..., group_id: _Optional[str] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("accepted", "status", "stdout", "stderr", "step", "finished")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    accepted: Run
    status: _control_pb2.StatusChange
    stdout: _control_pb2.OutputChunk
    stderr: _control_pb2.OutputChunk
    step: _execution_pb2.StepResult
    finished: Run
    def __init__(self, accepted: _Optional[_Union[Run, _Mapping]] = ..., status: _Optional[_Union[_control_pb2.StatusChange, _Mapping]] = ..., stdout: _Optional[_Union[_control_pb2.OutputChunk, _Mapping]] = ..., stderr: _Optional[_Union[_control_pb2.OutputChunk, _Mapping]] = ..., step: _Optional[_Union[_execution_pb2.StepResult, _Mapping]] = ..., finished: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "artifact_id", "revision", "stale", "path", "steps", "inputs_from_run_id", "prestaged_files", "prestaged_bytes", "prestage_notice", "execution", "created_at_ms")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FROM_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PRESTAGED_FILES_FIELD_NUMBER: _ClassVar[int]
    PRESTAGED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRESTAGE_NOTICE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    artifact_id: str
    revision: int
    stale: bool
    path: str
    steps: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Step]
    inputs_from_run_id: str
    prestaged_files: int
    prestaged_bytes: int
    prestage_notice: str
    execution: _control_pb2.Execution
    created_at_ms: int
    def __init__(self, run_id: _Optional[str] = ..., artifact_id: _Optional[str] = ..., revision: _Optional[int] = ..., stale: _Optional[bool] = ..., path: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[_execution_pb2.Step, _Mapping]]] = ..., inputs_from_run_id: _Optional[str] = ..., prestaged_files: _Optional[int] = ..., prestaged_bytes: _Optional[int] = ..., prestage_notice: _Optional[str] = ..., execution: _Optional[_Union[_control_pb2.Execution, _Mapping]] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("artifact_id", "page_size", "page_token")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    page_size: int
    page_token: str
    def __init__(self, artifact_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetLatestRunsRequest(_message.Message):
    __slots__ = ("artifact_id", "paths")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, artifact_id: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ...) -> None: ...

class LatestRun(_message.Message):
    __slots__ = ("path", "run")
    PATH_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    path: str
    run: Run
    def __init__(self, path: _Optional[str] = ..., run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class GetLatestRunsResponse(_message.Message):
    __slots__ = ("latest",)
    LATEST_FIELD_NUMBER: _ClassVar[int]
    latest: _containers.RepeatedCompositeFieldContainer[LatestRun]
    def __init__(self, latest: _Optional[_Iterable[_Union[LatestRun, _Mapping]]] = ...) -> None: ...

class GetRunOutputFileRequest(_message.Message):
    __slots__ = ("run_id", "path")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    path: str
    def __init__(self, run_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("artifact_id", "language", "title", "entry", "packages", "revision", "created_at_ms", "updated_at_ms", "file_count", "total_bytes")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    language: _execution_pb2.Language
    title: str
    entry: str
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    revision: int
    created_at_ms: int
    updated_at_ms: int
    file_count: int
    total_bytes: int
    def __init__(self, artifact_id: _Optional[str] = ..., language: _Optional[_Union[_execution_pb2.Language, str]] = ..., title: _Optional[str] = ..., entry: _Optional[str] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ..., revision: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., file_count: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class ArtifactFile(_message.Message):
    __slots__ = ("path", "size", "sha256", "modified_revision")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    sha256: str
    modified_revision: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., modified_revision: _Optional[int] = ...) -> None: ...

class CreateArtifactRequest(_message.Message):
    __slots__ = ("language", "title", "entry", "packages")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    language: _execution_pb2.Language
    title: str
    entry: str
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    def __init__(self, language: _Optional[_Union[_execution_pb2.Language, str]] = ..., title: _Optional[str] = ..., entry: _Optional[str] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ...) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ("artifact_id",)
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    def __init__(self, artifact_id: _Optional[str] = ...) -> None: ...

class ListArtifactsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("artifacts", "next_page_token")
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    next_page_token: str
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateArtifactRequest(_message.Message):
    __slots__ = ("artifact_id", "expected_revision", "title", "entry")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    expected_revision: int
    title: str
    entry: str
    def __init__(self, artifact_id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., title: _Optional[str] = ..., entry: _Optional[str] = ...) -> None: ...

class CreateFileRequest(_message.Message):
    __slots__ = ("artifact_id", "expected_revision", "path", "content")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    expected_revision: int
    path: str
    content: bytes
    def __init__(self, artifact_id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class UpdateFileRequest(_message.Message):
    __slots__ = ("artifact_id", "expected_revision", "path", "content")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    expected_revision: int
    path: str
    content: bytes
    def __init__(self, artifact_id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class DeleteFileRequest(_message.Message):
    __slots__ = ("artifact_id", "expected_revision", "path")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    expected_revision: int
    path: str
    def __init__(self, artifact_id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class RenameFileRequest(_message.Message):
    __slots__ = ("artifact_id", "expected_revision", "path", "new_path")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    NEW_PATH_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    expected_revision: int
    path: str
    new_path: str
    def __init__(self, artifact_id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., path: _Optional[str] = ..., new_path: _Optional[str] = ...) -> None: ...

class FileWriteResponse(_message.Message):
    __slots__ = ("artifact", "file")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    file: ArtifactFile
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., file: _Optional[_Union[ArtifactFile, _Mapping]] = ...) -> None: ...

class ReadFileRequest(_message.Message):
    __slots__ = ("artifact_id", "path")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    path: str
    def __init__(self, artifact_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ReadFileResponse(_message.Message):
    __slots__ = ("file", "content", "revision")
    FILE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    file: ArtifactFile
    content: bytes
    revision: int
    def __init__(self, file: _Optional[_Union[ArtifactFile, _Mapping]] = ..., content: _Optional[bytes] = ..., revision: _Optional[int] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("artifact_id",)
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    def __init__(self, artifact_id: _Optional[str] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files", "revision", "entry")
    FILES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[ArtifactFile]
    revision: int
    entry: str
    def __init__(self, files: _Optional[_Iterable[_Union[ArtifactFile, _Mapping]]] = ..., revision: _Optional[int] = ..., entry: _Optional[str] = ...) -> None: ...

class AddPackagesRequest(_message.Message):
    __slots__ = ("artifact_id", "expected_revision", "packages")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    expected_revision: int
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    def __init__(self, artifact_id: _Optional[str] = ..., expected_revision: _Optional[int] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ...) -> None: ...
