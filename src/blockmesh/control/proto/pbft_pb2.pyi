from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_TYPE_UNSPECIFIED: _ClassVar[MessageType]
    REQUEST: _ClassVar[MessageType]
    PRE_PREPARE: _ClassVar[MessageType]
    PREPARE: _ClassVar[MessageType]
    COMMIT: _ClassVar[MessageType]
    REPLY: _ClassVar[MessageType]
    CHECKPOINT: _ClassVar[MessageType]
    VIEW_CHANGE: _ClassVar[MessageType]
    NEW_VIEW: _ClassVar[MessageType]
MESSAGE_TYPE_UNSPECIFIED: MessageType
REQUEST: MessageType
PRE_PREPARE: MessageType
PREPARE: MessageType
COMMIT: MessageType
REPLY: MessageType
CHECKPOINT: MessageType
VIEW_CHANGE: MessageType
NEW_VIEW: MessageType

class PBFTMessage(_message.Message):
    __slots__ = ("type", "view", "sequence", "digest", "node_id", "signature", "payload")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    type: MessageType
    view: int
    sequence: int
    digest: bytes
    node_id: str
    signature: bytes
    payload: bytes
    def __init__(self, type: _Optional[_Union[MessageType, str]] = ..., view: _Optional[int] = ..., sequence: _Optional[int] = ..., digest: _Optional[bytes] = ..., node_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., payload: _Optional[bytes] = ...) -> None: ...

class Request(_message.Message):
    __slots__ = ("client_id", "timestamp", "operation", "client_signature", "authenticator")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATOR_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    timestamp: int
    operation: bytes
    client_signature: bytes
    authenticator: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, client_id: _Optional[str] = ..., timestamp: _Optional[int] = ..., operation: _Optional[bytes] = ..., client_signature: _Optional[bytes] = ..., authenticator: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PrePrepare(_message.Message):
    __slots__ = ("requests", "view")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[Request]
    view: int
    def __init__(self, requests: _Optional[_Iterable[_Union[Request, _Mapping]]] = ..., view: _Optional[int] = ...) -> None: ...

class Reply(_message.Message):
    __slots__ = ("client_id", "timestamp", "result", "view", "batch_digests")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    BATCH_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    timestamp: int
    result: bytes
    view: int
    batch_digests: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, client_id: _Optional[str] = ..., timestamp: _Optional[int] = ..., result: _Optional[bytes] = ..., view: _Optional[int] = ..., batch_digests: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("height", "state_digest")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    height: int
    state_digest: bytes
    def __init__(self, height: _Optional[int] = ..., state_digest: _Optional[bytes] = ...) -> None: ...

class PreparedCertificate(_message.Message):
    __slots__ = ("pre_prepare", "prepares")
    PRE_PREPARE_FIELD_NUMBER: _ClassVar[int]
    PREPARES_FIELD_NUMBER: _ClassVar[int]
    pre_prepare: PBFTMessage
    prepares: _containers.RepeatedCompositeFieldContainer[PBFTMessage]
    def __init__(self, pre_prepare: _Optional[_Union[PBFTMessage, _Mapping]] = ..., prepares: _Optional[_Iterable[_Union[PBFTMessage, _Mapping]]] = ...) -> None: ...

class ViewChange(_message.Message):
    __slots__ = ("stable_sequence", "checkpoint_proof", "prepared")
    STABLE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_PROOF_FIELD_NUMBER: _ClassVar[int]
    PREPARED_FIELD_NUMBER: _ClassVar[int]
    stable_sequence: int
    checkpoint_proof: _containers.RepeatedCompositeFieldContainer[PBFTMessage]
    prepared: _containers.RepeatedCompositeFieldContainer[PreparedCertificate]
    def __init__(self, stable_sequence: _Optional[int] = ..., checkpoint_proof: _Optional[_Iterable[_Union[PBFTMessage, _Mapping]]] = ..., prepared: _Optional[_Iterable[_Union[PreparedCertificate, _Mapping]]] = ...) -> None: ...

class NewView(_message.Message):
    __slots__ = ("view_changes", "pre_prepares")
    VIEW_CHANGES_FIELD_NUMBER: _ClassVar[int]
    PRE_PREPARES_FIELD_NUMBER: _ClassVar[int]
    view_changes: _containers.RepeatedCompositeFieldContainer[PBFTMessage]
    pre_prepares: _containers.RepeatedCompositeFieldContainer[PBFTMessage]
    def __init__(self, view_changes: _Optional[_Iterable[_Union[PBFTMessage, _Mapping]]] = ..., pre_prepares: _Optional[_Iterable[_Union[PBFTMessage, _Mapping]]] = ...) -> None: ...

