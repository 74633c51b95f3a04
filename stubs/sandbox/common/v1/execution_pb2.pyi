from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Language(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LANGUAGE_UNSPECIFIED: _ClassVar[Language]
    LANGUAGE_PYTHON: _ClassVar[Language]
    LANGUAGE_NODE: _ClassVar[Language]

class ExecutionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTION_STATUS_UNSPECIFIED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_QUEUED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_INSTALLING: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_RUNNING: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_COMPLETED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_FAILED: _ClassVar[ExecutionStatus]
    EXECUTION_STATUS_CANCELLED: _ClassVar[ExecutionStatus]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_MEMORY_LIMIT: _ClassVar[ErrorCode]
    ERROR_CODE_OUTPUT_LIMIT: _ClassVar[ErrorCode]
    ERROR_CODE_RUNTIME_ERROR: _ClassVar[ErrorCode]
    ERROR_CODE_PACKAGE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_EGRESS_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_INPUT_REJECTED: _ClassVar[ErrorCode]
    ERROR_CODE_QUOTA_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_CANCELLED: _ClassVar[ErrorCode]
    ERROR_CODE_SPAWNER_UNAVAILABLE: _ClassVar[ErrorCode]
LANGUAGE_UNSPECIFIED: Language
LANGUAGE_PYTHON: Language
LANGUAGE_NODE: Language
EXECUTION_STATUS_UNSPECIFIED: ExecutionStatus
EXECUTION_STATUS_QUEUED: ExecutionStatus
EXECUTION_STATUS_INSTALLING: ExecutionStatus
EXECUTION_STATUS_RUNNING: ExecutionStatus
EXECUTION_STATUS_COMPLETED: ExecutionStatus
EXECUTION_STATUS_FAILED: ExecutionStatus
EXECUTION_STATUS_CANCELLED: ExecutionStatus
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_TIMEOUT: ErrorCode
ERROR_CODE_MEMORY_LIMIT: ErrorCode
ERROR_CODE_OUTPUT_LIMIT: ErrorCode
ERROR_CODE_RUNTIME_ERROR: ErrorCode
ERROR_CODE_PACKAGE_NOT_FOUND: ErrorCode
ERROR_CODE_EGRESS_DENIED: ErrorCode
ERROR_CODE_INPUT_REJECTED: ErrorCode
ERROR_CODE_QUOTA_EXCEEDED: ErrorCode
ERROR_CODE_CANCELLED: ErrorCode
ERROR_CODE_SPAWNER_UNAVAILABLE: ErrorCode

class File(_message.Message):
    __slots__ = ("path", "content")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    path: str
    content: bytes
    def __init__(self, path: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class Package(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("timeout_ms", "memory_bytes", "cpus")
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    timeout_ms: int
    memory_bytes: int
    cpus: float
    def __init__(self, timeout_ms: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., cpus: _Optional[float] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("path", "args")
    PATH_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    path: str
    args: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, path: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ...) -> None: ...

class StepResult(_message.Message):
    __slots__ = ("index", "path", "status", "exit_code", "duration_ms")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    index: int
    path: str
    status: ExecutionStatus
    exit_code: int
    duration_ms: int
    def __init__(self, index: _Optional[int] = ..., path: _Optional[str] = ..., status: _Optional[_Union[ExecutionStatus, str]] = ..., exit_code: _Optional[int] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("wall_ms", "cpu_seconds", "peak_memory_bytes", "stdout_bytes", "stderr_bytes", "install_ms", "output_files", "output_files_dropped")
    WALL_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PEAK_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    INSTALL_MS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    wall_ms: int
    cpu_seconds: float
    peak_memory_bytes: int
    stdout_bytes: int
    stderr_bytes: int
    install_ms: int
    output_files: int
    output_files_dropped: int
    def __init__(self, wall_ms: _Optional[int] = ..., cpu_seconds: _Optional[float] = ..., peak_memory_bytes: _Optional[int] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., install_ms: _Optional[int] = ..., output_files: _Optional[int] = ..., output_files_dropped: _Optional[int] = ...) -> None: ...

class OutputFile(_message.Message):
    __slots__ = ("path", "size", "content", "offset", "last_chunk")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_CHUNK_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    content: bytes
    offset: int
    last_chunk: bool
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., content: _Optional[bytes] = ..., offset: _Optional[int] = ..., last_chunk: _Optional[bool] = ...) -> None: ...
