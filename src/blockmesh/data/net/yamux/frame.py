"""Yamux frame headers (hashicorp/yamux spec.md): 12 bytes, big-endian, then a DATA payload.

    version (1) | type (1) | flags (2) | stream id (4) | length (4)

`length` is the payload size for DATA, the window increment for WINDOW_UPDATE, the opaque
nonce for PING and the error code for GO_AWAY; only DATA frames carry a payload. Version 0 is
the only one there is: anything else, or an unknown type, is a protocol error that ends the
connection (go-yamux does the same).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from blockmesh.data.net.errors import ProtocolViolation

VERSION = 0

TYPE_DATA = 0
TYPE_WINDOW_UPDATE = 1
TYPE_PING = 2
TYPE_GO_AWAY = 3

FLAG_SYN = 0x1
FLAG_ACK = 0x2
FLAG_FIN = 0x4
FLAG_RST = 0x8

GO_AWAY_NORMAL = 0
GO_AWAY_PROTOCOL_ERROR = 1
GO_AWAY_INTERNAL_ERROR = 2

HEADER_SIZE = 12
_HEADER = struct.Struct(">BBHII")
_MAX_U32 = 0xFFFFFFFF


class YamuxProtocolError(ProtocolViolation):
    """The peer broke the Yamux protocol (bad header, window overrun, stream id misuse); the
    connection is closed with GO_AWAY(protocol error)."""


class Header(NamedTuple):
    type: int
    flags: int
    stream_id: int
    length: int


def encode_header(type_: int, flags: int, stream_id: int, length: int) -> bytes:
    """One frame header; `length` as the spec defines it for `type_`."""
    if not 0 <= length <= _MAX_U32 or not 0 <= stream_id <= _MAX_U32:
        raise ValueError(f"stream id {stream_id} and length {length} must fit in 32 bits")
    return _HEADER.pack(VERSION, type_, flags, stream_id, length)


def decode_header(data: bytes | bytearray | memoryview, offset: int = 0) -> Header:
    """The header at `data[offset:offset + 12]` (the caller has checked there are 12 bytes)."""
    version, type_, flags, stream_id, length = _HEADER.unpack_from(data, offset)
    if version != VERSION:
        raise YamuxProtocolError(f"yamux version {version} (only {VERSION} exists)")
    if type_ > TYPE_GO_AWAY:
        raise YamuxProtocolError(f"unknown yamux frame type {type_}")
    if type_ in (TYPE_GO_AWAY, TYPE_PING) and stream_id != 0:
        raise YamuxProtocolError(f"yamux {'PING' if type_ == TYPE_PING else 'GO_AWAY'} "
                                 f"frame on stream {stream_id} (must be 0)")
    if type_ in (TYPE_DATA, TYPE_WINDOW_UPDATE) and stream_id == 0:
        raise YamuxProtocolError("yamux stream frame on stream id 0")
    return Header(type_, flags, stream_id, length)
