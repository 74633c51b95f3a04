from sandbox.common.v1 import execution_pb2 as _execution_pb2
from sandbox.common.v1 import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Phase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PHASE_UNSPECIFIED: _ClassVar[Phase]
    PHASE_STARTING: _ClassVar[Phase]
    PHASE_INSTALLING: _ClassVar[Phase]
    PHASE_RUNNING: _ClassVar[Phase]
    PHASE_FINISHING: _ClassVar[Phase]
PHASE_UNSPECIFIED: Phase
PHASE_STARTING: Phase
PHASE_INSTALLING: Phase
PHASE_RUNNING: Phase
PHASE_FINISHING: Phase

class CreateSessionRequest(_message.Message):
    __slots__ = ("session_key", "tenant", "language", "limits", "variant", "idle_timeout_seconds", "max_lifetime_seconds", "files", "packages", "install")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    INSTALL_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    tenant: str
    language: _execution_pb2.Language
    limits: _execution_pb2.Limits
    variant: str
    idle_timeout_seconds: int
    max_lifetime_seconds: int
    files: _containers.RepeatedCompositeFieldContainer[_execution_pb2.File]
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    install: InstallOptions
    def __init__(self, session_key: _Optional[str] = ..., tenant: _Optional[str] = ..., language: _Optional[_Union[_execution_pb2.Language, str]] = ..., limits: _Optional[_Union[_execution_pb2.Limits, _Mapping]] = ..., variant: _Optional[str] = ..., idle_timeout_seconds: _Optional[int] = ..., max_lifetime_seconds: _Optional[int] = ..., files: _Optional[_Iterable[_Union[_execution_pb2.File, _Mapping]]] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ..., install: _Optional[_Union[InstallOptions, _Mapping]] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("start_ms", "install_ms")
    START_MS_FIELD_NUMBER: _ClassVar[int]
    INSTALL_MS_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    install_ms: int
    def __init__(self, start_ms: _Optional[int] = ..., install_ms: _Optional[int] = ...) -> None: ...

class SessionRef(_message.Message):
    __slots__ = ("session_key", "tenant")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    tenant: str
    def __init__(self, session_key: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class InterruptCellResponse(_message.Message):
    __slots__ = ("interrupted",)
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    interrupted: bool
    def __init__(self, interrupted: _Optional[bool] = ...) -> None: ...

class RestartSessionResponse(_message.Message):
    __slots__ = ("start_ms",)
    START_MS_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    def __init__(self, start_ms: _Optional[int] = ...) -> None: ...

class PutSessionFileRequest(_message.Message):
    __slots__ = ("session_key", "tenant", "path", "content")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    tenant: str
    path: str
    content: bytes
    def __init__(self, session_key: _Optional[str] = ..., tenant: _Optional[str] = ..., path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class SessionFile(_message.Message):
    __slots__ = ("path", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class GetSessionFileRequest(_message.Message):
    __slots__ = ("session_key", "tenant", "path")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    tenant: str
    path: str
    def __init__(self, session_key: _Optional[str] = ..., tenant: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class SessionFileChunk(_message.Message):
    __slots__ = ("data", "offset", "size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    offset: int
    size: int
    def __init__(self, data: _Optional[bytes] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class ListSessionFilesRequest(_message.Message):
    __slots__ = ("session_key", "tenant", "directory")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    tenant: str
    directory: str
    def __init__(self, session_key: _Optional[str] = ..., tenant: _Optional[str] = ..., directory: _Optional[str] = ...) -> None: ...

class ListSessionFilesResponse(_message.Message):
    __slots__ = ("files", "truncated")
    FILES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[SessionFile]
    truncated: bool
    def __init__(self, files: _Optional[_Iterable[_Union[SessionFile, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionRef]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionRef, _Mapping]]] = ...) -> None: ...

class RunCellRequest(_message.Message):
    __slots__ = ("session_key", "tenant", "code", "timeout_ms")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    tenant: str
    code: str
    timeout_ms: int
    def __init__(self, session_key: _Optional[str] = ..., tenant: _Optional[str] = ..., code: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_key", "tenant")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    tenant: str
    def __init__(self, session_key: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("closed",)
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    closed: bool
    def __init__(self, closed: _Optional[bool] = ...) -> None: ...

class InstallOptions(_message.Message):
    __slots__ = ("allow_sdist", "allow_install_scripts")
    ALLOW_SDIST_FIELD_NUMBER: _ClassVar[int]
    ALLOW_INSTALL_SCRIPTS_FIELD_NUMBER: _ClassVar[int]
    allow_sdist: bool
    allow_install_scripts: bool
    def __init__(self, allow_sdist: _Optional[bool] = ..., allow_install_scripts: _Optional[bool] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("execution_id", "tenant", "language", "files", "entry", "steps", "packages", "limits", "env", "stdin", "args", "prior_outputs", "install", "network", "variant", "runtime")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    PRIOR_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    INSTALL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    tenant: str
    language: _execution_pb2.Language
    files: _containers.RepeatedCompositeFieldContainer[_execution_pb2.File]
    entry: str
    steps: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Step]
    packages: _containers.RepeatedCompositeFieldContainer[_execution_pb2.Package]
    limits: _execution_pb2.Limits
    env: _containers.ScalarMap[str, str]
    stdin: bytes
    args: _containers.RepeatedScalarFieldContainer[str]
    prior_outputs: _containers.RepeatedCompositeFieldContainer[_execution_pb2.File]
    install: InstallOptions
    network: bool
    variant: str
    runtime: str
    def __init__(self, execution_id: _Optional[str] = ..., tenant: _Optional[str] = ..., language: _Optional[_Union[_execution_pb2.Language, str]] = ..., files: _Optional[_Iterable[_Union[_execution_pb2.File, _Mapping]]] = ..., entry: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[_execution_pb2.Step, _Mapping]]] = ..., packages: _Optional[_Iterable[_Union[_execution_pb2.Package, _Mapping]]] = ..., limits: _Optional[_Union[_execution_pb2.Limits, _Mapping]] = ..., env: _Optional[_Mapping[str, str]] = ..., stdin: _Optional[bytes] = ..., args: _Optional[_Iterable[str]] = ..., prior_outputs: _Optional[_Iterable[_Union[_execution_pb2.File, _Mapping]]] = ..., install: _Optional[_Union[InstallOptions, _Mapping]] = ..., network: _Optional[bool] = ..., variant: _Optional[str] = ..., runtime: _Optional[str] = ...) -> None: ...

class PhaseEvent(_message.Message):
    __slots__ = ("phase", "elapsed_ms")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    phase: Phase
    elapsed_ms: int
    def __init__(self, phase: _Optional[_Union[Phase, str]] = ..., elapsed_ms: _Optional[int] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("data", "step_index")
    DATA_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    step_index: int
    def __init__(self, data: _Optional[bytes] = ..., step_index: _Optional[int] = ...) -> None: ...

class ExecuteResult(_message.Message):
    __slots__ = ("status", "error_code", "error_message", "exit_code", "usage", "steps", "output_files", "dropped_output_files")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    status: _execution_pb2.ExecutionStatus
    error_code: _execution_pb2.ErrorCode
    error_message: str
    exit_code: int
    usage: _execution_pb2.Usage
    steps: _containers.RepeatedCompositeFieldContainer[_execution_pb2.StepResult]
    output_files: _containers.RepeatedCompositeFieldContainer[_execution_pb2.OutputFile]
    dropped_output_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[_Union[_execution_pb2.ExecutionStatus, str]] = ..., error_code: _Optional[_Union[_execution_pb2.ErrorCode, str]] = ..., error_message: _Optional[str] = ..., exit_code: _Optional[int] = ..., usage: _Optional[_Union[_execution_pb2.Usage, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[_execution_pb2.StepResult, _Mapping]]] = ..., output_files: _Optional[_Iterable[_Union[_execution_pb2.OutputFile, _Mapping]]] = ..., dropped_output_files: _Optional[_Iterable[str]] = ...) -> None: ...

class ExecuteEvent(_message.Message):
    __slots__ = ("phase", "stdout", "stderr", "step", "output_file", "result")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    phase: PhaseEvent
    stdout: OutputChunk
    stderr: OutputChunk
    step: _execution_pb2.StepResult
    output_file: _execution_pb2.OutputFile
    result: ExecuteResult
    def __init__(self, phase: _Optional[_Union[PhaseEvent, _Mapping]] = ..., stdout: _Optional[_Union[OutputChunk, _Mapping]] = ..., stderr: _Optional[_Union[OutputChunk, _Mapping]] = ..., step: _Optional[_Union[_execution_pb2.StepResult, _Mapping]] = ..., output_file: _Optional[_Union[_execution_pb2.OutputFile, _Mapping]] = ..., result: _Optional[_Union[ExecuteResult, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("execution_id", "tenant")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    tenant: str
    def __init__(self, execution_id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: bool
    def __init__(self, cancelled: _Optional[bool] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LimitRange(_message.Message):
    __slots__ = ("default_timeout_ms", "max_timeout_ms", "default_memory_bytes", "min_memory_bytes", "max_memory_bytes", "default_cpus", "max_cpus")
    DEFAULT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MIN_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_CPUS_FIELD_NUMBER: _ClassVar[int]
    MAX_CPUS_FIELD_NUMBER: _ClassVar[int]
    default_timeout_ms: int
    max_timeout_ms: int
    default_memory_bytes: int
    min_memory_bytes: int
    max_memory_bytes: int
    default_cpus: float
    max_cpus: float
    def __init__(self, default_timeout_ms: _Optional[int] = ..., max_timeout_ms: _Optional[int] = ..., default_memory_bytes: _Optional[int] = ..., min_memory_bytes: _Optional[int] = ..., max_memory_bytes: _Optional[int] = ..., default_cpus: _Optional[float] = ..., max_cpus: _Optional[float] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("version", "capacity", "free_slots", "runtime_images", "oci_runtime", "available_runtimes", "limits", "sandbox_runtimes", "default_runtime")
    class RuntimeImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_IMAGES_FIELD_NUMBER: _ClassVar[int]
    OCI_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_RUNTIMES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    version: str
    capacity: int
    free_slots: int
    runtime_images: _containers.ScalarMap[str, str]
    oci_runtime: str
    available_runtimes: _containers.RepeatedScalarFieldContainer[str]
    limits: LimitRange
    sandbox_runtimes: _containers.RepeatedScalarFieldContainer[str]
    default_runtime: str
    def __init__(self, version: _Optional[str] = ..., capacity: _Optional[int] = ..., free_slots: _Optional[int] = ..., runtime_images: _Optional[_Mapping[str, str]] = ..., oci_runtime: _Optional[str] = ..., available_runtimes: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[LimitRange, _Mapping]] = ..., sandbox_runtimes: _Optional[_Iterable[str]] = ..., default_runtime: _Optional[str] = ...) -> None: ...

class ListExecutionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecutionInFlight(_message.Message):
    __slots__ = ("execution_id", "tenant")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    tenant: str
    def __init__(self, execution_id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class ExecutionEnded(_message.Message):
    __slots__ = ("execution_id", "tenant", "status", "error_code", "usage", "ended_ms_ago")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ENDED_MS_AGO_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    tenant: str
    status: _execution_pb2.ExecutionStatus
    error_code: _execution_pb2.ErrorCode
    usage: _execution_pb2.Usage
    ended_ms_ago: int
    def __init__(self, execution_id: _Optional[str] = ..., tenant: _Optional[str] = ..., status: _Optional[_Union[_execution_pb2.ExecutionStatus, str]] = ..., error_code: _Optional[_Union[_execution_pb2.ErrorCode, str]] = ..., usage: _Optional[_Union[_execution_pb2.Usage, _Mapping]] = ..., ended_ms_ago: _Optional[int] = ...) -> None: ...

class ListExecutionsResponse(_message.Message):
    __slots__ = ("in_flight", "ended")
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    in_flight: _containers.RepeatedCompositeFieldContainer[ExecutionInFlight]
    ended: _containers.RepeatedCompositeFieldContainer[ExecutionEnded]
    def __init__(self, in_flight: _Optional[_Iterable[_Union[ExecutionInFlight, _Mapping]]] = ..., ended: _Optional[_Iterable[_Union[ExecutionEnded, _Mapping]]] = ...) -> None: ...
