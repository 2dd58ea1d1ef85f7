"""Retransmission sends executed sequences only to the replicas that lack them.

Broadcasting the whole log since the last stable checkpoint whenever progress paused queued
hundreds of messages per peer ahead of the VIEW_CHANGE that had to go out next (over gRPC,
each one a stream write). These tests pin down who gets what.
"""

from __future__ import annotations

from pbft_cluster import Cluster

from blockmesh.control.consensus.app import encode_set
from blockmesh.control.proto import pbft_pb2 as pb

VOTES = (pb.PRE_PREPARE, pb.PREPARE, pb.COMMIT)


def commit_one(c: Cluster, key: bytes, keep=None) -> None:
    c.request("c0", encode_set(key, b"v"))
    c.deliver(keep)


def deliveries(c: Cluster, seconds: float) -> list[tuple[str, str, int, int]]:
    """(src, dst, type, sequence) of every replica-to-replica message delivered meanwhile."""
    seen: list[tuple[str, str, int, int]] = []

    def note(src: str, dst: str, msg: pb.PBFTMessage) -> bool:
        if src in c.nodes and dst in c.nodes:
            seen.append((src, dst, msg.type, msg.sequence))
        return True

    c.run_for(seconds, keep=note)
    return seen


def test_an_idle_cluster_that_agrees_sends_no_votes_again():
    c = Cluster()
    commit_one(c, b"a")
    assert c.heights() == {r: 1 for r in c.nodes}
    resent = [d for d in deliveries(c, 5.0) if d[2] in VOTES]
    assert resent == []


def test_a_replica_that_missed_a_whole_sequence_alone_gets_it_again():
    c = Cluster()
    commit_one(c, b"a", keep=lambda src, dst, m: "r3" not in (src, dst))
    assert c.heights() == {"r0": 1, "r1": 1, "r2": 1, "r3": 0}
    resent = [d for d in deliveries(c, 3.0) if d[2] in VOTES]
    assert c.heights()["r3"] == 1
    assert resent and {dst for src, dst, _, _ in resent if src != "r3"} == {"r3"}


def test_a_replica_missing_commits_asks_by_voting_again_and_is_answered():
    c = Cluster()
    commit_one(c, b"a", keep=lambda src, dst, m: not (dst == "r3" and m.type == pb.COMMIT))
    assert c.heights() == {"r0": 1, "r1": 1, "r2": 1, "r3": 0}
    assert all(c.replicas[r].drops["late"] >= 1 for r in ("r0", "r1", "r2"))  # r3's COMMIT
    resent = deliveries(c, 3.0)
    assert c.heights()["r3"] == 1
    answers = [(src, dst) for src, dst, kind, _ in resent if kind == pb.COMMIT and src != "r3"]
    assert answers and all(dst == "r3" for _, dst in answers)
