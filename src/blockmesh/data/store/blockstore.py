"""What every block store offers, whatever keeps the bytes.

Blocks are keyed by multihash, not by whole CID, as kubo does: the same bytes addressed as CIDv0
and as CIDv1 dag-pb are one block, so a peer asking with either finds it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from blockmesh.data.cid import CID, Codec


@dataclass(frozen=True)
class StoreStat:
    blocks: int
    bytes: int


class StoreOps:
    """How many operations a store has served, for the daemon's metrics.

    One uncontended lock per call is all a store call pays (tens of nanoseconds beside the
    store's own microseconds); the lock is there because imports write from a worker thread
    while Bitswap stores and serves blocks on the daemon's.
    """

    __slots__ = ("_lock", "deletes", "get_bytes", "gets", "has", "put_bytes", "puts")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.puts = self.put_bytes = self.gets = self.get_bytes = self.has = self.deletes = 0

    def put(self, blocks: int, size: int) -> None:
        with self._lock:
            self.puts += blocks
            self.put_bytes += size

    def get(self, size: int) -> None:
        with self._lock:
            self.gets += 1
            self.get_bytes += size

    def checked(self) -> None:
        with self._lock:
            self.has += 1

    def deleted(self) -> None:
        with self._lock:
            self.deletes += 1


class Blockstore(ABC):
    """put/get/has/delete/size/iterate over blocks; implementations are thread-safe."""

    @property
    def ops(self) -> StoreOps:
        """This store's operation counts (made on first use: engines define their own
        __init__ and need not call ours)."""
        ops: StoreOps | None = self.__dict__.get("_ops")
        if ops is None:  # setdefault is atomic: two threads here end up with one StoreOps
            ops = self.__dict__.setdefault("_ops", StoreOps())
        return ops

    def put(self, cid: CID, data: bytes, *, verify: bool = True) -> None:
        """Store a block. With verify (the default) bytes that do not hash to `cid` are refused."""
        if verify:
            cid.verify(data)
        self._put(cid.multihash, data)
        self.ops.put(1, len(data))

    def put_many(self, blocks: Iterable[tuple[CID, bytes]], *, verify: bool = True) -> None:
        items = []
        size = 0
        for cid, data in blocks:
            if verify:
                cid.verify(data)
            items.append((cid.multihash, data))
            size += len(data)
        self._put_many(items)
        self.ops.put(len(items), size)

    def get(self, cid: CID) -> bytes:
        """The block's bytes; NotFound if absent."""
        data = self._get(cid.multihash)
        self.ops.get(len(data))
        return data

    def has(self, cid: CID) -> bool:
        self.ops.checked()
        return self._has(cid.multihash)

    def delete(self, cid: CID) -> None:
        """Remove a block; NotFound if it was not there."""
        self._delete(cid.multihash)
        self.ops.deleted()

    def size(self, cid: CID) -> int:
        return self._size(cid.multihash)

    def iterate(self) -> Iterator[CID]:
        """Every stored block as a CIDv1 raw CID, the codec-free name kubo also lists them by."""
        for multihash in self.keys():
            yield CID(1, Codec.RAW, multihash)

    def stat(self) -> StoreStat:
        count = total = 0
        for multihash in self.keys():
            count += 1
            total += self._size(multihash)
        return StoreStat(count, total)

    def close(self) -> None:  # noqa: B027 - most engines hold nothing to release
        """Release files and handles."""

    def __enter__(self) -> Blockstore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what an engine implements, keyed by multihash --------------------------------------------
    @abstractmethod
    def _put(self, key: bytes, data: bytes) -> None: ...

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        for key, data in items:
            self._put(key, data)

    @abstractmethod
    def _get(self, key: bytes) -> bytes: ...

    @abstractmethod
    def _has(self, key: bytes) -> bool: ...

    @abstractmethod
    def _delete(self, key: bytes) -> None: ...

    @abstractmethod
    def _size(self, key: bytes) -> int: ...

    @abstractmethod
    def keys(self) -> Iterator[bytes]:
        """Every stored multihash."""


class BatchedPut:
    """A block sink that writes in a few large transactions instead of one per block.

    Used for blocks whose CIDs were just computed from their bytes (imports), so it skips
    re-verification. A full batch is written by a writer thread while the importer hashes the
    next one: SHA-256 and the store's copy both release the GIL, so on two cores an import is
    bound by the slower of the two rather than by their sum (0.75x of kubo's 1 GiB import
    before, docs/benchmarks.md). At most one batch is in flight, so memory stays at two
    batches. A failed write surfaces at the next batch or at flush(); call flush() before
    relying on the blocks being stored. `cids` lists what went in, so that a node can announce
    the new blocks to peers once they are stored.
    """

    def __init__(self, store: Blockstore, max_bytes: int = 8 * 1024 * 1024) -> None:
        self._store = store
        self._max_bytes = max_bytes
        self._pending: list[tuple[CID, bytes]] = []
        self._bytes = 0
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self.cids: list[CID] = []

    def __call__(self, cid: CID, data: bytes) -> None:
        self.cids.append(cid)
        self._pending.append((cid, data))
        self._bytes += len(data)
        if self._bytes >= self._max_bytes:
            self._submit()

    def _submit(self) -> None:
        self._wait()
        if not self._pending:
            return
        batch, self._pending, self._bytes = self._pending, [], 0
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="blockmesh-batched-put")
        self._in_flight = self._writer.submit(self._store.put_many, batch, verify=False)

    def _wait(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()

    def flush(self) -> None:
        """Return once every block handed over so far is stored (or raise the store's error)."""
        try:
            self._submit()
            self._wait()
        finally:
            self.close()

    def close(self) -> None:
        """Wait for the batch being written, if any, and stop the writer; what was not yet
        handed to it is dropped. For a failed import, inside the GC lock, so that no write
        outlives the lock; a write's own error is then not raised (the import's is)."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.exception()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None

    def __enter__(self) -> BatchedPut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
