from sandbox.common.v1 import execution_pb2 as _execution_pb2
from sandbox.common.v1 import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATUS_UNSPECIFIED: _ClassVar[SessionStatus]
    SESSION_STATUS_OPEN: _ClassVar[SessionStatus]
    SESSION_STATUS_CLOSED: _ClassVar[SessionStatus]
    SESSION_STATUS_EXPIRED: _ClassVar[SessionStatus]
    SESSION_STATUS_FAILED: _ClassVar[SessionStatus]
SESSION_STATUS_UNSPECIFIED: SessionStatus
SESSION_STATUS_OPEN: SessionStatus
SESSION_STATUS_CLOSED: SessionStatus
SESSION_STATUS_EXPIRED: SessionStatus
SESSION_STATUS_FAILED: SessionStatus

class CreateSessionRequest(_message.Message):
    __slots__ = ("session_id", "language", "limits", "variant", "idle_timeout_seconds", "max_lifetime_seconds", "files", "packages", "install")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    INSTALL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    language: _execution_pb2.Language
    limits: _execution_pb2.Limits
    variant: str
    idle_timeout_seconds: int
    max_lifetime_seconds: int
    files: _containers.RepeatedCompositeFieldContainer[_execution_pb2.File]
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    install: InstallOptions
    def __init__(self, session_id: _Optional[str] = ..., language: _Optional[_Union[_execution_pb2.Language, str]] = ..., limits: _Optional[_Union[_execution_pb2.Limits, _Mapping]] = ..., variant: _Optional[str] = ..., idle_timeout_seconds: _Optional[int] = ..., max_lifetime_seconds: _Optional[int] = ..., files: _Optional[_Iterable[_Union[_execution_pb2.File, _Mapping]]] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ..., install: _Optional[_Union[InstallOptions, _Mapping]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "language", "variant", "status", "end_reason", "idle_timeout_seconds", "max_lifetime_seconds", "created_at_ms", "last_used_at_ms", "ended_at_ms", "expires_at_ms", "calls", "limits", "busy", "packages", "restarts")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    language: _execution_pb2.Language
    variant: str
    status: SessionStatus
    end_reason: str
    idle_timeout_seconds: int
    max_lifetime_seconds: int
    created_at_ms: int
    last_used_at_ms: int
    ended_at_ms: int
    expires_at_ms: int
    calls: int
    limits: _execution_pb2.Limits
    busy: bool
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    restarts: int
    def __init__(self, session_id: _Optional[str] = ..., language: _Optional[_Union[_execution_pb2.Language, str]] = ..., variant: _Optional[str] = ..., status: _Optional[_Union[SessionStatus, str]] = ..., end_reason: _Optional[str] = ..., idle_timeout_seconds: _Optional[int] = ..., max_lifetime_seconds: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., last_used_at_ms: _Optional[int] = ..., ended_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., calls: _Optional[int] = ..., limits: _Optional[_Union[_execution_pb2.Limits, _Mapping]] = ..., busy: _Optional[bool] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ..., restarts: _Optional[int] = ...) -> None: ...

class RunCellRequest(_message.Message):
    __slots__ = ("session_id", "code", "timeout_ms", "execution_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    code: str
    timeout_ms: int
    execution_id: str
    def __init__(self, session_id: _Optional[str] = ..., code: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., execution_id: _Optional[str] = ...) -> None: ...

class CellEvent(_message.Message):
    __slots__ = ("accepted", "stdout", "stderr", "value", "result")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    stdout: bytes
    stderr: bytes
    value: _session_pb2.ValuePart
    result: _session_pb2.CellResult
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., value: _Optional[_Union[_session_pb2.ValuePart, _Mapping]] = ..., result: _Optional[_Union[_session_pb2.CellResult, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("open_only", "page_size", "page_token")
    OPEN_ONLY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    open_only: bool
    page_size: int
    page_token: str
    def __init__(self, open_only: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class RestartSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class PutSessionFileRequest(_message.Message):
    __slots__ = ("session_id", "path", "content")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    content: bytes
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class SessionFile(_message.Message):
    __slots__ = ("path", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class GetSessionFileRequest(_message.Message):
    __slots__ = ("session_id", "path")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    path: str
    def __init__(self, session_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ListSessionFilesRequest(_message.Message):
    __slots__ = ("session_id", "directory")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    directory: str
    def __init__(self, session_id: _Optional[str] = ..., directory: _Optional[str] = ...) -> None: ...

class ListSessionFilesResponse(_message.Message):
    __slots__ = ("files", "truncated")
    FILES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[SessionFile]
    truncated: bool
    def __init__(self, files: _Optional[_Iterable[_Union[SessionFile, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class InstallOptions(_message.Message):
    __slots__ = ("allow_sdist", "allow_install_scripts")
    ALLOW_SDIST_FIELD_NUMBER: _ClassVar[int]
    ALLOW_INSTALL_SCRIPTS_FIELD_NUMBER: _ClassVar[int]
    allow_sdist: bool
    allow_install_scripts: bool
    def __init__(self, allow_sdist: _Optional[bool] = ..., allow_install_scripts: _Optional[bool] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("execution_id", "group_id", "language", "files", "entry", "steps", "packages", "limits", "env", "stdin", "args", "install", "variant", "runtime")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    INSTALL_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    group_id: str
    language: _execution_pb2.Language
    files: _containers.RepeatedCompositeFieldContainer[_execution_pb2.File]
    entry: str
    steps: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Step]
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    limits: _execution_pb2.Limits
    env: _containers.ScalarMap[str, str]
    stdin: bytes
    args: _containers.RepeatedScalarFieldContainer[str]
    install: InstallOptions
    variant: str
    runtime: str
    def __init__(self, execution_id: _Optional[str] = ..., group_id: _Optional[str] = ..., language: _Optional[_Union[_execution_pb2.Language, str]] = ..., files: _Optional[_Iterable[_Union[_execution_pb2.File, _Mapping]]] = ..., entry: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[_execution_pb2.Step, _Mapping]]] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ..., limits: _Optional[_Union[_execution_pb2.Limits, _Mapping]] = ..., env: _Optional[_Mapping[str, str]] = ..., stdin: _Optional[bytes] = ..., args: _Optional[_Iterable[str]] = ..., install: _Optional[_Union[InstallOptions, _Mapping]] = ..., variant: _Optional[str] = ..., runtime: _Optional[str] = ...) -> None: ...

class Accepted(_message.Message):
    __slots__ = ("execution_id", "status")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    status: _execution_pb2.ExecutionStatus
    def __init__(self, execution_id: _Optional[str] = ..., status: _Optional[_Union[_execution_pb2.ExecutionStatus, str]] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("status", "elapsed_ms")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    status: _execution_pb2.ExecutionStatus
    elapsed_ms: int
    def __init__(self, status: _Optional[_Union[_execution_pb2.ExecutionStatus, str]] = ..., elapsed_ms: _Optional[int] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("data", "step_index")
    DATA_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    step_index: int
    def __init__(self, data: _Optional[bytes] = ..., step_index: _Optional[int] = ...) -> None: ...

class ExecuteEvent(_message.Message):
    __slots__ = ("accepted", "status", "stdout", "stderr", "step", "finished")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    accepted: Accepted
    status: StatusChange
    stdout: OutputChunk
    stderr: OutputChunk
    step: _execution_pb2.StepResult
    finished: Execution
    def __init__(self, accepted: _Optional[_Union[Accepted, _Mapping]] = ..., status: _Optional[_Union[StatusChange, _Mapping]] = ..., stdout: _Optional[_Union[OutputChunk, _Mapping]] = ..., stderr: _Optional[_Union[OutputChunk, _Mapping]] = ..., step: _Optional[_Union[_execution_pb2.StepResult, _Mapping]] = ..., finished: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class StoredFile(_message.Message):
    __slots__ = ("path", "size", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class Execution(_message.Message):
    __slots__ = ("execution_id", "group_id", "language", "status", "error_code", "error_message", "exit_code", "timeout_ms", "usage", "steps", "output_files", "dropped_output_files", "stdout_preview", "stderr_preview", "stdout_truncated", "stderr_truncated", "created_at_ms", "started_at_ms", "finished_at_ms", "heartbeat_at_ms", "spawner", "variant", "runtime", "session_id")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    STDOUT_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    STDERR_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STDERR_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SPAWNER_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    group_id: str
    language: _execution_pb2.Language
    status: _execution_pb2.ExecutionStatus
    error_code: _execution_pb2.ErrorCode
    error_message: str
    exit_code: int
    timeout_ms: int
    usage: _execution_pb2.Usage
    steps: _containers.RepeatedCompositeFieldContainer[_execution_pb2.StepResult]
    output_files: _containers.RepeatedCompositeFieldContainer[StoredFile]
    dropped_output_files: _containers.RepeatedScalarFieldContainer[str]
    stdout_preview: bytes
    stderr_preview: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    created_at_ms: int
    started_at_ms: int
    finished_at_ms: int
    heartbeat_at_ms: int
    spawner: str
    variant: str
    runtime: str
    session_id: str
    def __init__(self, execution_id: _Optional[str] = ..., group_id: _Optional[str] = ..., language: _Optional[_Union[_execution_pb2.Language, str]] = ..., status: _Optional[_Union[_execution_pb2.ExecutionStatus, str]] = ..., error_code: _Optional[_Union[_execution_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., exit_code: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., usage: _Optional[_Union[_execution_pb2.Usage, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[_execution_pb2.StepResult, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[StoredFile, _Mapping]]] = ..., dropped_output_files: _Optional[_Iterable[str]] = ..., stdout_preview: _Optional[bytes] = ..., stderr_preview: _Optional[bytes] = ..., stdout_truncated: _Optional[bool] = ..., stderr_truncated: _Optional[bool] = ..., created_at_ms: _Optional[int] = ..., started_at_ms: _Optional[int] = ..., finished_at_ms: _Optional[int] = ..., heartbeat_at_ms: _Optional[int] = ..., spawner: _Optional[str] = ..., variant: _Optional[str] = ..., runtime: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class GetExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ("statuses", "group_id", "session_id", "page_size", "page_token")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[_execution_pb2.ExecutionStatus]
    group_id: str
    session_id: str
    page_size: int
    page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[_execution_pb2.ExecutionStatus, str]]] = ..., group_id: _Optional[str] = ..., session_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("executions", "next_page_token")
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    next_page_token: str
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelExecutionRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class CancelExecutionResponse(_message.Message):
    __slots__ = ("cancelled", "execution")
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    execution: Execution
    def __init__(self, cancelled: _Optional[bool] = ..., execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class CancelGroupRequest(_message.Message):
    __slots__ = ("group_id",)
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    def __init__(self, group_id: _Optional[str] = ...) -> None: ...

class CancelGroupResponse(_message.Message):
    __slots__ = ("cancelled_execution_ids",)
    CANCELLED_EXECUTION_IDS_FIELD_NUMBER: _ClassVar[int]
    cancelled_execution_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cancelled_execution_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetOutputFileRequest(_message.Message):
    __slots__ = ("execution_id", "path")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    path: str
    def __init__(self, execution_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class OutputFileChunk(_message.Message):
    __slots__ = ("data", "offset", "size", "sha256")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    size: int
    sha256: str
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class GetQuotaRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Quota(_message.Message):
    __slots__ = ("tenant", "max_in_flight", "in_flight", "daily_cpu_seconds", "cpu_seconds_used", "day", "daily_slot_seconds", "slot_seconds_used", "max_slots", "slots_held", "mesh_slots", "max_stored_executions", "stored_executions", "max_stored_output_bytes", "stored_output_bytes", "max_stored_artifacts", "stored_artifacts", "max_stored_artifact_bytes", "stored_artifact_bytes", "retention_days")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DAILY_CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_USED_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    DAILY_SLOT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SLOT_SECONDS_USED_FIELD_NUMBER: _ClassVar[int]
    MAX_SLOTS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_HELD_FIELD_NUMBER: _ClassVar[int]
    MESH_SLOTS_FIELD_NUMBER: _ClassVar[int]
    MAX_STORED_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    STORED_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_STORED_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORED_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_STORED_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    STORED_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    MAX_STORED_ARTIFACT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORED_ARTIFACT_BYTES_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    max_in_flight: int
    in_flight: int
    daily_cpu_seconds: float
    cpu_seconds_used: float
    day: str
    daily_slot_seconds: float
    slot_seconds_used: float
    max_slots: int
    slots_held: int
    mesh_slots: int
    max_stored_executions: int
    stored_executions: int
    max_stored_output_bytes: int
    stored_output_bytes: int
    max_stored_artifacts: int
    stored_artifacts: int
    max_stored_artifact_bytes: int
    stored_artifact_bytes: int
    retention_days: float
    def __init__(self, tenant: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., in_flight: _Optional[int] = ..., daily_cpu_seconds: _Optional[float] = ..., cpu_seconds_used: _Optional[float] = ..., day: _Optional[str] = ..., daily_slot_seconds: _Optional[float] = ..., slot_seconds_used: _Optional[float] = ..., max_slots: _Optional[int] = ..., slots_held: _Optional[int] = ..., mesh_slots: _Optional[int] = ..., max_stored_executions: _Optional[int] = ..., stored_executions: _Optional[int] = ..., max_stored_output_bytes: _Optional[int] = ..., stored_output_bytes: _Optional[int] = ..., max_stored_artifacts: _Optional[int] = ..., stored_artifacts: _Optional[int] = ..., max_stored_artifact_bytes: _Optional[int] = ..., stored_artifact_bytes: _Optional[int] = ..., retention_days: _Optional[float] = ...) -> None: ...
