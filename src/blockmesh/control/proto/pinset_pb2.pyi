from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PinState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIN_STATE_UNSPECIFIED: _ClassVar[PinState]
    QUEUED: _ClassVar[PinState]
    PINNING: _ClassVar[PinState]
    PINNED: _ClassVar[PinState]
    PIN_ERROR: _ClassVar[PinState]
    UNPINNED: _ClassVar[PinState]
PIN_STATE_UNSPECIFIED: PinState
QUEUED: PinState
PINNING: PinState
PINNED: PinState
PIN_ERROR: PinState
UNPINNED: PinState

class Operation(_message.Message):
    __slots__ = ("pin_add", "pin_remove", "pin_update", "heartbeat", "status", "audit", "recover", "query", "statuses")
    PIN_ADD_FIELD_NUMBER: _ClassVar[int]
    PIN_REMOVE_FIELD_NUMBER: _ClassVar[int]
    PIN_UPDATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    RECOVER_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    pin_add: PinAdd
    pin_remove: PinRemove
    pin_update: PinUpdate
    heartbeat: Heartbeat
    status: StatusReport
    audit: AuditReport
    recover: Recover
    query: Query
    statuses: StatusBatch
    def __init__(self, pin_add: _Optional[_Union[PinAdd, _Mapping]] = ..., pin_remove: _Optional[_Union[PinRemove, _Mapping]] = ..., pin_update: _Optional[_Union[PinUpdate, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., status: _Optional[_Union[StatusReport, _Mapping]] = ..., audit: _Optional[_Union[AuditReport, _Mapping]] = ..., recover: _Optional[_Union[Recover, _Mapping]] = ..., query: _Optional[_Union[Query, _Mapping]] = ..., statuses: _Optional[_Union[StatusBatch, _Mapping]] = ...) -> None: ...

class PinAdd(_message.Message):
    __slots__ = ("cid", "replication_min", "replication_max", "name", "expire_in_ms", "size")
    CID_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_MIN_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_MAX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_IN_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    replication_min: int
    replication_max: int
    name: str
    expire_in_ms: int
    size: int
    def __init__(self, cid: _Optional[bytes] = ..., replication_min: _Optional[int] = ..., replication_max: _Optional[int] = ..., name: _Optional[str] = ..., expire_in_ms: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class PinRemove(_message.Message):
    __slots__ = ("cid",)
    CID_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    def __init__(self, cid: _Optional[bytes] = ...) -> None: ...

class PinUpdate(_message.Message):
    __slots__ = ("from_cid", "to_cid")
    FROM_CID_FIELD_NUMBER: _ClassVar[int]
    TO_CID_FIELD_NUMBER: _ClassVar[int]
    from_cid: bytes
    to_cid: bytes
    def __init__(self, from_cid: _Optional[bytes] = ..., to_cid: _Optional[bytes] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("time_ms", "free_space", "tags")
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    FREE_SPACE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    free_space: int
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, time_ms: _Optional[int] = ..., free_space: _Optional[int] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class StatusReport(_message.Message):
    __slots__ = ("cid", "state", "error")
    CID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    state: PinState
    error: str
    def __init__(self, cid: _Optional[bytes] = ..., state: _Optional[_Union[PinState, str]] = ..., error: _Optional[str] = ...) -> None: ...

class StatusBatch(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[StatusReport]
    def __init__(self, reports: _Optional[_Iterable[_Union[StatusReport, _Mapping]]] = ...) -> None: ...

class AuditReport(_message.Message):
    __slots__ = ("cid", "target", "ok", "detail")
    CID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    target: str
    ok: bool
    detail: str
    def __init__(self, cid: _Optional[bytes] = ..., target: _Optional[str] = ..., ok: bool = ..., detail: _Optional[str] = ...) -> None: ...

class Recover(_message.Message):
    __slots__ = ("cid",)
    CID_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    def __init__(self, cid: _Optional[bytes] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("cid",)
    CID_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    def __init__(self, cid: _Optional[bytes] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("code", "message", "pins")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        OK: _ClassVar[Result.Code]
        BAD_REQUEST: _ClassVar[Result.Code]
        FORBIDDEN: _ClassVar[Result.Code]
        NOT_FOUND: _ClassVar[Result.Code]
    OK: Result.Code
    BAD_REQUEST: Result.Code
    FORBIDDEN: Result.Code
    NOT_FOUND: Result.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PINS_FIELD_NUMBER: _ClassVar[int]
    code: Result.Code
    message: str
    pins: _containers.RepeatedCompositeFieldContainer[PinView]
    def __init__(self, code: _Optional[_Union[Result.Code, str]] = ..., message: _Optional[str] = ..., pins: _Optional[_Iterable[_Union[PinView, _Mapping]]] = ...) -> None: ...

class MemberStatus(_message.Message):
    __slots__ = ("member", "state", "since_ms", "error")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    member: str
    state: PinState
    since_ms: int
    error: str
    def __init__(self, member: _Optional[str] = ..., state: _Optional[_Union[PinState, str]] = ..., since_ms: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class PinView(_message.Message):
    __slots__ = ("cid", "name", "replication_min", "replication_max", "added_ms", "expire_at_ms", "allocations", "members")
    CID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_MIN_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_MAX_FIELD_NUMBER: _ClassVar[int]
    ADDED_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    cid: bytes
    name: str
    replication_min: int
    replication_max: int
    added_ms: int
    expire_at_ms: int
    allocations: _containers.RepeatedScalarFieldContainer[str]
    members: _containers.RepeatedCompositeFieldContainer[MemberStatus]
    def __init__(self, cid: _Optional[bytes] = ..., name: _Optional[str] = ..., replication_min: _Optional[int] = ..., replication_max: _Optional[int] = ..., added_ms: _Optional[int] = ..., expire_at_ms: _Optional[int] = ..., allocations: _Optional[_Iterable[str]] = ..., members: _Optional[_Iterable[_Union[MemberStatus, _Mapping]]] = ...) -> None: ...
