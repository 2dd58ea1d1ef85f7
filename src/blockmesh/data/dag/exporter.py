"""Reading UnixFS back out: file bytes in order, directory listings, whole trees to disk.

Block access goes through a `fetch(cid) -> bytes` callable so the same walk serves the local
store and, later, a Bitswap session; the walk is depth-first and lazy, so memory stays at one
block per tree level however large the file.

Writing a tree (`get`) treats every name and symlink in the DAG as hostile, since the DAG may
come from any Bitswap peer:

- Entry names must be single path components: empty, ".", "..", names with "/" or NUL, names
  over 255 bytes and a name repeated in one directory are refused with `UnsafeEntry`.
- Nothing below the destination is ever reached through a path string: each directory is made
  with `mkdir(dir_fd=parent)` and opened `O_DIRECTORY|O_NOFOLLOW`, each file is created
  `O_CREAT|O_EXCL|O_NOFOLLOW` relative to its parent's descriptor. So no write follows a
  symlink, and no write replaces something already there.
- Symlink nodes are written as symlinks holding the stored target, as kubo's `ipfs get` does,
  whatever the target is (absolute, or climbing out with ".."): the link itself sits inside the
  destination, and no write of the export goes through it (the rule above). Following it later
  is the user's choice, as with any symlink an archive unpacks.
- The tree is built inside a fresh staging directory, `.blockmesh-get-<random>`, made next to
  the final path (so on the same file system), holding nothing but the root under a fixed name.
  No entry name lives at that level, so none can collide with it, and files are written under
  their own names inside the staged tree with no temporary names at all. Only when the whole
  tree is written does one rename (a hard link for a file or symlink root, which cannot replace
  anything) give it its final name; a failure removes the staging directory, so a failed export
  leaves nothing under a final name (a killed one leaves only the staging directory).
- The destination, as with `cp`: a path that does not exist becomes the root (its parent must
  exist); an existing directory receives the root inside it, named by its CID; anything else
  that exists is refused. Two deliberate differences from kubo, which overwrites an existing
  file and merges a directory root into an existing directory (overwriting what is there):
  here a DAG from a peer never replaces anything the user already had.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb, hamt, unixfs
from blockmesh.data.dag.unixfs import DataType
from blockmesh.errors import BlockmeshError, DecodeError, UnsupportedError

Fetch = Callable[[CID], bytes]
MAX_DEPTH = 64
NAME_MAX = 255  # bytes in one path component on Linux file systems
SYMLINK_MAX = 4096  # PATH_MAX: the longest target symlink(2) accepts
STAGING_PREFIX = ".blockmesh-get-"
_STAGED_ROOT = "root"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class NotUnixFS(BlockmeshError):
    """The CID names something that is not the UnixFS kind the command needs."""


class UnsafeEntry(DecodeError):
    """A directory entry or symlink in a DAG that cannot be written safely where it stands."""


class ExportError(BlockmeshError):
    """The destination of an export cannot take it: missing parent, or something already there."""


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
               progress: Callable[[int], None] | None = None) -> Path:
    """Write the file, directory or symlink at `cid` to `dest`; return where it now is.

    See the module docstring for what `dest` means and for the safety rules.
    """
    dest = Path(dest)
    parent, name = _placement(dest, str(cid))
    final = parent / name
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise _no_parent(dest, parent) from None
    try:
        if _exists(name, parent_fd):  # fail before fetching anything; _publish re-checks
            raise _taken(final)
        staging = STAGING_PREFIX + secrets.token_hex(8)
        os.mkdir(staging, 0o700, dir_fd=parent_fd)
        try:
            staging_fd = os.open(staging, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                is_dir = _write(fetch, cid, staging_fd, _STAGED_ROOT, str(final), progress, 0)
                _publish(staging_fd, parent_fd, name, final, is_dir)
            finally:
                os.close(staging_fd)
        finally:  # empty after a success; after a failure, everything written so far
            shutil.rmtree(staging, dir_fd=parent_fd, ignore_errors=True)
    finally:
        os.close(parent_fd)
    return final


def destination(dest: str | os.PathLike[str], cid: CID) -> Path:
    """Where `write_tree(…, cid, dest)` would put the root, or the ExportError it would raise
    about the destination: lets a caller refuse before fetching a whole DAG for nothing."""
    dest = Path(dest)
    parent, name = _placement(dest, str(cid))
    if not parent.is_dir():
        raise _no_parent(dest, parent)
    if os.path.lexists(parent / name):
        raise _taken(parent / name)
    return parent / name


def _no_parent(dest: Path, parent: Path) -> ExportError:
    return ExportError(f"cannot write {dest}: {parent} is not an existing directory")


def _taken(path: Path) -> ExportError:
    return ExportError(f"{path} already exists; get never overwrites")


def _placement(dest: Path, cid_name: str) -> tuple[Path, str]:
    """The directory the root goes into and the name it takes there (the user's own path, so
    symlinks above it are followed as the user wrote them; only its last part is examined)."""
    try:
        existing = os.lstat(dest)
    except FileNotFoundError:
        existing = None
    except NotADirectoryError:
        raise _no_parent(dest, dest.parent) from None
    if existing is not None:
        if not stat.S_ISDIR(existing.st_mode):
            raise _taken(dest)
        return dest, cid_name
    if dest.name in ("", ".", ".."):
        raise ExportError(f"cannot write {dest}: it names no new file")
    return dest.parent, dest.name


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _publish(staging_fd: int, parent_fd: int, name: str, final: Path, is_dir: bool) -> None:
    """Give the staged root its final name without replacing anything there.

    link(2) fails if the name exists. A directory cannot be hard-linked, and rename(2) can only
    replace an empty directory, so the window after the check in `write_tree` can at worst swap
    out an empty directory made in between, never a file.
    """
    try:
        if is_dir:
            os.rename(_STAGED_ROOT, name, src_dir_fd=staging_fd, dst_dir_fd=parent_fd)
        else:
            os.link(_STAGED_ROOT, name, src_dir_fd=staging_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
            raise _taken(final) from None
        raise


def _check_name(name: str, seen: set[str], where: str, cid: CID) -> None:
    problem = None
    if name in ("", ".", ".."):
        problem = "is empty" if not name else f"is {name!r}"
    elif "/" in name or "\0" in name:
        problem = "contains '/'" if "/" in name else "contains NUL"
    elif len(name.encode()) > NAME_MAX:
        problem = f"is longer than {NAME_MAX} bytes"
    elif name in seen:
        problem = "appears twice in the directory"
    if problem is not None:
        raise UnsafeEntry(f"refusing entry {name!r} of directory {cid} ({where}): the name "
                          f"{problem}")
    seen.add(name)


def _symlink_target(fetch: Fetch, cid: CID, where: str) -> str:
    _, data = _load(fetch, cid)
    target = data.data or b""
    if not target or b"\0" in target or len(target) >= SYMLINK_MAX:
        raise UnsafeEntry(f"refusing symlink {cid} ({where}): its target is empty, contains "
                          f"NUL or is {SYMLINK_MAX} bytes or longer")
    return os.fsdecode(target)


def _write(fetch: Fetch, cid: CID, dir_fd: int, name: str, where: str,
           progress: Callable[[int], None] | None, depth: int) -> bool:
    """Create `name` in the directory open as `dir_fd` from the node at `cid`; True if it made
    a directory. `where` is the entry's final path, for messages only: never opened."""
    if depth > MAX_DEPTH:
        raise NotUnixFS(f"directory tree deeper than {MAX_DEPTH} levels")
    kind = entry_type(fetch, cid)
    if kind == "directory":
        os.mkdir(name, 0o777, dir_fd=dir_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            seen: set[str] = set()
            for entry in list_directory(fetch, cid):
                _check_name(entry.name, seen, where, cid)
                _write(fetch, entry.cid, fd, entry.name, f"{where}/{entry.name}", progress,
                       depth + 1)
        finally:
            os.close(fd)
        return True
    if kind == "symlink":
        os.symlink(_symlink_target(fetch, cid, where), name, dir_fd=dir_fd)
        return False
    with os.fdopen(os.open(name, _NEW_FILE_FLAGS, 0o666, dir_fd=dir_fd), "wb") as out:
        for part in read_file(fetch, cid):
            out.write(part)
            if progress is not None:
                progress(len(part))
    return False
