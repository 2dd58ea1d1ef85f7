"""A dict-backed block store for tests and for `add --only-hash`-style dry runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from blockmesh.data.store.blockstore import Blockstore
from blockmesh.errors import NotFound


class MemoryBlockstore(Blockstore):
    def __init__(self) -> None:
        self._blocks: dict[bytes, bytes] = {}
        self._lock = threading.Lock()

    def _put(self, key: bytes, data: bytes) -> None:
        with self._lock:
            self._blocks[key] = bytes(data)

    def _get(self, key: bytes) -> bytes:
        try:
            return self._blocks[key]
        except KeyError:
            raise NotFound("block not found") from None

    def _has(self, key: bytes) -> bool:
        return key in self._blocks

    def _delete(self, key: bytes) -> None:
        with self._lock:
            if self._blocks.pop(key, None) is None:
                raise NotFound("block not found")

    def _size(self, key: bytes) -> int:
        return len(self._get(key))

    def keys(self) -> Iterator[bytes]:
        with self._lock:
            snapshot = list(self._blocks)
        yield from snapshot
