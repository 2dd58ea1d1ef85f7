"""Blocks in one LMDB environment: transactional, so a killed process never leaves a torn block.

Small blocks are far cheaper here than one file each; `sync=False` drops the fsync per commit,
which keeps crash safety against a killed process (the OS still holds the pages) but not against
power loss.

LMDB reads through a shared memory map, so streaming a large file out of the store would count
every page touched in the process's RSS (as page cache, not heap). After every READ_RELEASE_BYTES
read the store tells the kernel it no longer needs the mapped pages (madvise DONTNEED on the
read-only mapping), which keeps RSS flat; the pages stay in the page cache for the next reader.

The map is reserved in the process's address space whole, so it starts modest (INITIAL_MAP_SIZE,
or the data file's size if larger) rather than at a terabyte, which a process under an address
space limit (ulimit -v, some containers) cannot reserve at all. A write that finds the map full
doubles it, up to MAX_MAP_SIZE, and runs again; LMDB forbids resizing while any transaction of
the process is open, so transactions share a lock that a resize takes alone. A map that cannot be
reserved is a StoreError (at open) or StoreFull (when growing), never lmdb.MemoryError.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import lmdb

from blockmesh.data.store.blockstore import Blockstore
from blockmesh.data.store.flatfs import StoreError, StoreFull
from blockmesh.errors import NotFound

INITIAL_MAP_SIZE = 64 * 1024 * 1024  # address space only; the file grows with the data
MAX_MAP_SIZE = 1 << 40
READ_RELEASE_BYTES = 32 * 1024 * 1024
_MADV_DONTNEED = 4
T = TypeVar("T")


class _MapLock:
    """Any number of transactions at once, or one map resize with none open."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open = 0
        self._resizing = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._resizing)
            self._open += 1
        try:
            yield
        finally:
            with self._cond:
                self._open -= 1
                if not self._open:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def resize(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._resizing)
            self._resizing = True
            self._cond.wait_for(lambda: not self._open)
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class LMDBBlockstore(Blockstore):
    def __init__(self, root: str | os.PathLike[str], *, sync: bool = False,
                 map_size: int = INITIAL_MAP_SIZE, max_map_size: int = MAX_MAP_SIZE) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._max_map_size = max_map_size
        self._sync = sync
        self._env = self._open(map_size)
        self._map = _MapLock()
        self._read_bytes = 0
        self._read_lock = threading.Lock()

    def _open(self, map_size: int) -> lmdb.Environment:
        try:
            return lmdb.open(str(self.root), map_size=map_size, sync=self._sync,
                             metasync=self._sync, max_dbs=1, readahead=False)
        except lmdb.MemoryError as exc:
            raise StoreError(f"cannot map the block store at {self.root} into memory "
                             f"({map_size} bytes; is the address space limited?): {exc}") from None

    @property
    def map_size(self) -> int:
        """The bytes of address space the map holds now (it grows as the store fills)."""
        return int(self._env.info()["map_size"])

    def _grow(self, seen: int) -> None:
        """Double the map after a write found it full at `seen` bytes (unless another thread
        already did); StoreFull at MAX_MAP_SIZE or when the address space has no room."""
        with self._map.resize():
            current = self.map_size
            if current > seen:
                return
            if current >= self._max_map_size:
                raise StoreFull(f"block store at {self.root} is full (map size {current} bytes "
                                "is the maximum)")
            target = min(current * 2, self._max_map_size)
            try:
                self._env.set_mapsize(target)
            except lmdb.MemoryError:
                # LMDB unmapped the old map before failing, and py-lmdb then retires the
                # environment; reopen it at the old size, in the space the old map freed
                self._env.close()
                self._env = self._open(current)
                raise StoreFull(f"block store at {self.root} cannot grow its map to {target} "
                                "bytes: no room in the address space") from None

    def _adopt_map_size(self) -> None:
        """Another process grew the map: take its size before the next transaction."""
        with self._map.resize():
            try:
                self._env.set_mapsize(0)
            except lmdb.MemoryError:
                self._env.close()  # retired by py-lmdb, as in _grow
                self._env = self._open(INITIAL_MAP_SIZE)  # StoreError if there is no room

    @contextlib.contextmanager
    def _txn(self, *, write: bool = False, buffers: bool = False) -> Iterator[lmdb.Transaction]:
        """A transaction held under the map lock, so no resize happens while it is open."""
        while True:
            with self._map.transaction():
                try:
                    txn = self._env.begin(write=write, buffers=buffers)
                except lmdb.MapResizedError:
                    pass
                else:
                    with txn:
                        yield txn
                    return
            self._adopt_map_size()

    def _write(self, body: Callable[[lmdb.Transaction], T], needed: int) -> T:
        """Run `body` in a write transaction, growing the map and running it again when full
        (a full transaction is aborted, so a retried batch is never half stored)."""
        while True:
            seen = 0
            try:
                with self._txn(write=True) as txn:
                    seen = self.map_size  # read under the lock, so no resize is under way
                    return body(txn)
            except lmdb.MapFullError:
                self._grow(seen)
            except lmdb.MapResizedError:
                self._adopt_map_size()
            except lmdb.Error as exc:
                # LMDB reports ENOSPC at commit as a bare I/O error; the transaction is aborted,
                # so nothing of this batch is stored either way
                if shutil.disk_usage(self.root).free < needed + 1024 * 1024:
                    raise StoreFull(f"no space left on device for block store at {self.root}") \
                        from None
                raise StoreError(f"block store write failed at {self.root}: {exc}") from None

    def _put(self, key: bytes, data: bytes) -> None:
        self._put_many([(key, data)])

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        def put_all(txn: lmdb.Transaction) -> None:
            for key, data in items:
                txn.put(key, data, overwrite=False)

        self._write(put_all, sum(len(data) for _, data in items))

    def _get(self, key: bytes) -> bytes:
        with self._txn() as txn:
            value = txn.get(key)
            if value is None:
                raise NotFound("block not found")
            with self._read_lock:
                self._read_bytes += len(value)
                release = self._read_bytes >= READ_RELEASE_BYTES
                if release:
                    self._read_bytes = 0
            if release:
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
        with self._txn() as txn, txn.cursor() as cursor:
            return cursor.set_key(key)

    def _delete(self, key: bytes) -> None:
        def delete(txn: lmdb.Transaction) -> bool:
            return txn.delete(key)

        if not self._write(delete, 0):  # freeing pages can need new ones (copy on write)
            raise NotFound("block not found")

    def _size(self, key: bytes) -> int:
        with self._txn(buffers=True) as txn:
            value = txn.get(key)
            if value is None:
                raise NotFound("block not found")
            return len(value)

    def keys(self) -> Iterator[bytes]:
        with self._txn() as txn, txn.cursor() as cursor:
            keys = list(cursor.iternext(keys=True, values=False))
        yield from keys

    def close(self) -> None:
        self._env.close()
