"""The protobuf wire format, written and read in one place for dag-pb, UnixFS and Bitswap.

Writing is the same for all of them. Reading has two policies. dag-pb's spec fixes a canonical
byte layout (minimal varints, only varint and length-delimited fields) that generic protobuf
runtimes neither produce nor check, so its codecs read `canonical`. Bitswap must accept what
any protobuf writer produces: Go peers encode a negative int32 as a ten-byte varint and newer
peers may add fields of any wire type, which a reader skips. Lengths are checked against the
buffer either way.
"""

from __future__ import annotations

from collections.abc import Iterator

from blockmesh.data import varint
from blockmesh.errors import DecodeError

VARINT = 0
FIXED64 = 1
LEN = 2
FIXED32 = 5

_MAX_PROTOBUF_VARINT = 10
_U64 = 1 << 64


class ProtobufError(DecodeError):
    """Bytes that are not a well-formed protobuf message of the expected shape."""


def encode_varint(value: int) -> bytes:
    """Protobuf varint of a uint64 (a negative int32 arrives already as two's complement)."""
    if not 0 <= value < _U64:
        raise ValueError(f"protobuf varint out of range: {value}")
    return varint.leb128(value)


def key(field: int, wire: int) -> bytes:
    return encode_varint((field << 3) | wire)


def len_field(field: int, payload: bytes | memoryview) -> bytes:
    return key(field, LEN) + encode_varint(len(payload)) + bytes(payload)


def varint_field(field: int, value: int) -> bytes:
    return key(field, VARINT) + encode_varint(value)


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Any protobuf varint up to 64 bits (ten bytes), minimal or not."""
    value = 0
    end = len(buf)
    for i in range(_MAX_PROTOBUF_VARINT):
        if pos >= end:
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if value >= _U64:
                raise ProtobufError("varint exceeds 64 bits")
            return value, pos
    raise ProtobufError("varint longer than 10 bytes")


def fields(buf: bytes | memoryview, *, canonical: bool = True,
           ) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value): an int, or a memoryview slice for LEN fields.

    `canonical` (dag-pb) allows minimal varints and the varint and LEN wire types only; the
    lenient policy (Bitswap) takes any varint and returns fixed-width values as ints."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    read = _read_canonical if canonical else read_varint
    while pos < end:
        tag, pos = read(view, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ProtobufError("protobuf field number 0")
        if wire == VARINT:
            value, pos = read(view, pos)
            yield field, wire, value
        elif wire == LEN:
            length, pos = read(view, pos)
            if length > end - pos:
                raise ProtobufError("length-delimited field runs past the end")
            yield field, wire, view[pos : pos + length]
            pos += length
        elif wire in (FIXED64, FIXED32) and not canonical:
            width = 8 if wire == FIXED64 else 4
            if width > end - pos:
                raise ProtobufError("fixed-width field runs past the end")
            yield field, wire, int.from_bytes(view[pos : pos + width], "little")
            pos += width
        else:
            raise ProtobufError(f"unsupported protobuf wire type {wire} (field {field})")


def _read_canonical(buf: memoryview, pos: int) -> tuple[int, int]:
    try:
        return varint.decode(buf, pos)
    except varint.VarintError as exc:
        raise ProtobufError(f"bad varint in protobuf: {exc}") from None
