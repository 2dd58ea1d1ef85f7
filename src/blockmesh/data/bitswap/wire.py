"""What Bitswap messages need on top of the shared protobuf wire format (data/pbwire.py):
its lenient reading policy with Bitswap's error type, int32 and bool fields, type checks."""

from __future__ import annotations

from collections.abc import Iterator

from blockmesh.data import pbwire
from blockmesh.data.bitswap.errors import MalformedMessage
from blockmesh.data.pbwire import LEN, VARINT


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Protobuf fields read leniently (pbwire), failures as MalformedMessage."""
    try:
        yield from pbwire.fields(buf, canonical=False)
    except pbwire.ProtobufError as exc:
        raise MalformedMessage(str(exc)) from None


def to_int32(value: int) -> int:
    """Interpret a decoded varint as protobuf int32 (sign-extended to 64 bits on the wire)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def from_int32(value: int) -> int:
    if not -(1 << 31) <= value < 1 << 31:
        raise ValueError(f"int32 out of range: {value}")
    return value + (1 << 64) if value < 0 else value


def to_bool(value: int, what: str) -> bool:
    if value > 1:
        raise MalformedMessage(f"{what}: bool field holds {value}")
    return value == 1


def as_view(wire_type: int, value: int | memoryview, what: str) -> memoryview:
    """The value of a length-delimited field, or MalformedMessage if the peer used another type."""
    if wire_type != LEN or not isinstance(value, memoryview):
        raise MalformedMessage(f"{what} has wire type {wire_type}, expected length-delimited")
    return value


def as_int(wire_type: int, value: int | memoryview, what: str) -> int:
    if wire_type != VARINT or not isinstance(value, int):
        raise MalformedMessage(f"{what} has wire type {wire_type}, expected varint")
    return value
