"""The UnixFS Data message carried in a dag-pb node's Data field (UnixFS spec, v1).

Only the fields kubo writes by default are produced; all defined fields are read, and anything
undefined or out of bounds is refused with UnixFSError.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from blockmesh.data import varint
from blockmesh.data.pbwire import LEN, VARINT, ProtobufError, fields, key

MAX_BLOCKSIZES = 8192


class UnixFSError(ProtobufError):
    """A dag-pb node whose Data is not a UnixFS message we can use."""


class DataType(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: DataType
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = ()
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None


_TYPE_KEY = key(1, VARINT)
_DATA_KEY = key(2, LEN)
_FILESIZE_KEY = key(3, VARINT)
_BLOCKSIZE_KEY = key(4, VARINT)


def encode_header(kind: DataType, data_len: int | None, filesize: int | None,
                  blocksizes: list[int] | tuple[int, ...] = ()) -> tuple[bytes, bytes]:
    """The bytes before and after the (possibly large) data payload, so callers never copy it."""
    head = _TYPE_KEY + varint.encode(kind)
    if data_len is not None:
        head += _DATA_KEY + varint.encode(data_len)
    tail = b""
    if filesize is not None:
        tail += _FILESIZE_KEY + varint.encode(filesize)
    for size in blocksizes:
        tail += _BLOCKSIZE_KEY + varint.encode(size)
    return head, tail


def encode(value: UnixFSData) -> bytes:
    head, tail = encode_header(value.type, None if value.data is None else len(value.data),
                               value.filesize, value.blocksizes)
    return head + (value.data or b"") + tail


def decode(buf: bytes | memoryview) -> UnixFSData:
    kind: DataType | None = None
    data: bytes | None = None
    filesize = hash_type = fanout = mode = None
    blocksizes: list[int] = []
    for number, wire, value in fields(buf):
        if number == 1 and wire == VARINT:
            try:
                kind = DataType(value)
            except ValueError:
                raise UnixFSError(f"unknown UnixFS type {value}") from None
        elif number == 2 and wire == LEN:
            data = bytes(value)  # type: ignore[arg-type]
        elif number == 3 and wire == VARINT:
            filesize = value
        elif number == 4 and wire == VARINT:
            blocksizes.append(value)  # type: ignore[arg-type]
            if len(blocksizes) > MAX_BLOCKSIZES:
                raise UnixFSError(f"more than {MAX_BLOCKSIZES} blocksizes")
        elif number == 4 and wire == LEN:  # packed encoding, which readers must accept
            blocksizes.extend(_packed(value))  # type: ignore[arg-type]
        elif number == 5 and wire == VARINT:
            hash_type = value
        elif number == 6 and wire == VARINT:
            fanout = value
        elif number == 7 and wire == VARINT:
            mode = value
        elif number == 8 and wire == LEN:
            pass  # mtime: accepted, not used by anything we serve
        else:
            raise UnixFSError(f"unexpected field {number} (wire type {wire}) in UnixFS data")
    if kind is None:
        raise UnixFSError("UnixFS data without a Type")
    return UnixFSData(kind, data, filesize, tuple(blocksizes), hash_type, fanout, mode)  # type: ignore[arg-type]


def _packed(view: memoryview) -> list[int]:
    out: list[int] = []
    pos = 0
    while pos < len(view):
        value, pos = varint.decode(view, pos)
        out.append(value)
        if len(out) > MAX_BLOCKSIZES:
            raise UnixFSError(f"more than {MAX_BLOCKSIZES} blocksizes")
    return out
