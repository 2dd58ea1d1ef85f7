"""The few protobuf wire-format primitives dag-pb and UnixFS need, with strict bounds.

dag-pb's spec fixes a canonical byte layout (field order, no unknown fields) that generic
protobuf runtimes neither produce nor check, so both codecs read and write the wire format here.
"""

from __future__ import annotations

from collections.abc import Iterator

from blockmesh.data import varint
from blockmesh.errors import DecodeError

WIRE_VARINT = 0
WIRE_LEN = 2


class ProtobufError(DecodeError):
    """Bytes that are not a well-formed protobuf message of the expected shape."""


def key(field: int, wire: int) -> bytes:
    return varint.encode((field << 3) | wire)


def len_field(field: int, payload: bytes | memoryview) -> bytes:
    return key(field, WIRE_LEN) + varint.encode(len(payload)) + bytes(payload)


def varint_field(field: int, value: int) -> bytes:
    return key(field, WIRE_VARINT) + varint.encode(value)


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield (field number, wire type, value) where value is an int or a memoryview slice."""
    view = memoryview(buf)
    pos = 0
    end = len(view)
    try:
        while pos < end:
            tag, pos = varint.decode(view, pos)
            field, wire = tag >> 3, tag & 7
            if field == 0:
                raise ProtobufError("protobuf field number 0")
            if wire == WIRE_VARINT:
                value, pos = varint.decode(view, pos)
                yield field, wire, value
            elif wire == WIRE_LEN:
                length, pos = varint.decode(view, pos)
                if pos + length > end:
                    raise ProtobufError("length-delimited field runs past the end")
                yield field, wire, view[pos : pos + length]
                pos += length
            else:
                raise ProtobufError(f"unsupported protobuf wire type {wire} (field {field})")
    except varint.VarintError as exc:
        raise ProtobufError(f"bad varint in protobuf: {exc}") from None
