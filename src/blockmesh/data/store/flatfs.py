"""One file per block, sharded into directories the way kubo's flatfs does (next-to-last/2).

A block is written to a temporary file in its shard and renamed into place, so a process killed
at any instant leaves either the whole block under its name or nothing. `sync` adds an fsync of
file and directory for power-loss safety.

Leftover temporaries are removed when the store opens, but only those whose writer is gone: the
daemon and a CLI command may have the same store open, and deleting a temporary file in the
middle of the other's write would fail that write. Each open store holds an exclusive flock on
its own owner file (`.owner-<token>.lock`, created before any temporary) and names its
temporaries `.tmp-<token>-<random>`. A temporary whose owner file is missing or can be locked
belongs to a store that closed or a process that died, since the kernel drops a flock with its
holder. A lock rather than a PID check: PIDs are reused and differ between PID namespaces
(containers) sharing one directory, while a held lock means the same everywhere. Creating an
owner file and sweeping happen under `.owners.lock`, so a sweep never sees an owner file in the
instant between its creation and its lock.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from blockmesh.data.store.blockstore import Blockstore
from blockmesh.errors import BlockmeshError, NotFound

_TMP_PREFIX = ".tmp-"
_OWNER_PREFIX = ".owner-"
_OWNER_SUFFIX = ".lock"
_OWNERS_LOCK = ".owners.lock"
_SUFFIX = ".data"


class StoreError(BlockmeshError):
    """The block store could not write (the message says why); nothing partial was stored."""


class StoreFull(StoreError):
    """The disk holding the store has no room for a block."""


def _name(key: bytes) -> str:
    return base64.b32encode(key).decode().rstrip("=")


def _key(name: str) -> bytes | None:
    text = name[: -len(_SUFFIX)]
    try:
        return base64.b32decode(text + "=" * (-len(text) % 8))
    except ValueError:
        return None


class FlatFSBlockstore(Blockstore):
    def __init__(self, root: str | os.PathLike[str], *, sync: bool = False) -> None:
        self.root = Path(root)
        self.sync = sync
        self.root.mkdir(parents=True, exist_ok=True)
        self._token = secrets.token_hex(8)
        self._owner_file = self.root / f"{_OWNER_PREFIX}{self._token}{_OWNER_SUFFIX}"
        # Under the directory lock, no one sees an owner file that is not locked yet.
        with _locked(self.root / _OWNERS_LOCK):
            self._owner_fd: int | None = os.open(self._owner_file, os.O_RDWR | os.O_CREAT,
                                                 0o644)
            fcntl.flock(self._owner_fd, fcntl.LOCK_EX)
            self._remove_temporaries()

    def _path(self, key: bytes) -> Path:
        name = _name(key)
        return self.root / name[-3:-1] / (name + _SUFFIX)

    def _put(self, key: bytes, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        tmp = self._temporary(path.parent)
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                if self.sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
            if self.sync:
                _fsync_dir(path.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno == 28:  # ENOSPC
                raise StoreFull(f"no space left on device for block store at {self.root}") from None
            raise

    def _temporary(self, shard: Path) -> Path:
        """A fresh name for a block being written into `shard`, marked as this store's."""
        return shard / f"{_TMP_PREFIX}{self._token}-{secrets.token_hex(8)}"

    def _get(self, key: bytes) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound("block not found") from None

    def _has(self, key: bytes) -> bool:
        return self._path(key).exists()

    def _delete(self, key: bytes) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            raise NotFound("block not found") from None

    def _size(self, key: bytes) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise NotFound("block not found") from None

    def keys(self) -> Iterator[bytes]:
        for shard in sorted(self.root.iterdir()):
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard):
                if entry.name.endswith(_SUFFIX):
                    key = _key(entry.name)
                    if key is not None:
                        yield key

    def _remove_temporaries(self) -> None:
        """Delete the temporaries (and owner files) of every store instance no longer open."""
        live: dict[str, bool] = {self._token: True}
        for shard in self.root.iterdir():
            if shard.is_dir():
                for entry in shard.glob(f"{_TMP_PREFIX}*"):
                    owner = entry.name[len(_TMP_PREFIX):].partition("-")[0]
                    if owner not in live:
                        live[owner] = self._owner_alive(owner)
                    if not live[owner]:
                        entry.unlink(missing_ok=True)
        for entry in self.root.glob(f"{_OWNER_PREFIX}*{_OWNER_SUFFIX}"):
            owner = entry.name[len(_OWNER_PREFIX):-len(_OWNER_SUFFIX)]
            if owner not in live:
                self._owner_alive(owner)  # removes the file when its holder is gone

    def _owner_alive(self, token: str) -> bool:
        """Whether the store instance named `token` is open somewhere (its owner file is locked).
        A dead owner's file is removed while we hold its lock."""
        path = self.root / f"{_OWNER_PREFIX}{token}{_OWNER_SUFFIX}"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell: keep its files
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return True
        path.unlink(missing_ok=True)
        os.close(fd)
        return False

    def close(self) -> None:
        """Give up ownership: remove the owner file, then drop its lock."""
        if self._owner_fd is None:
            return
        self._owner_file.unlink(missing_ok=True)
        os.close(self._owner_fd)
        self._owner_fd = None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
