"""Blocks in one LMDB environment: transactional, so a killed process never leaves a torn block.

Small blocks are far cheaper here than one file each; `sync=False` drops the fsync per commit,
which keeps crash safety against a killed process (the OS still holds the pages) but not against
power loss.

LMDB reads through a shared memory map, so streaming a large file out of the store would count
every page touched in the process's RSS (as page cache, not heap). After every READ_RELEASE_BYTES
read the store tells the kernel it no longer needs the mapped pages (madvise DONTNEED on the
read-only mapping), which keeps RSS flat; the pages stay in the page cache for the next reader.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import lmdb

from blockmesh.data.store.blockstore import Blockstore
from blockmesh.data.store.flatfs import StoreError, StoreFull
from blockmesh.errors import NotFound

DEFAULT_MAP_SIZE = 1 << 40  # address space only; the file grows with the data
READ_RELEASE_BYTES = 32 * 1024 * 1024
_MADV_DONTNEED = 4


class LMDBBlockstore(Blockstore):
    def __init__(self, root: str | os.PathLike[str], *, sync: bool = False,
                 map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(self.root), map_size=map_size, sync=sync, metasync=sync,
                              max_dbs=1, readahead=False)
        self._read_bytes = 0
        self._read_lock = threading.Lock()

    def _put(self, key: bytes, data: bytes) -> None:
        self._put_many([(key, data)])

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        try:
            with self._env.begin(write=True) as txn:
                for key, data in items:
                    txn.put(key, data, overwrite=False)
        except lmdb.MapFullError:
            raise StoreFull(f"block store at {self.root} is full (map size)") from None
        except lmdb.Error as exc:
            # LMDB reports ENOSPC at commit as a bare I/O error; the transaction is aborted,
            # so nothing of this batch is stored either way
            needed = sum(len(data) for _, data in items)
            if shutil.disk_usage(self.root).free < needed + 1024 * 1024:
                raise StoreFull(f"no space left on device for block store at {self.root}") from None
            raise StoreError(f"block store write failed at {self.root}: {exc}") from None

    def _get(self, key: bytes) -> bytes:
        with self._env.begin(buffers=False) as txn:
            value = txn.get(key)
        if value is None:
            raise NotFound("block not found")
        with self._read_lock:
            self._read_bytes += len(value)
            if self._read_bytes >= READ_RELEASE_BYTES:
                self._read_bytes = 0
                self._release_mapped_pages()
        return value

    def _release_mapped_pages(self) -> None:
        """Drop this process's references to the map's pages (Linux); harmless if unsupported."""
        data_file = str((self.root / "data.mdb").resolve())
        try:
            with open("/proc/self/maps") as maps:
                ranges = [line.split()[0] for line in maps if line.rstrip().endswith(data_file)]
            libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            return
        for span in ranges:
            start, end = (int(x, 16) for x in span.split("-"))
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)

    def _has(self, key: bytes) -> bool:
        with self._env.begin() as txn, txn.cursor() as cursor:
            return cursor.set_key(key)

    def _delete(self, key: bytes) -> None:
        with self._env.begin(write=True) as txn:
            if not txn.delete(key):
                raise NotFound("block not found")

    def _size(self, key: bytes) -> int:
        with self._env.begin(buffers=True) as txn:
            value = txn.get(key)
            if value is None:
                raise NotFound("block not found")
            return len(value)

    def keys(self) -> Iterator[bytes]:
        with self._env.begin() as txn, txn.cursor() as cursor:
            keys = list(cursor.iternext(keys=True, values=False))
        yield from keys

    def close(self) -> None:
        self._env.close()
