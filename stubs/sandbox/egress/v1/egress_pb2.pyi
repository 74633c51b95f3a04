from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ALLOW: _ClassVar[Verdict]
    VERDICT_DENY: _ClassVar[Verdict]
VERDICT_UNSPECIFIED: Verdict
VERDICT_ALLOW: Verdict
VERDICT_DENY: Verdict

class AdmitRequest(_message.Message):
    __slots__ = ("execution_id", "address")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    address: str
    def __init__(self, execution_id: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class AdmitResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = ("was_admitted",)
    WAS_ADMITTED_FIELD_NUMBER: _ClassVar[int]
    was_admitted: bool
    def __init__(self, was_admitted: _Optional[bool] = ...) -> None: ...

class GetDecisionsRequest(_message.Message):
    __slots__ = ("execution_id",)
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    def __init__(self, execution_id: _Optional[str] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("time", "execution_id", "tenant", "host", "port", "sni", "resolved_address", "verdict", "reason", "bytes_up", "bytes_down", "kind", "closed")
    TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SNI_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BYTES_UP_FIELD_NUMBER: _ClassVar[int]
    BYTES_DOWN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    time: float
    execution_id: str
    tenant: str
    host: str
    port: int
    sni: str
    resolved_address: str
    verdict: Verdict
    reason: str
    bytes_up: int
    bytes_down: int
    kind: str
    closed: bool
    def __init__(self, time: _Optional[float] = ..., execution_id: _Optional[str] = ..., tenant: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., sni: _Optional[str] = ..., resolved_address: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., reason: _Optional[str] = ..., bytes_up: _Optional[int] = ..., bytes_down: _Optional[int] = ..., kind: _Optional[str] = ..., closed: _Optional[bool] = ...) -> None: ...

class GetDecisionsResponse(_message.Message):
    __slots__ = ("decisions", "dropped")
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[Decision]
    dropped: int
    def __init__(self, decisions: _Optional[_Iterable[_Union[Decision, _Mapping]]] = ..., dropped: _Optional[int] = ...) -> None: ...
