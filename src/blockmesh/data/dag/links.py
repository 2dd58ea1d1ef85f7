"""The links out of any block we understand: what GC, pinning and CAR export walk."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagcbor, dagpb
from blockmesh.errors import UnsupportedError


def links(cid: CID, block: bytes) -> list[CID]:
    if cid.codec == Codec.RAW:
        return []
    if cid.codec == Codec.DAG_PB:
        return [link.cid for link in dagpb.decode(block).links]
    if cid.codec == Codec.DAG_CBOR:
        return dagcbor.links(dagcbor.decode(block))
    raise UnsupportedError(f"cannot follow links of codec {cid.codec_name}")


def walk(fetch: Callable[[CID], bytes], root: CID) -> Iterator[tuple[CID, bytes]]:
    """Every block reachable from `root`, depth-first, each multihash once."""
    seen: set[bytes] = set()
    stack = [root]
    while stack:
        cid = stack.pop()
        if cid.multihash in seen:
            continue
        seen.add(cid.multihash)
        block = fetch(cid)
        yield cid, block
        stack.extend(reversed(links(cid, block)))
