"""HAMT-sharded UnixFS directories, as kubo builds them past its sharding threshold.

A directory whose estimated size (every link's name bytes plus CID bytes) reaches 256 KiB is
stored as a hash array mapped trie: each node has 256 buckets indexed by successive bytes of the
murmur3-x64-64 hash of the entry name. A bucket holds one entry (link name = two uppercase hex
digits of the bucket + the entry name) or a child shard (link name = the two hex digits alone).
For a given set of entries the trie is unique, so the CID does not depend on insertion order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mmh3

from blockmesh.data import varint
from blockmesh.data.dag.dagpb import Link
from blockmesh.data.dag.unixfs import DataType, encode_header
from blockmesh.data.pbwire import key

FANOUT = 256
HASH_MURMUR3_X64_64 = 0x22
SHARDING_THRESHOLD = 256 * 1024
MAX_DEPTH = 8  # a 64-bit hash gives 8 bytes, one per level


def name_hash(name: str) -> bytes:
    """The first 64 bits of murmur3 x64 128, big-endian: what go-ipfs-hamt indexes with."""
    h1, _ = mmh3.hash64(name.encode(), signed=False)
    return h1.to_bytes(8, "big")


def needs_sharding(links: list[Link]) -> bool:
    estimate = sum(len((link.name or "").encode()) + len(bytes(link.cid)) for link in links)
    return estimate >= SHARDING_THRESHOLD


@dataclass
class _Shard:
    children: dict[int, Link | _Shard] = field(default_factory=dict)

    def insert(self, link: Link, digest: bytes, depth: int) -> None:
        if depth >= MAX_DEPTH:
            raise ValueError(f"hash collision on every level for {link.name!r}")
        index = digest[depth]
        current = self.children.get(index)
        if current is None:
            self.children[index] = link
        elif isinstance(current, _Shard):
            current.insert(link, digest, depth + 1)
        else:
            child = _Shard()
            child.insert(current, name_hash(current.name or ""), depth + 1)
            child.insert(link, digest, depth + 1)
            self.children[index] = child


def shard_data(occupied: list[int]) -> bytes:
    """UnixFS Data of a shard node: the occupancy bitfield, hash type and fanout."""
    bits = 0
    for index in occupied:
        bits |= 1 << index
    bitfield = bits.to_bytes(FANOUT // 8, "big").lstrip(b"\x00")
    head, _ = encode_header(DataType.HAMT_SHARD, len(bitfield), None)
    tail = key(5, 0) + varint.encode(HASH_MURMUR3_X64_64) + key(6, 0) + varint.encode(FANOUT)
    return head + bitfield + tail


MakeNode = Callable[[list[Link], bytes], tuple[Link, int]]


def build(links: list[Link], make_node: MakeNode) -> tuple[Link, int]:
    """Build the trie bottom-up; `make_node(links, data)` stores one dag-pb node and returns a
    link to it (its CID and Tsize) and the node's own serialized size."""
    root = _Shard()
    for link in links:
        root.insert(link, name_hash(link.name or ""), 0)
    return _emit(root, make_node)


def _emit(shard: _Shard, make_node: MakeNode) -> tuple[Link, int]:
    out: list[Link] = []
    for index in sorted(shard.children):
        child = shard.children[index]
        prefix = f"{index:02X}"
        if isinstance(child, _Shard):
            sub, _ = _emit(child, make_node)
            out.append(Link(sub.cid, prefix, sub.tsize))
        else:
            out.append(Link(child.cid, prefix + (child.name or ""), child.tsize))
    return make_node(out, shard_data(sorted(shard.children)))
