"""One file per block, sharded into directories the way kubo's flatfs does (next-to-last/2).

A block is written to a temporary file in its shard and renamed into place, so a process killed
at any instant leaves either the whole block under its name or nothing; leftover temporaries are
removed when the store opens. `sync` adds an fsync of file and directory for power-loss safety.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from blockmesh.data.store.blockstore import Blockstore
from blockmesh.errors import BlockmeshError, NotFound

_TMP_PREFIX = ".tmp-"
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
        self._remove_temporaries()

    def _path(self, key: bytes) -> Path:
        name = _name(key)
        return self.root / name[-3:-1] / (name + _SUFFIX)

    def _put(self, key: bytes, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(exist_ok=True)
        tmp = path.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
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
        for shard in self.root.iterdir():
            if shard.is_dir():
                for entry in shard.glob(f"{_TMP_PREFIX}*"):
                    entry.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