class Block(_message.Message):
    __slots__ = ("height", "prev_hash", "view", "sequence", "requests", "results", "hash")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    height: int
    prev_hash: bytes
    view: int
    sequence: int
    requests: _containers.RepeatedCompositeFieldContainer[Request]
    results: _containers.RepeatedScalarFieldContainer[bytes]
    hash: bytes
    def __init__(self, height: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., view: _Optional[int] = ..., sequence: _Optional[int] = ..., requests: _Optional[_Iterable[_Union[Request, _Mapping]]] = ..., results: _Optional[_Iterable[bytes]] = ..., hash: _Optional[bytes] = ...) -> None: ...

class CheckpointCertificate(_message.Message):
    __slots__ = ("sequence", "state_digest", "proof")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    state_digest: bytes
    proof: _containers.RepeatedCompositeFieldContainer[PBFTMessage]
    def __init__(self, sequence: _Optional[int] = ..., state_digest: _Optional[bytes] = ..., proof: _Optional[_Iterable[_Union[PBFTMessage, _Mapping]]] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("accepted", "error")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    def __init__(self, accepted: bool = ..., error: _Optional[str] = ...) -> None: ...

class BroadcastRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: PBFTMessage
    def __init__(self, message: _Optional[_Union[PBFTMessage, _Mapping]] = ...) -> None: ...

class BroadcastResponse(_message.Message):
    __slots__ = ("delivered", "errors")
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    delivered: int
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, delivered: _Optional[int] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class SendRequest(_message.Message):
    __slots__ = ("target", "message")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    target: str
    message: PBFTMessage
    def __init__(self, target: _Optional[str] = ..., message: _Optional[_Union[PBFTMessage, _Mapping]] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("accepted", "error")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    def __init__(self, accepted: bool = ..., error: _Optional[str] = ...) -> None: ...

class SyncStateRequest(_message.Message):
    __slots__ = ("node_id", "from_height", "max_blocks")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    from_height: int
    max_blocks: int
    def __init__(self, node_id: _Optional[str] = ..., from_height: _Optional[int] = ..., max_blocks: _Optional[int] = ...) -> None: ...

class SyncStateResponse(_message.Message):
    __slots__ = ("blocks", "checkpoints", "height", "more")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[Block]
    checkpoints: _containers.RepeatedCompositeFieldContainer[CheckpointCertificate]
    height: int
    more: bool
    def __init__(self, blocks: _Optional[_Iterable[_Union[Block, _Mapping]]] = ..., checkpoints: _Optional[_Iterable[_Union[CheckpointCertificate, _Mapping]]] = ..., height: _Optional[int] = ..., more: bool = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("sequence",)
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    def __init__(self, sequence: _Optional[int] = ...) -> None: ...

class GetCheckpointResponse(_message.Message):
    __slots__ = ("found", "checkpoint")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    found: bool
    checkpoint: CheckpointCertificate
    def __init__(self, found: bool = ..., checkpoint: _Optional[_Union[CheckpointCertificate, _Mapping]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("node_id", "view", "primary", "height", "head_hash", "stable_checkpoint", "peers", "view_changing")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    STABLE_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    VIEW_CHANGING_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    view: int
    primary: str
    height: int
    head_hash: bytes
    stable_checkpoint: int
    peers: _containers.RepeatedScalarFieldContainer[str]
    view_changing: bool
    def __init__(self, node_id: _Optional[str] = ..., view: _Optional[int] = ..., primary: _Optional[str] = ..., height: _Optional[int] = ..., head_hash: _Optional[bytes] = ..., stable_checkpoint: _Optional[int] = ..., peers: _Optional[_Iterable[str]] = ..., view_changing: bool = ...) -> None: ...

class SubmitRequestResponse(_message.Message):
    __slots__ = ("accepted", "error", "reply", "node_id", "signature", "sequence")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    error: str
    reply: Reply
    node_id: str
    signature: bytes
    sequence: int
    def __init__(self, accepted: bool = ..., error: _Optional[str] = ..., reply: _Optional[_Union[Reply, _Mapping]] = ..., node_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., sequence: _Optional[int] = ...) -> None: ...

class SubmitCall(_message.Message):
    __slots__ = ("call_id", "request")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    request: PBFTMessage
    def __init__(self, call_id: _Optional[int] = ..., request: _Optional[_Union[PBFTMessage, _Mapping]] = ...) -> None: ...

class SubmitBatch(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[SubmitCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[SubmitCall, _Mapping]]] = ...) -> None: ...

class SubmitAnswer(_message.Message):
    __slots__ = ("call_id", "response")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    response: SubmitRequestResponse
    def __init__(self, call_id: _Optional[int] = ..., response: _Optional[_Union[SubmitRequestResponse, _Mapping]] = ...) -> None: ...

class SubmitAnswers(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[SubmitAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[SubmitAnswer, _Mapping]]] = ...) -> None: ...
