"""Length-prefixed frames of the TCP transport, encoded and decoded without I/O.

A frame is `length:u32 | kind:u8 | call_id:u32 | body`, big-endian, where `length` counts
everything after itself. `call_id` pairs a request frame with its answer (0 for one-way frames).
The decoder refuses a frame whose announced length exceeds the limit as soon as the 4 length
bytes arrive, before buffering any of the body, so a peer cannot make us allocate 4 GB.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from blockmesh.control.transport.errors import FrameTooLarge
from blockmesh.errors import DecodeError

_HEADER = struct.Struct(">IBI")
HEADER_SIZE = _HEADER.size
_LENGTH_SIZE = 4
_MIN_LENGTH = HEADER_SIZE - _LENGTH_SIZE


class Kind(IntEnum):
    HELLO = 1  # handshake leg 1 (replica) — body: PBFTMessage carrier, see tcp.py
    REPLY = 2  # handshake leg 2
    PROOF = 3  # handshake leg 3
    ACK = 4  # handshake leg 4 — body empty
    CLIENT_HELLO = 5  # a client that submits requests; not a mesh member — body empty
    MESSAGE = 6  # body: PBFTMessage (consensus traffic)
    ERROR = 7  # body: UTF-8 reason; answers a call, or explains why a connection closes
    SUBMIT = 8  # body: PBFTMessage (REQUEST)
    SUBMIT_RESULT = 9  # body: SubmitRequestResponse
    SYNC_STATE = 10  # body: SyncStateRequest
    SYNC_STATE_RESULT = 11  # body: SyncStateResponse
    GET_CHECKPOINT = 12  # body: GetCheckpointRequest
    GET_CHECKPOINT_RESULT = 13  # body: GetCheckpointResponse
    GET_STATUS = 14  # body: GetStatusRequest
    GET_STATUS_RESULT = 15  # body: GetStatusResponse


_KINDS = frozenset(int(k) for k in Kind)


class Frame(NamedTuple):
    kind: int
    call_id: int
    body: bytes


def encode(kind: int, call_id: int, body: bytes, max_size: int) -> bytes:
    if len(body) > max_size:
        raise FrameTooLarge(f"frame body of {len(body)} bytes exceeds {max_size}")
    return _HEADER.pack(len(body) + _MIN_LENGTH, kind, call_id) + body


class FrameDecoder:
    """Turns a byte stream into frames; raises DecodeError on anything malformed.

    After an error the decoder is unusable: a stream that lost framing cannot be resynchronised,
    so the connection must be closed.
    """

    def __init__(self, max_body_size: int) -> None:
        self._max_length = max_body_size + _MIN_LENGTH
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        if self._pos and self._pos == len(buf):
            buf.clear()
            self._pos = 0
        buf += data
        frames: list[Frame] = []
        pos = self._pos
        end = len(buf)
        while end - pos >= _LENGTH_SIZE:
            (length,) = struct.unpack_from(">I", buf, pos)
            if length > self._max_length:
                raise FrameTooLarge(
                    f"peer announced a {length}-byte frame, limit {self._max_length}"
                )
            if length < _MIN_LENGTH:
                raise DecodeError(f"frame length {length} is shorter than its header")
            if end - pos < _LENGTH_SIZE + length:
                break
            _, kind, call_id = _HEADER.unpack_from(buf, pos)
            if kind not in _KINDS:
                raise DecodeError(f"unknown frame kind {kind}")
            start = pos + HEADER_SIZE
            pos += _LENGTH_SIZE + length
            frames.append(Frame(kind, call_id, bytes(buf[start:pos])))
        if pos > 1 << 20 and pos * 2 > end:
            del buf[:pos]
            pos = 0
        self._pos = pos
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos
