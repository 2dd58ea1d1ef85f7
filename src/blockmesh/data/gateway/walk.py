"""Async walks over a DAG for the gateway: path resolution, file byte ranges, directory
entries, and the block sequences CAR responses carry.

Every walk reads blocks through `RequestBlocks` (local repo, else Bitswap), so the same code
serves local and remote content. File ranges use the UnixFS `blocksizes` of each node to skip
subtrees wholly outside the range: a range read of a large file fetches only the blocks it
needs. Which blocks a file read wants ahead, and when, is planned by `readahead.FilePlan`
(a window of bytes); other walks want the links of each block they read, as many as fit in
the same window (`RequestBlocks.prefetch`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from blockmesh.data.cid import CID, Codec, HashCode
from blockmesh.data.dag import dagcbor, dagpb, hamt, unixfs
from blockmesh.data.dag.links import links as block_links
from blockmesh.data.dag.unixfs import DataType
from blockmesh.data.gateway.blocks import RequestBlocks
from blockmesh.data.gateway.errors import ContentNotFound, PathNotImplemented
from blockmesh.data.gateway.readahead import FilePlan
from blockmesh.errors import DecodeError, UnsupportedError

#: Blocks one CAR response may carry, repeats included (dups=y); a million 256 KiB leaves is
#: 256 GiB, far past any DAG served whole over HTTP.
MAX_CAR_BLOCKS = 1 << 20


@dataclass
class Resolved:
    """The end of a content path: its CID and block, what it is, and how we got there."""

    cid: CID
    block: bytes
    kind: str  # "file", "directory", "symlink", "raw", "dag-cbor", "other"
    roots: list[CID] = field(default_factory=list)  # one per logical path segment (X-Ipfs-Roots)
    path_blocks: list[CID] = field(default_factory=list)  # every block read to get here
    node: dagpb.Node | None = None
    unixfs: unixfs.UnixFSData | None = None
    name: str | None = None  # the last path segment, for sniffing by extension

    @property
    def size(self) -> int:
        """Bytes of the file (or raw block) this names."""
        if self.kind == "raw" or self.unixfs is None:
            return len(self.block)
        return file_size(self.unixfs)


def file_size(data: unixfs.UnixFSData) -> int:
    if data.filesize is not None:
        return data.filesize
    return len(data.data or b"") + sum(data.blocksizes)


def _decode_pb(block: bytes) -> tuple[dagpb.Node, unixfs.UnixFSData | None]:
    node = dagpb.decode(block)
    return node, None if node.data is None else unixfs.decode(node.data)


def _kind(cid: CID, data: unixfs.UnixFSData | None) -> str:
    if cid.codec == Codec.RAW:
        return "raw"
    if cid.codec == Codec.DAG_CBOR:
        return "dag-cbor"
    if cid.codec != Codec.DAG_PB:
        return "other"
    if data is None:
        return "other"
    if data.type in (DataType.DIRECTORY, DataType.HAMT_SHARD):
        return "directory"
    if data.type == DataType.SYMLINK:
        return "symlink"
    if data.type in (DataType.FILE, DataType.RAW):
        return "file"
    return "other"


async def load(blocks: RequestBlocks, cid: CID) -> Resolved:
    block = await blocks.get(cid)
    node = data = None
    if cid.codec == Codec.DAG_PB:
        node, data = _decode_pb(block)
    return Resolved(cid, block, _kind(cid, data), [cid], [cid], node, data)


async def resolve(blocks: RequestBlocks, root: CID, segments: tuple[str, ...]) -> Resolved:
    """Follow `segments` from `root` through UnixFS directories (HAMT shards included) and
    dag-cbor links. ContentNotFound names the first segment that does not exist."""
    current = await load(blocks, root)
    roots, path_blocks = [root], [root]
    index = 0
    while index < len(segments):
        segment = segments[index]
        if current.kind == "directory":
            assert current.node is not None and current.unixfs is not None
            child = await _dir_lookup(blocks, current, segment, path_blocks)
            if child is None:
                raise ContentNotFound(f"no link named {segment!r} under {current.cid}")
            index += 1
        elif current.kind == "dag-cbor":
            child, index = _cbor_step(current, segments, index)
        else:
            raise ContentNotFound(f"{current.cid} is a {current.kind}: no path {segment!r} "
                                  "below it")
        current = await load(blocks, child)
        current.name = segment
        roots.append(child)
        path_blocks.append(child)
    current.roots, current.path_blocks = roots, path_blocks
    if segments:
        current.name = segments[-1]
    return current


async def _dir_lookup(blocks: RequestBlocks, directory: Resolved, name: str,
                      path_blocks: list[CID]) -> CID | None:
    assert directory.node is not None and directory.unixfs is not None
    if directory.unixfs.type == DataType.DIRECTORY:
        for link in directory.node.links:
            if link.name == name:
                return link.cid
        return None
    return await _hamt_lookup(blocks, directory.node, directory.unixfs, name, path_blocks)


async def _hamt_lookup(blocks: RequestBlocks, node: dagpb.Node, data: unixfs.UnixFSData,
                       name: str, path_blocks: list[CID]) -> CID | None:
    """Descend one shard per byte of the name's murmur3 hash, as the HAMT was built."""
    digest = hamt.name_hash(name)
    for depth in range(hamt.MAX_DEPTH):
        if data.fanout != hamt.FANOUT or data.hash_type != hamt.HASH_MURMUR3_X64_64:
            raise DecodeError(f"HAMT with fanout {data.fanout} and hash {data.hash_type} is "
                              "not supported (kubo writes 256 and murmur3)")
        prefix = f"{digest[depth]:02X}"
        child = None
        for link in node.links:
            link_name = link.name or ""
            if link_name == prefix:
                child = link.cid
                break
            if link_name.startswith(prefix) and link_name[2:] == name:
                return link.cid
        if child is None:
            return None
        path_blocks.append(child)
        node, sub = _decode_pb(await blocks.get(child))
        if sub is None or sub.type != DataType.HAMT_SHARD:
            raise DecodeError(f"HAMT bucket {prefix} of a shard does not lead to a shard")
        data = sub
    return None


