"""Reading UnixFS back out: file bytes in order, directory listings, whole trees to disk.

Block access goes through a `fetch(cid) -> bytes` callable so the same walk serves the local
store and, later, a Bitswap session; the walk is depth-first and lazy, so memory stays at one
block per tree level however large the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb, hamt, unixfs
from blockmesh.data.dag.unixfs import DataType
from blockmesh.errors import BlockmeshError, UnsupportedError

Fetch = Callable[[CID], bytes]
MAX_DEPTH = 64


class NotUnixFS(BlockmeshError):
    """The CID names something that is not the UnixFS kind the command needs."""


@dataclass(frozen=True)
class DirEntry:
    name: str
    cid: CID
    size: int
    type: str  # "file", "directory", "symlink" or "raw"


def _load(fetch: Fetch, cid: CID) -> tuple[dagpb.Node, unixfs.UnixFSData]:
    if cid.codec != Codec.DAG_PB:
        raise NotUnixFS(f"{cid} is {cid.codec_name}, not a UnixFS (dag-pb) node")
    node = dagpb.decode(fetch(cid))
    if node.data is None:
        raise NotUnixFS(f"{cid} is a dag-pb node without UnixFS data")
    return node, unixfs.decode(node.data)


def read_file(fetch: Fetch, cid: CID) -> Iterator[bytes]:
    """The bytes of the file at `cid`, chunk by chunk."""
    if cid.codec == Codec.RAW:
        yield fetch(cid)
        return
    node, data = _load(fetch, cid)
    if data.type == DataType.DIRECTORY or data.type == DataType.HAMT_SHARD:
        raise NotUnixFS(f"{cid} is a directory; use `get` or `ls`")
    if data.type not in (DataType.FILE, DataType.RAW):
        raise NotUnixFS(f"{cid} is a UnixFS {data.type.name.lower()}, not a file")
    yield from _file_parts(fetch, node, data, 0)


def _file_parts(fetch: Fetch, node: dagpb.Node, data: unixfs.UnixFSData,
                depth: int) -> Iterator[bytes]:
    if depth > MAX_DEPTH:
        raise NotUnixFS(f"file DAG deeper than {MAX_DEPTH} levels")
    if data.data:
        yield data.data
    for link in node.links:
        if link.cid.codec == Codec.RAW:
            yield fetch(link.cid)
            continue
        child, child_data = _load(fetch, link.cid)
        if child_data.type not in (DataType.FILE, DataType.RAW):
            raise NotUnixFS(f"file node links to a UnixFS {child_data.type.name.lower()}")
        yield from _file_parts(fetch, child, child_data, depth + 1)


def entry_type(fetch: Fetch, cid: CID) -> str:
    if cid.codec == Codec.RAW:
        return "raw"
    _, data = _load(fetch, cid)
    return {DataType.DIRECTORY: "directory", DataType.HAMT_SHARD: "directory",
            DataType.SYMLINK: "symlink"}.get(data.type, "file")


def list_directory(fetch: Fetch, cid: CID) -> list[DirEntry]:
    node, data = _load(fetch, cid)
    if data.type == DataType.HAMT_SHARD:
        links = sorted(_shard_links(fetch, node, data, 0), key=lambda item: item[0].encode())
    elif data.type == DataType.DIRECTORY:
        links = [(link.name or "", link) for link in node.links]
    else:
        raise NotUnixFS(f"{cid} is not a directory")
    return [DirEntry(name, link.cid, link.tsize or 0, entry_type(fetch, link.cid))
            for name, link in links]


def _shard_links(fetch: Fetch, node: dagpb.Node, data: unixfs.UnixFSData,
                 depth: int) -> Iterator[tuple[str, dagpb.Link]]:
    """Entries of a HAMT shard: two hex digits name a child shard, longer names an entry."""
    if data.fanout != hamt.FANOUT or data.hash_type != hamt.HASH_MURMUR3_X64_64:
        raise UnsupportedError(f"HAMT with fanout {data.fanout} and hash {data.hash_type} "
                               "is not supported (kubo uses 256 and murmur3)")
    if depth > hamt.MAX_DEPTH:
        raise NotUnixFS("HAMT deeper than its hash allows")
    for link in node.links:
        name = link.name or ""
        if len(name) < 2:
            raise NotUnixFS(f"HAMT link name {name!r} lacks its bucket prefix")
        if len(name) == 2:
            child, child_data = _load(fetch, link.cid)
            if child_data.type != DataType.HAMT_SHARD:
                raise NotUnixFS("HAMT bucket link does not lead to a shard")
            yield from _shard_links(fetch, child, child_data, depth + 1)
        else:
            yield name[2:], link


def write_tree(fetch: Fetch, cid: CID, dest: str | os.PathLike[str],
               progress: Callable[[int], None] | None = None) -> None:
    """Write the file, directory or symlink at `cid` to `dest`, creating directories."""
    _write(fetch, cid, Path(dest), progress, 0)


def _write(fetch: Fetch, cid: CID, dest: Path, progress: Callable[[int], None] | None,
           depth: int) -> None:
    if depth > MAX_DEPTH:
        raise NotUnixFS(f"directory tree deeper than {MAX_DEPTH} levels")
    kind = entry_type(fetch, cid)
    if kind == "directory":
        dest.mkdir(parents=True, exist_ok=True)
        for entry in list_directory(fetch, cid):
            if not entry.name or "/" in entry.name or entry.name in (".", ".."):
                raise NotUnixFS(f"unsafe entry name {entry.name!r} in directory {cid}")
            _write(fetch, entry.cid, dest / entry.name, progress, depth + 1)
    elif kind == "symlink":
        _, data = _load(fetch, cid)
        os.symlink(os.fsdecode(data.data or b""), dest)
    else:
        tmp = dest.with_name(dest.name + ".part")
        with open(tmp, "wb") as out:
            for part in read_file(fetch, cid):
                out.write(part)
                if progress is not None:
                    progress(len(part))
        os.replace(tmp, dest)
