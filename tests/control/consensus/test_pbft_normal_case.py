"""Normal-case PBFT phases on real engines, one message at a time."""

from __future__ import annotations

from dataclasses import replace

from pbft_cluster import UNIT_PARAMS, Cluster

from blockmesh.control.consensus.app import decode_result, encode_get, encode_set
from blockmesh.control.consensus.blocks import verify_chain
from blockmesh.control.consensus.messages import ZERO_HASH, sha256
from blockmesh.control.proto import pbft_pb2 as pb


def kinds(cluster: Cluster, kind: int) -> list[tuple[str, pb.PBFTMessage]]:
    return [(r, m) for r, m in cluster.sent if m.type == kind]


def test_request_goes_through_three_phases_and_is_answered():
    c = Cluster()
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver()
    assert [r for r, _ in kinds(c, pb.PRE_PREPARE)] == ["r0"]
    assert sorted(r for r, _ in kinds(c, pb.PREPARE)) == ["r1", "r2", "r3"]
    assert sorted(r for r, _ in kinds(c, pb.COMMIT)) == ["r0", "r1", "r2", "r3"]
    assert c.heights() == {"r0": 1, "r1": 1, "r2": 1, "r3": 1}
    assert c.results["c0"] == [b"\x00"]
    blocks = {r: c.committed[r][0] for r in c.nodes}
    assert len({b.hash for b in blocks.values()}) == 1
    block = blocks["r0"]
    assert block.height == block.sequence == 1 and block.prev_hash == ZERO_HASH
    verify_chain([block], 0, ZERO_HASH)
    assert len(c.replies["c0"]) == 4  # every replica answers; the client needed f+1 = 2
    status = c.replicas["r2"].status()
    assert (status.node_id, status.view, status.primary, status.height) == ("r2", 0, "r0", 1)
    assert status.head_hash == block.hash and not status.view_changing


def test_backup_prepares_only_after_a_pre_prepare_and_commits_after_2f_prepares():
    c = Cluster()
    c.request("c0", encode_set(b"k", b"v"), to=["r0"])
    c.deliver(keep=lambda src, dst, m: m.type in (pb.REQUEST, pb.PRE_PREPARE))
    backup = c.replicas["r1"]
    prepares = {r: m for r, m in kinds(c, pb.PREPARE)}
    assert set(prepares) == {"r1", "r2", "r3"}
    assert not kinds(c, pb.COMMIT)
    # r1 has its own prepare; one more from another backup makes 2f = 2 -> prepared -> commit
    out = backup.receive(prepares["r2"], c.now)
    commits = [s.message for s in out.send if s.message.type == pb.COMMIT]
    assert len(commits) == 1 and commits[0].digest == prepares["r2"].digest
    # the prepared certificate and the commit are persisted in the same output, before sending
    assert any(type(r).__name__ == "SavePrepared" for r in out.persist)
    # commits: own + one more is not enough (2f+1 = 3)
    other_commit = c.replicas["r2"].receive(prepares["r1"], c.now).send[0].message
    assert not backup.receive(other_commit, c.now).committed
    third = c.replicas["r3"].receive(prepares["r1"], c.now).send[0].message
    assert backup.receive(third, c.now).committed[0].height == 1


def test_prepares_from_the_primary_do_not_count():
    c = Cluster()
    primary = c.replicas["r0"]
    forged_prepare = primary._sign(pb.PREPARE, 0, 1, sha256(b"x"))
    c.replicas["r1"].receive(forged_prepare, 0.0)
    assert c.replicas["r1"].drops["wrong_sender"] == 1


def test_duplicate_request_is_answered_from_cache_not_executed_twice():
    c = Cluster()
    env = c.request("c0", encode_set(b"k", b"v"))
    c.deliver()
    executed_before = [len(c.committed[r]) for r in c.nodes]
    for r in c.nodes:
        c.queue.append(("c0", r, env))
    c.replies["c0"].clear()
    c.deliver()
    assert [len(c.committed[r]) for r in c.nodes] == executed_before
    assert len(c.replies["c0"]) == 4
    assert c.replicas["r1"].drops["duplicate"] == 0
    assert all(len(app) == 1 for app in c.apps.values())


def test_key_value_results_are_checked_by_the_client():
    c = Cluster()
    c.request("c0", encode_set(b"colour", b"blue"))
    c.deliver()
    c.request("c0", encode_get(b"colour"))
    c.deliver()
    assert decode_result(c.results["c0"][1]).value == b"blue"
    c.request("c1", encode_get(b"missing"))
    c.deliver()
    assert not decode_result(c.results["c1"][0]).ok


def test_primary_batches_up_to_max_batch_size():
    c = Cluster(params=replace(UNIT_PARAMS, max_batch_size=2, max_batch_delay=0.5), clients=3)
    for client in ("c0", "c1", "c2"):
        c.request(client, encode_set(client.encode(), b"x"))
    c.deliver()
    sizes = [len(pb.PrePrepare.FromString(m.payload).requests) for _, m in kinds(c, pb.PRE_PREPARE)]
    assert sizes == [2]  # the third waits for the batch delay
    c.tick(0.6)
    c.deliver()
    sizes = [len(pb.PrePrepare.FromString(m.payload).requests) for _, m in kinds(c, pb.PRE_PREPARE)]
    assert sizes == [2, 1]
    assert c.heights()["r3"] == 2
    assert all(len(c.results[x]) == 1 for x in ("c0", "c1", "c2"))


def test_execution_is_strictly_in_sequence_order():
    c = Cluster(clients=2)
    c.request("c0", encode_set(b"a", b"1"))
    c.request("c1", encode_set(b"b", b"2"))
    held = []

    def hold_seq1_commits_to_r3(src, dst, m):
        if dst == "r3" and m.type == pb.COMMIT and m.sequence == 1:
            held.append((src, dst, m))
            return False
        return True

    c.deliver(keep=hold_seq1_commits_to_r3)
    r3 = c.replicas["r3"]
    assert r3.height == 0  # sequence 2 is committed but waits for 1
    c.queue.extend(held)
    c.deliver()
    assert [b.sequence for b in c.committed["r3"]] == [1, 2]
    assert c.committed["r3"][1].prev_hash == c.committed["r3"][0].hash


def test_single_replica_cluster_commits_alone():
    c = Cluster(n=1)
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver()
    assert c.heights() == {"r0": 1}
    assert c.results["c0"] == [b"\x00"]
