"""UnixFS import with kubo's layouts, so the same bytes get the same CID as `ipfs add`.

The balanced and trickle builders follow boxo's importer algorithms step by step (the layout
decides the CID, so "equivalent" trees are not good enough). Files stream through: only one
chunk and at most depth x max_links link entries are held in memory at a time.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from blockmesh.data import varint
from blockmesh.data.cid import CID, Codec, HashCode, digest
from blockmesh.data.dag import dagpb, hamt, unixfs
from blockmesh.data.dag.chunker import DEFAULT_CHUNK_SIZE, chunks
from blockmesh.data.dag.dagpb import Link
from blockmesh.data.dag.unixfs import DataType
from blockmesh.errors import NotFound, UnsupportedError

DEFAULT_MAX_LINKS = 174
TRICKLE_DEPTH_REPEAT = 4

BlockSink = Callable[[CID, bytes], None]
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ImportOptions:
    cid_version: int = 0
    raw_leaves: bool | None = None  # None: as kubo, on exactly when cid_version is 1
    chunk_size: int = DEFAULT_CHUNK_SIZE
    trickle: bool = False
    max_links: int = DEFAULT_MAX_LINKS
    hash_code: int = HashCode.SHA2_256
    hidden: bool = False

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise UnsupportedError(f"CID version must be 0 or 1, got {self.cid_version}")
        if self.cid_version == 0 and self.hash_code != HashCode.SHA2_256:
            raise UnsupportedError("CIDv0 only allows sha2-256; use --cid-version 1")

    @property
    def use_raw_leaves(self) -> bool:
        return self.cid_version == 1 if self.raw_leaves is None else self.raw_leaves


@dataclass(frozen=True, slots=True)
class Entry:
    """One imported node: what a parent's link needs."""

    cid: CID
    filesize: int  # bytes of file content below it
    tsize: int  # bytes of every block below it, its own included


@dataclass(frozen=True)
class Added:
    """One line of `add` output: a file or directory and its CID."""

    path: str
    cid: CID
    size: int  # file bytes for files, the whole DAG's bytes for directories (as kubo reports)
    tsize: int


class _Builder:
    """Makes and emits the blocks of one import; shared by files and directories."""

    def __init__(self, opts: ImportOptions, sink: BlockSink | None, progress: Progress | None):
        self.opts = opts
        self.sink = sink
        self.progress = progress

    def _cid(self, parts: list[bytes], codec: int) -> tuple[CID, int]:
        if self.opts.hash_code == HashCode.SHA2_256:
            hasher = hashlib.sha256()
            for part in parts:
                hasher.update(part)
            multihash = b"\x12\x20" + hasher.digest()
        else:
            multihash = digest(b"".join(parts), self.opts.hash_code)
        # CIDv0 cannot name a raw block: with --raw-leaves and CIDv0, kubo (boxo's
        # NewRawNodeWPrefix) makes only the raw leaves CIDv1 and keeps dag-pb nodes CIDv0.
        if self.opts.cid_version == 0 and codec == Codec.DAG_PB:
            cid = CID(0, Codec.DAG_PB, multihash)
        else:
            cid = CID(1, codec, multihash)
        size = sum(len(p) for p in parts)
        if self.sink is not None:
            self.sink(cid, parts[0] if len(parts) == 1 else b"".join(parts))
        return cid, size

    def leaf(self, chunk: bytes, kind: DataType = DataType.FILE) -> Entry:
        if self.progress is not None:
            self.progress(len(chunk))
        if self.opts.use_raw_leaves:
            cid, size = self._cid([chunk], Codec.RAW)
            return Entry(cid, len(chunk), size)
        head, tail = unixfs.encode_header(kind, len(chunk), len(chunk))
        inner = len(head) + len(chunk) + len(tail)
        prefix = b"\x0a" + varint.encode(inner) + head
        cid, size = self._cid([prefix, chunk, tail], Codec.DAG_PB)
        return Entry(cid, len(chunk), size)

    def file_node(self, children: list[Entry]) -> Entry:
        filesize = sum(child.filesize for child in children)
        head, tail = unixfs.encode_header(DataType.FILE, None, filesize,
                                          [child.filesize for child in children])
        links = [Link(child.cid, "", child.tsize) for child in children]
        return self._node(links, head + tail, filesize)

    def _node(self, links: list[Link], data: bytes, filesize: int) -> Entry:
        parts = dagpb.encode_parts(links, data)
        cid, size = self._cid(parts, Codec.DAG_PB)
        return Entry(cid, filesize, size + sum(link.tsize or 0 for link in links))

    def empty_file(self) -> Entry:
        head, tail = unixfs.encode_header(DataType.FILE, None, 0)
        return self._node([], head + tail, 0)

    def directory(self, links: list[Link]) -> Entry:
        if hamt.needs_sharding(links):
            def make_node(shard_links: list[Link], data: bytes) -> tuple[Link, int]:
                entry = self._node(shard_links, data, 0)
                return Link(entry.cid, "", entry.tsize), entry.tsize

            root, _ = hamt.build(links, make_node)
            return Entry(root.cid, 0, root.tsize or 0)
        head, _ = unixfs.encode_header(DataType.DIRECTORY, None, None)
        return self._node(dagpb.sort_links(links), head, 0)

    def symlink(self, target: bytes) -> Entry:
        head, tail = unixfs.encode_header(DataType.SYMLINK, len(target), None)
        return self._node([], head + target + tail, 0)


