"""View changes: timeouts, NEW_VIEW construction and validation, the f+1 rule."""

from __future__ import annotations

import itertools

from pbft_cluster import Cluster

from blockmesh.control.consensus.app import encode_set
from blockmesh.control.consensus.messages import sha256, sign_envelope, sign_request
from blockmesh.control.proto import pbft_pb2 as pb


def test_backups_replace_a_crashed_primary_and_commit_in_the_new_view():
    c = Cluster()
    c.down.add("r0")
    c.request("c0", encode_set(b"k", b"v"))
    c.run_for(5.0)
    assert {c.replicas[r].view for r in ("r1", "r2", "r3")} == {1}
    assert not any(c.replicas[r].view_changing for r in ("r1", "r2", "r3"))
    assert c.replicas["r1"].is_primary
    assert c.heights() == {"r1": 1, "r2": 1, "r3": 1}
    assert c.results["c0"] == [b"\x00"]
    new_views = [m for r, m in c.sent if m.type == pb.NEW_VIEW]
    assert [m.node_id for m in new_views] == ["r1"]


def test_a_prepared_batch_survives_the_view_change_with_the_same_digest():
    c = Cluster()
    c.request("c0", encode_set(b"k", b"v"))
    no_view0_commits = lambda src, dst, m: not (m.type == pb.COMMIT and m.view == 0)  # noqa: E731
    c.deliver(keep=no_view0_commits)  # prepared everywhere, committed nowhere
    digest = next(m.digest for _, m in c.sent if m.type == pb.PRE_PREPARE)
    assert c.heights()["r1"] == 0
    c.down.add("r0")
    c.run_for(5.0, keep=no_view0_commits)
    assert c.heights() == {"r1": 1, "r2": 1, "r3": 1}
    reissued = [m for _, m in c.sent if m.type == pb.NEW_VIEW]
    body = pb.NewView.FromString(reissued[0].payload)
    assert [(p.sequence, p.digest) for p in body.pre_prepares] == [(1, digest)]
    assert {len(c.committed[r][0].requests) for r in ("r1", "r2", "r3")} == {1}


def test_timeouts_double_while_view_changes_fail():
    c = Cluster()
    c.down.add("r0")
    c.request("c0", encode_set(b"k", b"v"))
    changes: list[tuple[int, float]] = []
    r2 = c.replicas["r2"]
    t = 0.0
    while t < 40 and len(changes) < 4:
        c.deliver(keep=lambda src, dst, m: m.type != pb.NEW_VIEW)  # no new view ever installs
        t += 0.05
        c.tick(t)
        if r2.view != (changes[-1][0] if changes else 0):
            changes.append((r2.view, t))
    views = [v for v, _ in changes]
    assert views == [1, 2, 3, 4]
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(changes)]
    assert gaps[0] < gaps[1] < gaps[2]
    assert r2.view_changing


def view_change_messages(c: Cluster) -> dict[str, pb.PBFTMessage]:
    """Make r1..r3 time out in view 0 (primary r0 down) and collect their VIEW_CHANGEs."""
    c.down.add("r0")
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver()
    c.tick(c.params.view_change_timeout + 0.1)
    return {m.node_id: m for _, m in c.sent if m.type == pb.VIEW_CHANGE}


def test_f_plus_one_view_changes_pull_a_replica_into_the_higher_view():
    c = Cluster()
    vcs = view_change_messages(c)
    fresh = Cluster()
    fresh.signers, fresh.keys = c.signers, c.keys
    fresh.client_keys, fresh.client_signers = c.client_keys, c.client_signers
    r3 = fresh.boot("r3")
    out = r3.receive(vcs["r1"], 0.0)
    assert r3.view == 0 and not out.send  # f = 1 view change is not enough
    out = r3.receive(vcs["r2"], 0.0)
    assert r3.view == 1 and r3.view_changing
    assert [s.message.type for s in out.send] == [pb.VIEW_CHANGE]


def new_view(c: Cluster, vcs: list[pb.PBFTMessage], pre_prepares: list[pb.PBFTMessage]
             ) -> pb.PBFTMessage:
    body = pb.NewView(view_changes=vcs, pre_prepares=pre_prepares)
    return sign_envelope(c.signers["r1"], pb.NEW_VIEW, 1, 0, b"",
                         body.SerializeToString(deterministic=True))


def test_new_view_without_a_quorum_of_view_changes_is_rejected():
    c = Cluster()
    vcs = view_change_messages(c)
    r2 = c.replicas["r2"]
    msg = new_view(c, [vcs["r1"], vcs["r2"]], [])
    r2.receive(msg, c.now)
    assert r2.drops["invalid_proof"] == 1 and r2.view_changing


def test_new_view_that_drops_a_prepared_batch_is_rejected():
    c = Cluster()
    c.request("c1", encode_set(b"a", b"1"))
    c.deliver(keep=lambda src, dst, m: m.type != pb.COMMIT)  # sequence 1 prepared, not committed
    vcs = view_change_messages(c)
    r2 = c.replicas["r2"]
    assert r2.view_changing and r2.view == 1
    null = pb.PrePrepare(view=1).SerializeToString(deterministic=True)
    lie = sign_envelope(c.signers["r1"], pb.PRE_PREPARE, 1, 1, sha256(null), null)
    r2.receive(new_view(c, [vcs["r1"], vcs["r2"], vcs["r3"]], [lie]), c.now)
    assert r2.drops["invalid_proof"] == 1 and r2.view_changing