def _cbor_step(current: Resolved, segments: tuple[str, ...], index: int) -> tuple[CID, int]:
    """Walk segments inside one dag-cbor block up to the next link."""
    value = dagcbor.decode(current.block)
    while index < len(segments):
        segment = segments[index]
        if isinstance(value, dict) and segment in value:
            value = value[segment]
        elif isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
            value = value[int(segment)]
        else:
            raise ContentNotFound(f"no field {segment!r} in dag-cbor block {current.cid}")
        index += 1
        if isinstance(value, CID):
            return value, index
    raise PathNotImplemented(f"the path ends inside dag-cbor block {current.cid}, not at a "
                             "link; serving IPLD values other than blocks is not implemented")


# -- files -------------------------------------------------------------------------------------
async def file_range(blocks: RequestBlocks, target: Resolved, start: int,
                     stop: int) -> AsyncIterator[bytes]:
    """Bytes [start, stop) of the file or raw block `target`, fetching only what they need."""
    if start >= stop:
        return
    if target.kind == "raw" or target.unixfs is None:
        yield target.block[start:stop]
        return
    assert target.node is not None
    plan = FilePlan(target.node, target.unixfs, start, stop, blocks.read_ahead)
    async for piece in _follow(blocks, plan):
        assert isinstance(piece, bytes)
        yield piece


async def file_blocks(blocks: RequestBlocks, target: Resolved, start: int,
                      stop: int) -> AsyncIterator[tuple[CID, bytes]]:
    """The blocks below the file root `target` that hold bytes [start, stop), depth-first
    (the root itself is not included: the caller has already sent it)."""
    if target.unixfs is None or target.node is None or start >= stop:
        return
    plan = FilePlan(target.node, target.unixfs, start, stop, blocks.read_ahead,
                    with_blocks=True)
    async for item in _follow(blocks, plan):
        assert isinstance(item, tuple)
        yield item


async def _follow(blocks: RequestBlocks,
                  plan: FilePlan) -> AsyncIterator[bytes | tuple[CID, bytes]]:
    """Drive a FilePlan: want what it asks for, let it expand interior nodes that came in
    ahead, and wait only for the block the walk has reached."""
    while True:
        wants = plan.wants()
        if wants:
            blocks.want(wants)
        for cid in blocks.arrivals():
            if plan.expects(cid):
                block = blocks.take(cid)
                if block is not None:
                    plan.arrived(cid, block)
        step = plan.step()
        if step is None:
            return
        if isinstance(step, CID):
            plan.supply(await blocks.get(step))
        else:
            yield step


# -- directories -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    name: str
    cid: CID
    tsize: int


async def entries(blocks: RequestBlocks, directory: Resolved) -> AsyncIterator[Entry]:
    """A directory's entries without loading the children (their Tsize stands for size, as
    the spec recommends so a listing of 10k entries stays fast). HAMT entries come in trie
    order."""
    assert directory.node is not None and directory.unixfs is not None
    if directory.unixfs.type == DataType.DIRECTORY:
        for link in directory.node.links:
            yield Entry(link.name or "", link.cid, link.tsize or 0)
        return
    async for _, entry in _shard_entries(blocks, directory.node, 0):
        if entry is not None:
            yield entry


async def _shard_entries(blocks: RequestBlocks, node: dagpb.Node,
                         depth: int) -> AsyncIterator[tuple[CID | None, Entry | None]]:
    """(shard CID, None) for every child shard block, (None, entry) for every entry."""
    if depth > hamt.MAX_DEPTH:
        raise DecodeError("HAMT deeper than its hash allows")
    for link in node.links:
        name = link.name or ""
        if len(name) < 2:
            raise DecodeError(f"HAMT link name {name!r} lacks its bucket prefix")
        if len(name) == 2:
            yield link.cid, None
            child, data = _decode_pb(await blocks.get(link.cid))
            if data is None or data.type != DataType.HAMT_SHARD:
                raise DecodeError("HAMT bucket link does not lead to a shard")
            async for item in _shard_entries(blocks, child, depth + 1):
                yield item
        else:
            yield None, Entry(name[2:], link.cid, link.tsize or 0)


async def shard_blocks(blocks: RequestBlocks, directory: Resolved) -> AsyncIterator[CID]:
    """The shard nodes below a HAMT directory root (what enumerating it needs)."""
    assert directory.node is not None
    async for cid, _ in _shard_entries(blocks, directory.node, 0):
        if cid is not None:
            yield cid


# -- whole DAGs --------------------------------------------------------------------------------
async def dag_blocks(blocks: RequestBlocks, root: CID, root_block: bytes,
                     seen: set[bytes] | None) -> AsyncIterator[tuple[CID, bytes]]:
    """Every block below `root` depth-first, links in order (root excluded), identity blocks
    left out. With `seen` (dups=n), a multihash in it is skipped along with everything below
    it, and each block yielded is added to it; None (dups=y) repeats blocks as often as the
    DAG links them, up to MAX_CAR_BLOCKS: a small DAG that links one child twice per level
    would otherwise answer one request with 2^depth blocks. The stack holds CIDs only."""
    children = block_links(root, root_block)
    _prefetch(blocks, children, seen)
    stack = list(reversed(children))
    sent = 0
    while stack:
        cid = stack.pop()
        if cid.hash_code == HashCode.IDENTITY:
            continue
        sent += 1
        if sent > MAX_CAR_BLOCKS:
            raise UnsupportedError(f"the DAG under {root} is over {MAX_CAR_BLOCKS} blocks "
                                   "(counting repeats); ask with dups=n or for a sub-DAG")
        if seen is not None:
            if cid.multihash in seen:
                continue
            seen.add(cid.multihash)
        block = await blocks.get(cid)
        children = block_links(cid, block)
        _prefetch(blocks, children, seen)
        yield cid, block
        stack.extend(reversed(children))


def _prefetch(blocks: RequestBlocks, children: list[CID], seen: set[bytes] | None) -> None:
    """Want a block's links ahead of the walk, but not those already sent (dups=n): the walk
    skips them, so wanted ahead they would sit in the read-ahead for the rest of the
    response."""
    blocks.prefetch(children if seen is None else [c for c in children
                                                   if c.multihash not in seen])

