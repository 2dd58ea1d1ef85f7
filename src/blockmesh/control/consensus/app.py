"""The replicated application interface and the built-in key-value store.

KeyValueApp operations use a small binary form, documented here because clients of any
language must produce it byte for byte:

    SET:     0x01 | u16 key length (big endian) | key | value
    GET:     0x02 | u16 key length | key
    DELETE:  0x03 | u16 key length | key

Results:

    0x00 | value        OK (SET: empty; GET: the value; DELETE: empty)
    0x01                NOT_FOUND (GET or DELETE of a missing key)
    0x02 | reason       BAD_REQUEST (garbage operation; deterministic, so every replica agrees)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Protocol

from blockmesh.errors import DecodeError

OP_SET = 0x01
OP_GET = 0x02
OP_DELETE = 0x03

STATUS_OK = 0x00
STATUS_NOT_FOUND = 0x01
STATUS_BAD_REQUEST = 0x02

MAX_KEY_SIZE = 0xFFFF


class Application(Protocol):
    """A deterministic state machine: the same operations in the same order give the same results.

    The engine rebuilds an application after a restart or a state transfer by replaying committed
    blocks from the first one, so execute() is all it needs. `client_id` is the identity whose
    signature the engine verified on the request, so an application can tell who may do what.
    """

    def execute(self, operation: bytes, client_id: str) -> bytes: ...


@dataclass(frozen=True)
class KVOperation:
    op: int
    key: bytes
    value: bytes = b""


@dataclass(frozen=True)
class KVResult:
    status: int
    value: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


def encode_set(key: bytes, value: bytes) -> bytes:
    return _encode(OP_SET, key) + value


def encode_get(key: bytes) -> bytes:
    return _encode(OP_GET, key)


def encode_delete(key: bytes) -> bytes:
    return _encode(OP_DELETE, key)


def _encode(op: int, key: bytes) -> bytes:
    if len(key) > MAX_KEY_SIZE:
        raise ValueError(f"key longer than {MAX_KEY_SIZE} bytes")
    return struct.pack(">BH", op, len(key)) + key


def decode_operation(data: bytes) -> KVOperation:
    if len(data) < 3:
        raise DecodeError("kv operation shorter than its 3-byte header")
    op, key_len = struct.unpack_from(">BH", data)
    if op not in (OP_SET, OP_GET, OP_DELETE):
        raise DecodeError(f"unknown kv operation {op:#x}")
    end = 3 + key_len
    if len(data) < end:
        raise DecodeError("kv operation truncated inside its key")
    if op != OP_SET and len(data) != end:
        raise DecodeError("trailing bytes after a GET or DELETE key")
    return KVOperation(op, data[3:end], data[end:])


def decode_result(data: bytes) -> KVResult:
    if not data or data[0] not in (STATUS_OK, STATUS_NOT_FOUND, STATUS_BAD_REQUEST):
        raise DecodeError("kv result without a known status byte")
    return KVResult(data[0], data[1:])


def is_read_only(operation: bytes) -> bool:
    """True for an operation that cannot change the store (a well-formed GET): what a
    read-only client identity may submit."""
    try:
        return decode_operation(operation).op == OP_GET
    except DecodeError:
        return False


class KeyValueApp:
    """An in-memory byte map; the default application of a blockmesh PBFT cluster."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}

    def execute(self, operation: bytes, client_id: str = "") -> bytes:
        try:
            op = decode_operation(operation)
        except DecodeError as exc:
            return bytes([STATUS_BAD_REQUEST]) + str(exc).encode()
        if op.op == OP_SET:
            self._data[op.key] = op.value
            return bytes([STATUS_OK])
        if op.op == OP_GET:
            value = self._data.get(op.key)
            return bytes([STATUS_NOT_FOUND]) if value is None else bytes([STATUS_OK]) + value
        if self._data.pop(op.key, None) is None:
            return bytes([STATUS_NOT_FOUND])
        return bytes([STATUS_OK])

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def __len__(self) -> int:
        return len(self._data)

    def state_digest(self) -> bytes:
        """SHA-256 over the sorted items: equal on every replica that executed the same log."""
        h = hashlib.sha256()
        for key in sorted(self._data):
            value = self._data[key]
            h.update(struct.pack(">II", len(key), len(value)))
            h.update(key)
            h.update(value)
        return h.digest()
