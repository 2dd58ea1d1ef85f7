"""CAR archives: CARv1 written and read, CARv2 read (its inner CARv1 payload).

Import streams section by section and hash-verifies every block before it is handed on; every
length is bounded before anything is allocated, so a hostile file costs at most one block. A
CARv2 header's offsets are checked against each other and against the file's size when it has
one, and its padding is skipped (seek) or read in small pieces, never allocated in one piece.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from blockmesh.data import varint
from blockmesh.data.cid import CID, MAX_CID_SIZE
from blockmesh.data.dag import dagcbor
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.errors import DecodeError, HashMismatch, InvalidCID

MAX_HEADER_SIZE = 1024 * 1024
MAX_SECTION_SIZE = MAX_CID_SIZE + MAX_BLOCK_SIZE
CARV2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")
_CARV2_HEADER = struct.Struct("<16sQQQ")
_CARV2_DATA_START = len(CARV2_PRAGMA) + _CARV2_HEADER.size
_SKIP_CHUNK = 64 * 1024


class CARError(DecodeError):
    """A CAR file that is truncated, corrupt or of an unsupported version."""


def write_car(out: BinaryIO, roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> int:
    """Write a CARv1; returns the number of blocks written."""
    count = -1  # the header is the first piece
    for piece in car_pieces(roots, blocks):
        out.write(piece)
        count += 1
    return count


def car_pieces(roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> Iterator[bytes]:
    """A CARv1 as it is written: the header, then one piece per block; lets an async writer
    await between blocks instead of handing over a file object."""
    header = dagcbor.encode({"roots": roots, "version": 1})
    yield varint.encode(len(header)) + header
    for cid, data in blocks:
        raw = bytes(cid)
        yield varint.encode(len(raw) + len(data)) + raw + data


def _read_varint(stream: BinaryIO) -> int | None:
    raw = bytearray()
    while True:
        byte = stream.read(1)
        if not byte:
            if raw:
                raise CARError("truncated varint in CAR")
            return None
        raw += byte
        if byte[0] < 0x80:
            try:
                return varint.decode_exact(bytes(raw))
            except DecodeError as exc:
                raise CARError(f"bad varint in CAR: {exc}") from None
        if len(raw) >= varint.MAX_VARINT_BYTES:
            raise CARError("varint too long in CAR")


def _read_exact(stream: BinaryIO, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise CARError(f"truncated CAR: {what} needs {size} bytes, got {len(data)}")
    return data


def _read_v1_header(stream: BinaryIO) -> list[CID]:
    length = _read_varint(stream)
    if length is None:
        raise CARError("empty file is not a CAR")
    if length == 0 or length > MAX_HEADER_SIZE:
        raise CARError(f"CAR header length {length} out of bounds")
    raw = _read_exact(stream, length, "header")
    try:
        header = dagcbor.decode(raw)
    except DecodeError as exc:
        raise CARError(f"CAR header is not dag-cbor: {exc}") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise CARError("CAR header must be a map with version 1")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CARError("CAR header roots must be a list of CIDs")
    return roots


class CARReader:
    """Iterate over (CID, verified bytes) of a CARv1 or CARv2 stream; `roots` is read first."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._remaining: int | None = None
        start = stream.read(len(CARV2_PRAGMA))
        if start == CARV2_PRAGMA:
            _, offset, size, index = _CARV2_HEADER.unpack(_read_exact(stream, _CARV2_HEADER.size,
                                                                      "CARv2 header"))
            _check_v2_offsets(offset, size, index, _bytes_left(stream))
            _skip(stream, offset - _CARV2_DATA_START)
            self._remaining = size
            self.roots = _read_v1_header(_Counted(self))
        else:
            self.roots = _read_v1_header(_Prefixed(start, stream))

    def _read(self, size: int) -> bytes:
        if self._remaining is not None:
            size = min(size, self._remaining)
        data = self._stream.read(size)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        source = _Counted(self)
        while True:
            length = _read_varint(source)
            if length is None:
                if self._remaining:
                    raise CARError(f"truncated CARv2: its payload ends {self._remaining} bytes "
                                   "before the size its header gives")
                return
            if length == 0 or length > MAX_SECTION_SIZE:
                raise CARError(f"CAR section length {length} out of bounds")
            section = _read_exact(source, length, "section")
            try:
                cid, offset = CID.read(section, 0)
            except InvalidCID as exc:
                raise CARError(f"bad CID in CAR section: {exc}") from None
            data = section[offset:]
            try:
                cid.verify(data)
            except HashMismatch:
                raise HashMismatch(f"CAR block {cid} does not match its hash") from None
            yield cid, data


def _check_v2_offsets(offset: int, size: int, index: int, left: int | None) -> None:
    """Refuse a CARv2 header whose data offset, data size and index offset do not fit together,
    or do not fit in the file when its size is known (`left`: bytes after the header)."""
    if offset < _CARV2_DATA_START:
        raise CARError(f"CARv2 data offset {offset} points inside its header")
    if size == 0:
        raise CARError("CARv2 data size is 0: there is no CARv1 payload")
    end = offset + size
    if index and index < end:
        raise CARError(f"CARv2 index offset {index} overlaps the data ending at {end}")
    if left is not None:
        file_size = _CARV2_DATA_START + left
        if end > file_size:
            raise CARError(f"CARv2 data ends at {end}, past the end of the {file_size}-byte file")
        if index > file_size:
            raise CARError(f"CARv2 index offset {index} is past the end of the {file_size}-byte "
                           "file")
    elif end >= 1 << 63:
        raise CARError(f"CARv2 data offset {offset} and size {size} are out of range")


def _bytes_left(stream: BinaryIO) -> int | None:
    """How many bytes a seekable stream (a file) holds after its position; None for a pipe."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return end - here


def _skip(stream: BinaryIO, count: int) -> None:
    """Move past `count` bytes of padding without ever holding them all."""
    while count > 0:
        got = len(stream.read(min(count, _SKIP_CHUNK)))
        if got == 0:
            raise CARError(f"truncated CAR: CARv2 padding ends {count} bytes early")
        count -= got


class _Counted:
    """A stream view that stops at the end of a CARv2's inner payload."""

    def __init__(self, reader: CARReader) -> None:
        self._reader = reader

    def read(self, size: int) -> bytes:
        return self._reader._read(size)


class _Prefixed:
    """Give back bytes already consumed while sniffing for the CARv2 pragma."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int) -> bytes:
        if self._prefix:
            head, self._prefix = self._prefix[:size], self._prefix[size:]
            if len(head) < size:
                head += self._stream.read(size - len(head))
            return head
        return self._stream.read(size)


def import_car(stream: BinaryIO, put: Callable[[CID, bytes], None]) -> tuple[list[CID], int]:
    """Store every verified block; returns (roots, block count). Stops at the first bad block."""
    reader = CARReader(stream)
    count = 0
    for cid, data in reader:
        put(cid, data)
        count += 1
    return reader.roots, count