def test_view_change_with_a_forged_prepared_certificate_is_rejected():
    c = Cluster()
    vcs = view_change_messages(c)
    req = sign_request(c.client_signers["c0"], 7, b"op")
    payload = pb.PrePrepare(requests=[req]).SerializeToString(deterministic=True)
    pp = sign_envelope(c.signers["r0"], pb.PRE_PREPARE, 0, 1, sha256(payload), payload)
    fake = pb.PreparedCertificate(pre_prepare=pp, prepares=[
        sign_envelope(c.signers["r3"], pb.PREPARE, 0, 1, pp.digest)])  # needs 2f = 2
    body = pb.ViewChange(stable_sequence=0, prepared=[fake])
    vc = sign_envelope(c.signers["r3"], pb.VIEW_CHANGE, 2, 0, b"",
                       body.SerializeToString(deterministic=True))
    r1 = c.replicas["r1"]
    r1.receive(vc, c.now)
    assert r1.drops["invalid_proof"] == 1
    assert vcs  # the honest ones were fine


def test_equivocating_primary_cannot_split_the_backups():
    c = Cluster()
    c.request("c0", encode_set(b"k", b"v"))
    c.request("c1", encode_set(b"k", b"w"))
    twins: set[bytes] = set()

    def equivocate(src, dst, m):
        if (m.type == pb.PRE_PREPARE and src == "r0" and dst == "r1" and m.view == 0
                and m.digest not in twins):
            body = pb.PrePrepare.FromString(m.payload)
            twin = pb.PrePrepare(requests=list(body.requests)[1:], view=0)
            payload = twin.SerializeToString(deterministic=True)
            twins.add(sha256(payload))
            c.queue.appendleft(("r0", dst, sign_envelope(c.signers["r0"], pb.PRE_PREPARE, 0,
                                                         m.sequence, sha256(payload), payload)))
            return False
        return True

    c.deliver(keep=equivocate)
    assert c.replicas["r1"].drops["conflicting"] >= 1 or twins
    c.run_for(6.0, keep=equivocate)
    heights = c.heights()
    assert len(set(heights.values())) == 1 and heights["r1"] >= 1
    hashes = {c.committed[r][0].hash for r in c.nodes}
    assert len(hashes) == 1
    assert sorted(len(c.results[x]) for x in ("c0", "c1")) == [1, 1]


def test_a_replica_past_a_view_still_relays_the_new_view_that_installed_it():
    """Seeds 4249 and 8029 of the simulation: with one replica silent, r1 alone installed
    view 1 (the others lost its NEW_VIEW and its VIEW_CHANGE) and then timed out towards view 2.
    r0 and r2, two VIEW_CHANGEs short of a quorum for view 1 and one replica short of f+1 for
    view 2, waited for good unless r1 still answers them with the NEW_VIEW of view 1."""
    c = Cluster()
    c.down.add("r3")
    c.request("c0", encode_set(b"k", b"v"))
    lost = lambda src, dst, m: not (  # noqa: E731
        (m.type == pb.PRE_PREPARE and m.view == 0) or m.type == pb.NEW_VIEW
        or (m.type == pb.VIEW_CHANGE and src == "r1" and m.view == 1))
    while c.replicas["r1"].view < 2:
        c.run_for(0.25, keep=lost)
    assert [(c.replicas[r].view, c.replicas[r].view_changing) for r in ("r0", "r2")] == [
        (1, True), (1, True)]
    c.run_for(20.0)
    assert {(c.replicas[r].view, c.replicas[r].view_changing) for r in ("r0", "r1", "r2")} == {
        (2, False)}
    assert c.results["c0"] == [b"\x00"]



def test_the_timeout_stays_backed_off_until_a_checkpoint_interval_shows_it_has_room():
    """A slow cluster must not snap back to the base timeout on its first execution in a new
    view: that made every slow round a view change (view_timer.py)."""
    c = Cluster()
    base = c.params.view_change_timeout
    c.down.add("r0")
    c.request("c0", encode_set(b"k", b"v"))
    c.run_for(5.0)
    r2 = c.replicas["r2"]
    assert r2.view == 1 and c.results["c0"] == [b"\x00"]
    assert r2._timeout() == 2 * base  # it executed in view 1 and is still backed off
    # A slow round: the primary gets the request 1.5 base timeouts after the backups.
    env = c.request("c1", encode_set(b"slow", b"1"), to=["r2", "r3"])
    c.run_for(1.5 * base)
    c.queue.append(("c1", "r1", env))
    c.run_for(1.0)
    assert c.results["c1"] == [b"\x00"]
    assert {c.replicas[r].view for r in ("r1", "r2", "r3")} == {1}
    # Quick rounds: after a checkpoint interval without a slow one, the base timeout is back.
    for i in range(3 * c.params.checkpoint_interval):
        c.request("c0", encode_set(b"quick", str(i).encode()))
        c.run_for(0.25)
    assert len(c.results["c0"]) == 1 + 3 * c.params.checkpoint_interval
    assert r2._timeout() == base
