"""Unsigned LEB128 varints as multiformats uses them (CIDs, multihash, CAR, Bitswap framing).

The multiformats spec caps a varint at 9 bytes (63 bits) and requires the minimal encoding, so
decoding rejects both overlong and non-minimal forms: two encodings of one number would let two
byte strings name the same CID.
"""

from __future__ import annotations

from blockmesh.errors import DecodeError

MAX_VARINT_BYTES = 9


class VarintError(DecodeError):
    """A varint is truncated, too long or not minimally encoded."""


def encode(value: int) -> bytes:
    if value < 0 or value >= 1 << 63:
        raise ValueError(f"varint out of range: {value}")
    return leb128(value)


def leb128(value: int) -> bytes:
    """The unsigned LEB128 bytes of a non-negative int, unbounded (callers bound it: 63 bits
    here, 64 for protobuf)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read one varint at `offset`; returns (value, offset just past it)."""
    value = 0
    shift = 0
    end = len(buf)
    for i in range(MAX_VARINT_BYTES):
        pos = offset + i
        if pos >= end:
            raise VarintError("truncated varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > 0:
                raise VarintError("varint is not minimally encoded")
            return value, pos + 1
        shift += 7
    raise VarintError(f"varint longer than {MAX_VARINT_BYTES} bytes")


def decode_exact(buf: bytes) -> int:
    """Decode a buffer that must hold exactly one varint."""
    value, end = decode(buf)
    if end != len(buf):
        raise VarintError("trailing bytes after varint")
    return value
