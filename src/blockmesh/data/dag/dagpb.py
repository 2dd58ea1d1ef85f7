"""dag-pb (codec 0x70), written against the IPLD dag-pb spec.

The spec makes the encoding canonical: every link (field 2) comes before Data (field 1), a link's
Hash, Name and Tsize appear in that order, and nothing else may appear. Decoding enforces the same
rules, so a block has one meaning and re-encoding a decoded node gives back the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blockmesh.data import varint
from blockmesh.data.cid import CID
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.pbwire import LEN, VARINT, ProtobufError, fields, key
from blockmesh.errors import InvalidCID

_LINK_KEY = key(2, LEN)
_DATA_KEY = key(1, LEN)
_HASH_KEY = key(1, LEN)
_NAME_KEY = key(2, LEN)
_TSIZE_KEY = key(3, VARINT)


class DagPBError(ProtobufError):
    """A block is not valid dag-pb."""


@dataclass(frozen=True, slots=True)
class Link:
    cid: CID
    name: str | None = ""
    tsize: int | None = None


@dataclass(frozen=True, slots=True)
class Node:
    links: tuple[Link, ...] = field(default_factory=tuple)
    data: bytes | None = None


def encode_link(link: Link) -> bytes:
    raw = bytes(link.cid)
    body = _HASH_KEY + varint.encode(len(raw)) + raw
    if link.name is not None:
        name = link.name.encode()
        body += _NAME_KEY + varint.encode(len(name)) + name
    if link.tsize is not None:
        body += _TSIZE_KEY + varint.encode(link.tsize)
    return _LINK_KEY + varint.encode(len(body)) + body


def encode(node: Node) -> bytes:
    parts = [encode_link(link) for link in sort_links(node.links)]
    if node.data is not None:
        parts.append(_DATA_KEY + varint.encode(len(node.data)))
        parts.append(node.data)
    return b"".join(parts)


def encode_parts(links: list[Link], data: bytes) -> list[bytes]:
    """Encoding as a list of pieces, so a large Data field is never copied into a new buffer."""
    parts = [encode_link(link) for link in links]
    parts.append(_DATA_KEY + varint.encode(len(data)))
    parts.append(data)
    return parts


def sort_links(links: tuple[Link, ...] | list[Link]) -> list[Link]:
    """Links sorted by name bytes, stable for equal names, as the spec requires."""
    return sorted(links, key=lambda link: (link.name or "").encode())


def decode(block: bytes | memoryview) -> Node:
    if len(block) > MAX_BLOCK_SIZE:
        raise DagPBError(f"dag-pb node of {len(block)} bytes exceeds {MAX_BLOCK_SIZE}")
    links: list[Link] = []
    data: bytes | None = None
    for number, wire, value in fields(block):
        if data is not None:
            raise DagPBError("dag-pb field after Data")
        if number == 2 and wire == LEN:
            assert isinstance(value, memoryview)
            links.append(_decode_link(value))
        elif number == 1 and wire == LEN:
            assert isinstance(value, memoryview)
            data = bytes(value)
        else:
            raise DagPBError(f"unexpected field {number} (wire type {wire}) in dag-pb node")
    return Node(tuple(links), data)


def _decode_link(buf: memoryview) -> Link:
    cid: CID | None = None
    name: str | None = None
    tsize: int | None = None
    last = 0
    for number, wire, value in fields(buf):
        if number <= last:
            raise DagPBError("dag-pb link fields out of order or repeated")
        last = number
        if number == 1 and wire == LEN:
            assert isinstance(value, memoryview)
            try:
                cid = CID.decode(bytes(value))
            except InvalidCID as exc:
                raise DagPBError(f"dag-pb link has an invalid CID: {exc}") from None
        elif number == 2 and wire == LEN:
            assert isinstance(value, memoryview)
            try:
                name = bytes(value).decode()
            except UnicodeDecodeError:
                raise DagPBError("dag-pb link name is not UTF-8") from None
        elif number == 3 and wire == VARINT:
            assert isinstance(value, int)
            tsize = value
        else:
            raise DagPBError(f"unexpected field {number} (wire type {wire}) in dag-pb link")
    if cid is None:
        raise DagPBError("dag-pb link without Hash")
    return Link(cid, name, tsize)
