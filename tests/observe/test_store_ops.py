"""The blockstore's operation counts behind `blockmesh_blockstore_operations_total`."""

from __future__ import annotations

import threading

import pytest

from blockmesh.data.cid import CID, Codec
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.errors import NotFound


def block(n: int) -> tuple[CID, bytes]:
    data = f"block {n}".encode()
    return CID.of(data, Codec.RAW), data


def test_each_call_is_counted_with_its_bytes() -> None:
    store = MemoryBlockstore()
    (c1, d1), (c2, d2), (c3, d3) = block(1), block(2), block(3)
    store.put(c1, d1)
    store.put_many([(c2, d2), (c3, d3)])
    assert store.get(c2) == d2
    assert store.has(c3) and not store.has(block(4)[0])
    store.delete(c1)
    with pytest.raises(NotFound):
        store.get(c1)
    ops = store.ops
    assert (ops.puts, ops.put_bytes) == (3, len(d1) + len(d2) + len(d3))
    assert (ops.gets, ops.get_bytes) == (1, len(d2))  # the failed get moved nothing
    assert (ops.has, ops.deletes) == (2, 1)


def test_counts_from_several_threads_add_up() -> None:
    store = MemoryBlockstore()
    cid, data = block(0)
    store.put(cid, data)

    def work() -> None:
        for _ in range(2000):
            store.get(cid)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert store.ops.gets == 8000
