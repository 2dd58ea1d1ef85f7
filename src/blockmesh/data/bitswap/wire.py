"""Protobuf wire primitives for Bitswap messages.

The shared dag-pb reader is stricter than Bitswap may be: Go peers encode a negative int32 as a
ten-byte varint and newer peers may add fields of any wire type, all of which protobuf says a
reader must accept (skipping unknown fields). Lengths are still checked against the buffer.
"""

from __future__ import annotations

from collections.abc import Iterator

from blockmesh.data.bitswap.errors import MalformedMessage

VARINT = 0
FIXED64 = 1
LEN = 2
FIXED32 = 5

_MAX_PROTOBUF_VARINT = 10
_U64 = 1 << 64


def encode_varint(value: int) -> bytes:
    """Protobuf varint of a uint64 (a negative int32 arrives already as two's complement)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = 0
    end = len(buf)
    for i in range(_MAX_PROTOBUF_VARINT):
        if pos >= end:
            raise MalformedMessage("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            if value >= _U64:
                raise MalformedMessage("varint exceeds 64 bits")
            return value, pos
    raise MalformedMessage("varint longer than 10 bytes")


def to_int32(value: int) -> int:
    """Interpret a decoded varint as protobuf int32 (sign-extended to 64 bits on the wire)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def from_int32(value: int) -> int:
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(f"int32 out of range: {value}")
    return value + _U64 if value < 0 else value


def to_bool(value: int, what: str) -> bool:
    if value > 1:
        raise MalformedMessage(f"{what}: bool field holds {value}")
    return value == 1


def key(field: int, wire: int) -> bytes:
    return encode_varint((field << 3) | wire)


def len_field(field: int, payload: bytes) -> bytes:
    return key(field, LEN) + encode_varint(len(payload)) + payload


def varint_field(field: int, value: int) -> bytes:
    return key(field, VARINT) + encode_varint(value)


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field, wire type, int or memoryview); unknown fixed-width values come back as ints."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    while pos < end:
        tag, pos = read_varint(view, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise MalformedMessage("protobuf field number 0")
        if wire == VARINT:
            value, pos = read_varint(view, pos)
            yield field, wire, value
        elif wire == LEN:
            length, pos = read_varint(view, pos)
            if length > end - pos:
                raise MalformedMessage("length-delimited field runs past the end")
            yield field, wire, view[pos : pos + length]
            pos += length
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if width > end - pos:
                raise MalformedMessage("fixed-width field runs past the end")
            yield field, wire, int.from_bytes(view[pos : pos + width], "little")
            pos += width
        else:
            raise MalformedMessage(f"unsupported protobuf wire type {wire} (field {field})")


def as_view(wire_type: int, value: int | memoryview, what: str) -> memoryview:
    """The value of a length-delimited field, or MalformedMessage if the peer used another type."""
    if wire_type != LEN or not isinstance(value, memoryview):
        raise MalformedMessage(f"{what} has wire type {wire_type}, expected length-delimited")
    return value


def as_int(wire_type: int, value: int | memoryview, what: str) -> int:
    if wire_type != VARINT or not isinstance(value, int):
        raise MalformedMessage(f"{what} has wire type {wire_type}, expected varint")
    return value
