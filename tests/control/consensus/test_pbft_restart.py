"""Restart from the SQLite store: same chain, same votes, no contradiction of what was sent."""

from __future__ import annotations

from pathlib import Path

from pbft_cluster import Cluster

from blockmesh.control.consensus import SqliteStore
from blockmesh.control.consensus.app import encode_set
from blockmesh.control.consensus.messages import sha256, sign_envelope, sign_request
from blockmesh.control.proto import pbft_pb2 as pb


def sqlite_cluster(tmp_path: Path) -> Cluster:
    nodes = [f"r{i}" for i in range(4)]
    return Cluster(stores={r: SqliteStore(tmp_path / f"{r}.db") for r in nodes})


def restart(c: Cluster, r: str, path: Path):
    """What a SIGKILL and a new process do: drop all memory, reopen the file, recover."""
    c.stores[r].close()
    c.stores[r] = SqliteStore(path / f"{r}.db")
    replica = c.boot(r, recover=True)
    c.apply(r, replica.start(c.now))
    return replica


def test_restarted_replica_has_the_same_chain_and_application_state(tmp_path):
    c = sqlite_cluster(tmp_path)
    for i in range(5):
        c.request(f"c{i % 2}", encode_set(f"k{i}".encode(), str(i).encode()))
        c.deliver()
    before = (c.replicas["r2"].height, c.replicas["r2"].head_hash, c.apps["r2"].state_digest(),
              c.replicas["r2"].low_watermark)
    r2 = restart(c, "r2", tmp_path)
    assert (r2.height, r2.head_hash, c.apps["r2"].state_digest(), r2.low_watermark) == before
    c.deliver()
    c.request("c0", encode_set(b"after", b"restart"))
    c.deliver()
    assert c.heights() == {r: 6 for r in c.nodes}


def test_restarted_backup_never_votes_for_a_conflicting_batch(tmp_path):
    c = sqlite_cluster(tmp_path)
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver(keep=lambda src, dst, m: m.type not in (pb.COMMIT,))
    voted = next(m for r, m in c.sent if r == "r2" and m.type == pb.PREPARE)
    r2 = restart(c, "r2", tmp_path)
    resent = [m for r, m in c.sent[-10:] if r == "r2" and m.type == pb.PREPARE]
    assert resent and all(m.digest == voted.digest for m in resent)
    # the (Byzantine) primary now offers another batch for the same view and sequence
    req = sign_request(c.client_signers["c1"], 1, b"other")
    payload = pb.PrePrepare(requests=[req], view=0).SerializeToString(deterministic=True)
    other = sign_envelope(c.signers["r0"], pb.PRE_PREPARE, 0, 1, sha256(payload), payload)
    out = r2.receive(other, c.now)
    assert r2.drops["conflicting"] == 1
    assert not [s for s in out.send if s.message.type == pb.PREPARE]
    c.run_for(2.0)
    assert c.heights() == {r: 1 for r in c.nodes}
    assert c.committed["r0"][0].hash == c.replicas["r2"].head_hash


def test_restarted_primary_does_not_reuse_a_sequence_it_proposed(tmp_path):
    c = sqlite_cluster(tmp_path)
    c.request("c0", encode_set(b"a", b"1"), to=["r0"])
    # r0 proposes sequence 1 (persisted first), then dies before anyone receives it
    c.deliver(keep=lambda src, dst, m: m.type == pb.REQUEST)
    r0 = restart(c, "r0", tmp_path)
    c.queue.clear()
    c.request("c1", encode_set(b"b", b"2"), to=["r0"])
    c.deliver(keep=lambda src, dst, m: m.type == pb.REQUEST)
    fresh = [m for r, m in c.sent if r == "r0" and m.type == pb.PRE_PREPARE]
    assert [m.sequence for m in fresh] == [1, 1, 2]  # the original, its retransmission, the new
    assert fresh[0].digest == fresh[1].digest
    assert r0.is_primary


def test_restart_in_the_middle_of_a_view_change(tmp_path):
    c = sqlite_cluster(tmp_path)
    c.down.add("r0")
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver()
    c.tick(c.params.view_change_timeout + 0.1)
    own_vc = next(m for r, m in c.sent if r == "r3" and m.type == pb.VIEW_CHANGE)
    c.queue.clear()
    r3 = restart(c, "r3", tmp_path)
    assert r3.view == 1 and r3.view_changing
    again = [m for r, m in c.sent[-5:] if r == "r3" and m.type == pb.VIEW_CHANGE]
    assert again and again[0].SerializeToString() == own_vc.SerializeToString()
    c.run_for(6.0)
    assert {c.replicas[r].view for r in ("r1", "r2", "r3")} == {1}
    assert c.heights() == {"r1": 1, "r2": 1, "r3": 1}


def test_restarted_replica_joins_the_current_view_without_a_view_change(tmp_path):
    c = sqlite_cluster(tmp_path)
    c.request("c0", encode_set(b"a", b"1"))
    c.deliver()
    assert c.heights() == {r: 1 for r in c.nodes}
    c.stores["r3"].close()
    c.down.add("r3")
    # Two view changes while r3 is down: the primaries of views 0 and 1 lose their batches.
    for view in (0, 1):
        c.request("c1", encode_set(b"b", str(view).encode()))
        silenced = lambda src, dst, m, v=view: not (m.type == pb.PRE_PREPARE  # noqa: E731
                                                    and m.view == v)
        while c.replicas["r1"].view == view or c.replicas["r1"].view_changing:
            c.run_for(0.5, keep=silenced)
    assert {c.replicas[r].view for r in ("r0", "r1", "r2")} == {2}
    c.run_for(1.0)
    assert c.results["c1"] == [b"\x00", b"\x00"]
    formed = sum(1 for _, m in c.sent if m.type == pb.NEW_VIEW)

    r3 = restart(c, "r3", tmp_path)
    assert r3.view == 0
    c.request("c0", encode_set(b"c", b"3"))
    # Well inside r3's request timer: it learns view 2 from the others' votes, not by timing out.
    c.run_for(c.params.view_change_timeout / 2)
    assert r3.view == 2 and not r3.view_changing
    assert r3.drops["invalid_proof"] == 0
    c.run_for(1.0)
    assert {c.replicas[r].view for r in c.nodes} == {2}
    new_views = [m for _, m in c.sent if m.type == pb.NEW_VIEW]
    assert {m.view for m in new_views} == {1, 2}
    assert {m.view for m in new_views[formed:]} == {2}  # view 2's, relayed to r3
    assert c.results["c0"] == [b"\x00", b"\x00"]
    assert len(set(c.heights().values())) == 1


def test_the_new_view_of_the_last_installed_view_survives_a_restart(tmp_path):
    """As test_a_replica_past_a_view_still_relays_the_new_view_that_installed_it, with r1
    restarted after it left view 1: its store still gives it view 1's NEW_VIEW to relay."""
    c = sqlite_cluster(tmp_path)
    c.down.add("r3")
    c.request("c0", encode_set(b"k", b"v"))
    lost = lambda src, dst, m: not (  # noqa: E731
        (m.type == pb.PRE_PREPARE and m.view == 0) or m.type == pb.NEW_VIEW
        or (m.type == pb.VIEW_CHANGE and src == "r1" and m.view == 1))
    while c.replicas["r1"].view < 2:
        c.run_for(0.25, keep=lost)
    r1 = restart(c, "r1", tmp_path)
    assert (r1.view, r1.view_changing) == (2, True)
    c.run_for(20.0)
    assert {(c.replicas[r].view, c.replicas[r].view_changing) for r in ("r0", "r1", "r2")} == {
        (2, False)}
    assert c.results["c0"] == [b"\x00"]