class _Chunks:
    """A chunk iterator that can tell whether another chunk is coming (boxo's `Done`)."""

    def __init__(self, source: Iterator[bytes]) -> None:
        self._source = source
        self._next = next(source, None)

    def done(self) -> bool:
        return self._next is None

    def take(self) -> bytes:
        chunk = self._next
        assert chunk is not None
        self._next = next(self._source, None)
        return chunk


def _balanced(builder: _Builder, source: _Chunks) -> Entry:
    max_links = builder.opts.max_links
    if source.done():
        # boxo makes an empty file a leaf with no data: with raw leaves, the empty raw block
        return builder.leaf(b"") if builder.opts.use_raw_leaves else builder.empty_file()

    def fill(children: list[Entry], depth: int) -> Entry:
        while len(children) < max_links and not source.done():
            if depth == 1:
                children.append(builder.leaf(source.take()))
            else:
                children.append(fill([], depth - 1))
        return builder.file_node(children)

    root = builder.leaf(source.take())
    depth = 1
    while not source.done():
        root = fill([root], depth)
        depth += 1
    return root


def _trickle(builder: _Builder, source: _Chunks) -> Entry:
    max_links = builder.opts.max_links
    leaf_kind = DataType.RAW

    def fill(max_depth: int) -> Entry:
        children: list[Entry] = []
        while len(children) < max_links and not source.done():
            children.append(builder.leaf(source.take(), leaf_kind))
        depth = 1
        while (max_depth < 0 or depth < max_depth) and not source.done():
            for _ in range(TRICKLE_DEPTH_REPEAT):
                if source.done():
                    break
                children.append(fill(depth))
            depth += 1
        return builder.file_node(children)

    return fill(-1)


def import_stream(stream: BinaryIO, opts: ImportOptions, sink: BlockSink | None = None,
                  progress: Progress | None = None) -> Entry:
    """Import one file's bytes; `sink` receives every block (None: only compute the CID)."""
    return _import_file(_Builder(opts, sink, progress), stream)


def _import_file(builder: _Builder, stream: BinaryIO) -> Entry:
    source = _Chunks(chunks(stream, builder.opts.chunk_size))
    return (_trickle if builder.opts.trickle else _balanced)(builder, source)


def import_bytes(data: bytes, opts: ImportOptions | None = None,
                 sink: BlockSink | None = None) -> Entry:
    return import_stream(io.BytesIO(data), opts or ImportOptions(), sink)


def import_path(path: str | os.PathLike[str], opts: ImportOptions, sink: BlockSink | None = None,
                progress: Progress | None = None, recursive: bool = False) -> Iterator[Added]:
    """Import a file or (with recursive) a directory tree; yields every entry, the root last."""
    root = Path(path)
    try:
        info = root.lstat()
    except FileNotFoundError:
        raise NotFound(f"no such file or directory: {root}") from None
    builder = _Builder(opts, sink, progress)
    if stat.S_ISDIR(info.st_mode) and not recursive:
        raise UnsupportedError(f"{root} is a directory, use -r to add directories")
    yield from _import_entry(builder, root, root.name or str(root))


def _import_entry(builder: _Builder, path: Path, label: str) -> Iterator[Added]:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        entry = builder.symlink(os.fsencode(os.readlink(path)))
    elif stat.S_ISDIR(info.st_mode):
        links: list[Link] = []
        for child in sorted(os.scandir(path), key=lambda e: e.name.encode()):
            if child.name.startswith(".") and not builder.opts.hidden:
                continue
            last: Added | None = None
            for added in _import_entry(builder, Path(child.path), f"{label}/{child.name}"):
                yield added
                last = added
            assert last is not None  # every entry yields itself last
            links.append(Link(last.cid, child.name, last.tsize))
        entry = builder.directory(links)
    elif stat.S_ISREG(info.st_mode):
        with open(path, "rb") as handle:
            entry = _import_file(builder, handle)
    else:
        raise UnsupportedError(f"{path} is not a regular file, directory or symlink")
    size = entry.tsize if stat.S_ISDIR(info.st_mode) else entry.filesize
    yield Added(label, entry.cid, size, entry.tsize)
