"""Both consensus stores honour one contract: transactional records, GC, StateProvider reads."""

from __future__ import annotations

import sqlite3

import pytest

from blockmesh.control.consensus import (
    MemoryStore,
    SaveBlock,
    SaveCheckpoint,
    SaveMessage,
    SavePrepared,
    SaveView,
    SqliteStore,
)
from blockmesh.control.consensus.blocks import make_block
from blockmesh.control.consensus.messages import ZERO_HASH
from blockmesh.control.consensus.store import StoreOwnerMismatch
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import DecodeError


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
    else:
        s = SqliteStore(tmp_path / "c.db")
        yield s
        s.close()


def chain(count: int) -> list[pb.Block]:
    blocks, prev = [], ZERO_HASH
    for h in range(1, count + 1):
        blocks.append(make_block(h, prev, 0, [], []))
        prev = blocks[-1].hash
    return blocks


def msg(kind: int, view: int, seq: int, node: str = "r1") -> pb.PBFTMessage:
    return pb.PBFTMessage(type=kind, view=view, sequence=seq, node_id=node, digest=bytes(32))


def test_records_come_back_from_load(store):
    blocks = chain(3)
    store.apply([SaveBlock(b) for b in blocks])
    store.apply([SaveView(2, True), SaveMessage(msg(pb.PREPARE, 2, 3)),
                 SaveMessage(msg(pb.VIEW_CHANGE, 2, 0)),
                 SavePrepared(3, pb.PreparedCertificate(pre_prepare=msg(pb.PRE_PREPARE, 2, 3)))])
    state = store.load()
    assert (state.view, state.view_changing) == (2, True)
    assert sorted((m.type, m.sequence) for m in state.messages) == [
        (pb.PREPARE, 3), (pb.VIEW_CHANGE, 0)]
    assert [seq for seq, _ in state.prepared] == [3]
    assert [b.hash for b in state.blocks] == [b.hash for b in blocks]
    assert state.checkpoint is None


def test_stable_checkpoint_collects_the_log_below_it(store):
    store.apply([SaveBlock(b) for b in chain(4)])
    store.apply([SaveMessage(msg(pb.COMMIT, 0, s)) for s in (1, 2, 3, 4)]
                + [SavePrepared(s, pb.PreparedCertificate()) for s in (2, 4)])
    cert = pb.CheckpointCertificate(sequence=2, state_digest=bytes(32))
    store.apply([SaveCheckpoint(cert)])
    state = store.load()
    assert sorted(m.sequence for m in state.messages) == [3, 4]
    assert [seq for seq, _ in state.prepared] == [4]
    assert state.checkpoint.sequence == 2


def test_a_new_view_collects_older_view_changes_but_keeps_the_newest_new_view(store):
    store.apply([SaveMessage(msg(pb.VIEW_CHANGE, 1, 0)), SaveMessage(msg(pb.NEW_VIEW, 1, 0))])
    store.apply([SaveView(2, True), SaveMessage(msg(pb.VIEW_CHANGE, 2, 0))])
    assert sorted((m.type, m.view) for m in store.load().messages) == [
        (pb.VIEW_CHANGE, 2), (pb.NEW_VIEW, 1)]
    store.apply([SaveMessage(msg(pb.NEW_VIEW, 2, 0)), SaveView(2, False)])
    store.apply([SaveView(3, True)])
    assert [(m.type, m.view) for m in store.load().messages] == [(pb.NEW_VIEW, 2)]


def test_state_provider_reads(store):
    store.apply([SaveBlock(b) for b in chain(6)])
    store.apply([SaveCheckpoint(pb.CheckpointCertificate(sequence=s)) for s in (2, 4)])
    assert [b.height for b in store.blocks_from_height(3, 2)] == [3, 4]
    assert [b.height for b in store.blocks_from_height(5, 100)] == [5, 6]
    assert store.blocks_from_height(7, 10) == []
    assert [c.sequence for c in store.checkpoints()] == [2, 4]
    assert store.checkpoint(0).sequence == 4
    assert store.checkpoint(2).sequence == 2
    assert store.checkpoint(3) is None
    assert store.height() == 6


def test_blocks_must_extend_the_stored_chain(store):
    store.apply([SaveBlock(b) for b in chain(2)])
    with pytest.raises(DecodeError):
        store.apply([SaveBlock(chain(4)[3])])


def test_sqlite_store_is_in_wal_mode_and_atomic(tmp_path):
    path = tmp_path / "c.db"
    store = SqliteStore(path)
    blocks = chain(3)
    with pytest.raises(DecodeError):  # the third record fails: none of them may stay
        store.apply([SaveBlock(blocks[0]), SaveView(5, False), SaveBlock(blocks[2])])
    assert store.height() == 0 and store.load().view == 0
    store.apply([SaveBlock(blocks[0])])
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    reopened = SqliteStore(path)
    assert reopened.height() == 1
    reopened.close()


def test_sqlite_store_rejects_corrupt_rows(tmp_path):
    path = tmp_path / "c.db"
    store = SqliteStore(path)
    store.apply([SaveBlock(chain(1)[0])])
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE blocks SET data = ?", (b"\xff\xff\xff",))
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    with pytest.raises(DecodeError):
        store.blocks_from_height(1, 1)
    store.close()


def test_a_store_serves_only_the_identity_that_claimed_it(tmp_path):
    store = SqliteStore(tmp_path / "s.sqlite")
    store.claim("node0", b"\x01" * 32)
    store.apply([SaveBlock(chain(1)[0])])
    store.claim("node0", b"\x01" * 32)  # the owner again: fine
    for node, key in (("node0", b"\x02" * 32), ("node1", b"\x01" * 32)):
        with pytest.raises(StoreOwnerMismatch, match="belongs to node0"):
            store.claim(node, key)
    store.close()
    reopened = SqliteStore(tmp_path / "s.sqlite")
    with pytest.raises(StoreOwnerMismatch):
        reopened.claim("node0", b"\x02" * 32)
    assert reopened.height() == 1
    reopened.close()
