from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CellStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CELL_STATUS_UNSPECIFIED: _ClassVar[CellStatus]
    CELL_STATUS_OK: _ClassVar[CellStatus]
    CELL_STATUS_ERROR: _ClassVar[CellStatus]
    CELL_STATUS_TIMEOUT: _ClassVar[CellStatus]
    CELL_STATUS_KERNEL_DIED: _ClassVar[CellStatus]
    CELL_STATUS_SESSION_ENDED: _ClassVar[CellStatus]
CELL_STATUS_UNSPECIFIED: CellStatus
CELL_STATUS_OK: CellStatus
CELL_STATUS_ERROR: CellStatus
CELL_STATUS_TIMEOUT: CellStatus
CELL_STATUS_KERNEL_DIED: CellStatus
CELL_STATUS_SESSION_ENDED: CellStatus

class ValuePart(_message.Message):
    __slots__ = ("mime_type", "data", "last_value")
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_VALUE_FIELD_NUMBER: _ClassVar[int]
    mime_type: str
    data: bytes
    last_value: bool
    def __init__(self, mime_type: _Optional[str] = ..., data: _Optional[bytes] = ..., last_value: _Optional[bool] = ...) -> None: ...

class CellError(_message.Message):
    __slots__ = ("name", "value", "traceback")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    traceback: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., traceback: _Optional[_Iterable[str]] = ...) -> None: ...

class CellResult(_message.Message):
    __slots__ = ("status", "execution_count", "error", "values", "exit_code", "duration_ms")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    status: CellStatus
    execution_count: int
    error: CellError
    values: _containers.RepeatedCompositeFieldContainer[ValuePart]
    exit_code: int
    duration_ms: int
    def __init__(self, status: _Optional[_Union[CellStatus, str]] = ..., execution_count: _Optional[int] = ..., error: _Optional[_Union[CellError, _Mapping]] = ..., values: _Optional[_Iterable[_Union[ValuePart, _Mapping]]] = ..., exit_code: _Optional[int] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class CellEvent(_message.Message):
    __slots__ = ("stdout", "stderr", "value", "result")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    value: ValuePart
    result: CellResult
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., value: _Optional[_Union[ValuePart, _Mapping]] = ..., result: _Optional[_Union[CellResult, _Mapping]] = ...) -> None: ...
