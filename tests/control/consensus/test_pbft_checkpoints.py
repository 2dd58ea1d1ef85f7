"""Checkpoints, log garbage collection, watermarks, and state transfer of a lagging replica."""

from __future__ import annotations

from pbft_cluster import Cluster

from blockmesh.control.consensus.app import encode_set
from blockmesh.control.consensus.blocks import block_hash
from blockmesh.control.consensus.messages import sign_envelope
from blockmesh.control.proto import pbft_pb2 as pb


def commit_requests(c: Cluster, count: int, keep=None) -> None:
    for i in range(count):
        client = f"c{i % len(c.clients)}"
        c.request(client, encode_set(f"k{i}".encode(), b"v"))
        c.deliver(keep)


def test_checkpoint_becomes_stable_with_2f_plus_1_and_the_log_is_collected():
    c = Cluster()  # checkpoint every 2, window 4
    commit_requests(c, 3)
    for r in c.nodes:
        rep = c.replicas[r]
        cert = rep.stable_checkpoint
        assert cert is not None and cert.sequence == 2
        assert cert.state_digest == c.committed[r][1].hash
        assert len({m.node_id for m in cert.proof}) == 3
        assert rep.low_watermark == 2 and rep.high_watermark == 6
        assert all(seq > 2 for seq in rep.log_sequences())
        assert [x.sequence for x in c.stores[r].checkpoints()] == [2]
    checkpoints = [m for _, m in c.sent if m.type == pb.CHECKPOINT]
    assert sorted(m.node_id for m in checkpoints) == c.nodes


def test_watermarks_move_only_on_stable_checkpoints():
    c = Cluster()
    no_checkpoints = lambda src, dst, m: m.type != pb.CHECKPOINT  # noqa: E731
    commit_requests(c, 5, keep=no_checkpoints)
    primary = c.replicas["r0"]
    assert primary.low_watermark == 0 and primary.height == 4  # window (0, 4] is full
    assert primary.pending_requests == 1
    assert primary.stable_checkpoint is None
    c.run_for(3.0)  # checkpoints are retransmitted and now delivered
    assert primary.low_watermark == 4
    assert c.heights() == {r: 5 for r in c.nodes}


def test_f_plus_one_matching_checkpoints_are_not_enough():
    c = Cluster()
    only_r0_r1 = lambda src, dst, m: m.type != pb.CHECKPOINT or src in ("r0", "r1")  # noqa: E731
    commit_requests(c, 2, keep=only_r0_r1)
    assert c.replicas["r2"].stable_checkpoint is not None  # own + r0 + r1 = 3: stable
    assert c.replicas["r0"].stable_checkpoint is None  # own + r1 = 2: not stable
    assert c.replicas["r0"].low_watermark == 0


def test_checkpoint_at_a_sequence_that_is_not_a_multiple_of_the_interval():
    c = Cluster()
    body = pb.Checkpoint(height=3, state_digest=bytes(32)).SerializeToString()
    msg = sign_envelope(c.signers["r2"], pb.CHECKPOINT, 0, 3, bytes(32), body)
    c.replicas["r1"].receive(msg, 0.0)
    assert c.replicas["r1"].drops["malformed"] == 1


def isolate(c: Cluster, victim: str, count: int) -> None:
    cut_off = lambda src, dst, m: victim not in (src, dst)  # noqa: E731
    commit_requests(c, count, keep=cut_off)


def test_a_replica_that_missed_many_checkpoints_catches_up_by_state_transfer():
    c = Cluster()
    isolate(c, "r3", 11)  # five checkpoints (2, 4, 6, 8, 10) without r3
    r3 = c.replicas["r3"]
    assert r3.height == 0 and c.replicas["r0"].height == 11
    c.run_for(4.0)
    assert "r3" not in c.fetches  # served
    assert r3.height >= 10
    assert r3.stable_checkpoint is not None and r3.stable_checkpoint.sequence == 10
    assert c.apps["r3"].state_digest() == c.apps["r0"].state_digest() or r3.height < 11
    c.run_for(6.0)
    assert c.heights() == {r: 11 for r in c.nodes}
    assert c.apps["r3"].state_digest() == c.apps["r0"].state_digest()
    assert [b.hash for b in c.committed["r3"]] == [b.hash for b in c.committed["r0"]]
    commit_requests(c, 1)  # and it takes part again
    assert c.heights() == {r: 12 for r in c.nodes}


def lagging_with_fetch(c: Cluster):
    isolate(c, "r3", 5)
    r3 = c.replicas["r3"]
    for _ in range(20):
        c.deliver()
        c.tick(c.now + 0.25)
        if "r3" in c.fetches:
            return r3, c.fetches.pop("r3")
    raise AssertionError("r3 never asked for a state transfer")


def test_state_transfer_rejects_blocks_that_break_the_hash_chain():
    c = Cluster()
    r3, fetch = lagging_with_fetch(c)
    blocks = c.stores["r0"].blocks_from_height(fetch.from_height, 100)
    forged = pb.Block()
    forged.CopyFrom(blocks[1])
    forged.results[0] = b"\x00evil"
    forged.hash = block_hash(forged)
    out = r3.on_state_fetched([blocks[0], forged, *blocks[2:]], c.stores["r0"].checkpoints(),
                              c.now)
    assert r3.drops["bad_state"] == 1 and r3.height == 0
    assert out.fetch is not None  # it asks again (the runtime should try another peer)


def test_state_transfer_needs_a_certificate_with_2f_plus_1_valid_signatures():
    c = Cluster()
    r3, _ = lagging_with_fetch(c)
    r3._transfer.target = None  # forget what the checkpoints told it; trust only the answer
    blocks = c.stores["r0"].blocks_from_height(1, 100)
    cert = pb.CheckpointCertificate()
    cert.CopyFrom(c.stores["r0"].checkpoint())
    del cert.proof[1:]  # one signature only
    r3.on_state_fetched(blocks, [cert], c.now)
    assert r3.drops["invalid_proof"] == 1 and r3.height == 0
    good = c.stores["r0"].checkpoint()
    r3.on_state_fetched(blocks, [good], c.now)
    assert r3.height == good.sequence


def test_state_provider_views_of_the_store():
    c = Cluster()
    commit_requests(c, 5)
    store = c.stores["r1"]
    assert [b.height for b in store.blocks_from_height(2, 2)] == [2, 3]
    assert [x.sequence for x in store.checkpoints()] == [2, 4]
    assert store.checkpoint(2).sequence == 2 and store.checkpoint(0).sequence == 4
    assert store.checkpoint(3) is None
    assert store.height() == 5
