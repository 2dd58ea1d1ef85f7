"""CAR export/import: round trips, CARv2 reading, and corrupt or truncated files refused."""

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.cid import CID
from blockmesh.data.dag.car import CARV2_PRAGMA, CARError, CARReader, import_car, write_car
from blockmesh.data.dag.importer import ImportOptions, import_bytes
from blockmesh.data.dag.links import walk
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.errors import DecodeError, HashMismatch


def _dag() -> tuple[MemoryBlockstore, CID, bytes]:
    store = MemoryBlockstore()
    entry = import_bytes(bytes(range(256)) * 4096, ImportOptions(chunk_size=65536), store.put)
    out = io.BytesIO()
    write_car(out, [entry.cid], walk(store.get, entry.cid))
    return store, entry.cid, out.getvalue()


def test_round_trip_v1():
    store, root, car = _dag()
    target = MemoryBlockstore()
    roots, count = import_car(io.BytesIO(car), target.put)
    assert roots == [root] and count == len(list(store.keys()))
    assert sorted(target.keys()) == sorted(store.keys())


def test_reads_carv2():
    _, root, v1 = _dag()
    header = struct.pack("<16sQQQ", b"\x00" * 16, 51, len(v1), 0)
    v2 = CARV2_PRAGMA + header + v1
    reader = CARReader(io.BytesIO(v2))
    assert reader.roots == [root]
    assert len(list(reader)) > 1


def test_corrupt_block_is_refused_and_nothing_after_it_is_stored():
    _, _, car = _dag()
    tampered = bytearray(car)
    tampered[-10] ^= 0xFF
    target = MemoryBlockstore()
    with pytest.raises(HashMismatch):
        import_car(io.BytesIO(bytes(tampered)), target.put)


def test_truncated_car():
    _, _, car = _dag()
    with pytest.raises(CARError):
        import_car(io.BytesIO(car[:-7]), MemoryBlockstore().put)
    with pytest.raises(CARError):
        import_car(io.BytesIO(b""), MemoryBlockstore().put)


@given(st.binary(max_size=300))
def test_car_reader_fuzz(raw):
    try:
        reader = CARReader(io.BytesIO(raw))
        list(reader)
    except (DecodeError, HashMismatch):
        pass
