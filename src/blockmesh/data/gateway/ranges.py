"""HTTP Range requests (RFC 9110 section 14) over an entity of known size: parsing and the
multipart/byteranges framing, both pure so the 206/416 behaviour is tested without a socket.

Like Go's net/http (which kubo's gateway answers through), a malformed Range is a 416, ranges
whose total exceeds the entity are ignored (the whole entity is sent, 200: a cheap defence
against many overlapping ranges), and more than MAX_RANGES ranges are refused.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from blockmesh.data.gateway.errors import RangeNotSatisfiable

MAX_RANGES = 32


@dataclass(frozen=True)
class ByteRange:
    start: int
    stop: int  # exclusive

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{size}"


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """The satisfiable ranges of `header` for an entity of `size` bytes, in request order;
    None means serve the whole entity (no header, or ranges that add up past the size)."""
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        raise RangeNotSatisfiable(f"unsupported Range {header!r} (only bytes=…)", size)
    items = [item.strip() for item in spec.split(",")]
    if len(items) > MAX_RANGES:
        raise RangeNotSatisfiable(f"more than {MAX_RANGES} ranges", size)
    out: list[ByteRange] = []
    for item in items:
        if not item:
            continue
        first, dash, last = item.partition("-")
        first, last = first.strip(), last.strip()
        if not dash or not (first or last) or not all(p.isdigit() for p in (first, last) if p):
            raise RangeNotSatisfiable(f"malformed range {item!r}", size)
        if not first:  # suffix: the last N bytes
            count = int(last)
            if count == 0:
                continue
            out.append(ByteRange(max(0, size - count), size))
            continue
        start = int(first)
        if start >= size:
            continue  # unsatisfiable on its own; others may still be
        stop = size if not last else min(size, int(last) + 1)
        if stop <= start:
            raise RangeNotSatisfiable(f"range {item!r} ends before it starts", size)
        out.append(ByteRange(start, stop))
    if not out:
        raise RangeNotSatisfiable(f"no range of {header!r} lies within the {size} bytes", size)
    if sum(r.length for r in out) > size:
        return None
    return out


@dataclass(frozen=True)
class Multipart:
    """The framing of a multipart/byteranges body: each part's head, the closing delimiter, and
    the exact total length (known before any byte of content is read)."""

    boundary: str
    heads: tuple[bytes, ...]
    tail: bytes
    length: int

    @property
    def content_type(self) -> str:
        return f"multipart/byteranges; boundary={self.boundary}"


def multipart(ranges: list[ByteRange], size: int, part_type: str,
              boundary: str | None = None) -> Multipart:
    boundary = boundary or secrets.token_hex(16)
    heads = []
    for index, r in enumerate(ranges):
        lead = b"" if index == 0 else b"\r\n"
        heads.append(lead + (f"--{boundary}\r\nContent-Type: {part_type}\r\n"
                             f"Content-Range: {r.content_range(size)}\r\n\r\n").encode())
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = sum(len(h) for h in heads) + sum(r.length for r in ranges) + len(tail)
    return Multipart(boundary, tuple(heads), tail, length)

