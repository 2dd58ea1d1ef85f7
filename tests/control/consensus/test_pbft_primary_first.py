"""Requests to the primary first (Castro & Liskov): backups learn a request from the
PRE_PREPARE; a retransmission goes to every replica, whose timers then depose a primary that
drops it. Watches (what backups get instead, to answer on) are the client's own."""

from __future__ import annotations

from pbft_cluster import Cluster
from test_pbft_authenticators import _mac_only, _mac_only_cluster

from blockmesh.control.consensus.app import encode_set
from blockmesh.control.consensus.authenticators import check_watch, watch_envelope
from blockmesh.control.consensus.messages import request_envelope
from blockmesh.control.proto import pbft_pb2 as pb


def _to_recipients(c: Cluster, client: str, operation: bytes) -> pb.PBFTMessage:
    env = c.clients[client].request(operation, c.now)
    for r in c.clients[client].recipients():
        c.queue.append((client, r, env))
    return env


def test_client_sends_to_the_primary_then_to_everyone_and_follows_the_view():
    c = Cluster()
    client = c.clients["c0"]
    _to_recipients(c, "c0", encode_set(b"k", b"v"))
    assert client.recipients() == ("r0",)
    assert client.tick(c.now + 10) is not None
    assert client.recipients() == tuple(c.nodes)
    c.queue.clear()
    # A reply quorum from view 1 moves the next request to view 1's primary.
    c2 = Cluster()
    c2.clients["c0"] = client
    env = client.tick(c.now + 20)
    for r in c.nodes:
        c2.replicas[r].view = 1
        c2.queue.append(("c0", r, env))
    c2.deliver()
    assert c2.results["c0"]
    client.request(encode_set(b"k", b"w"), c.now)
    assert client.recipients() == ("r1",)


def test_backups_commit_a_request_they_only_saw_in_the_pre_prepare():
    c = Cluster()
    _to_recipients(c, "c0", encode_set(b"k", b"v"))
    got: list[str] = []
    c.deliver(keep=lambda src, dst, m: m.type != pb.REQUEST or not got.append(dst))
    assert got == ["r0"]
    assert c.heights() == dict.fromkeys(c.nodes, 1)
    assert c.results["c0"] == [b"\x00"]
    assert all(c.replicas[r].pending_requests == 0 for r in c.nodes)


def test_a_primary_that_drops_the_request_is_deposed_after_the_retransmission():
    c = Cluster()
    _to_recipients(c, "c0", encode_set(b"k", b"v"))
    c.queue.clear()  # the primary "loses" it; the backups never heard of it
    c.run_for(c.params.view_change_timeout * 3)
    assert all(c.replicas[r].view == 0 for r in c.nodes)  # nobody can suspect anything yet
    env = c.clients["c0"].tick(c.now + 10)
    assert env is not None and c.clients["c0"].recipients() == tuple(c.nodes)
    for r in c.nodes:
        if r != "r0":  # the primary keeps dropping it
            c.queue.append(("c0", r, env))
    c.run_for(c.params.view_change_timeout * 4)
    assert c.results["c0"] == [b"\x00"]
    assert all(c.replicas[r].view == 1 for r in ("r1", "r2", "r3"))


def test_hold_rule_with_backups_that_never_saw_the_request():
    """MAC-only, entries right for the primary and r1 only, sent to the primary alone: r1
    authenticates it in the PRE_PREPARE, r2 and r3 hold their PREPARE until r1 prepared."""
    c, counting = _mac_only_cluster()
    req = _mac_only(c, "c0", 1, encode_set(b"k", b"v"), {"r0", "r1"})
    c.queue.append(("c0", "r0", request_envelope(req)))
    c.deliver()
    assert all(c.replicas[r].height == 1 and c.replicas[r].view == 0 for r in c.nodes)
    assert c.replicas["r2"].drops["unauthenticated_request"] == 1
    assert counting.checks == 0


def test_a_watch_is_the_clients_own_for_one_replica():
    c = Cluster()
    env = c.clients["c0"].request(encode_set(b"k", b"v"), c.now)
    watch = watch_envelope(c.client_macs["c0"], env, "r1")
    assert not watch.payload and (watch.node_id, watch.sequence) == ("c0", env.sequence)
    assert check_watch(c.replica_macs["r1"], watch)
    assert not check_watch(c.replica_macs["r2"], watch)  # made for r1
    moved = pb.PBFTMessage()
    moved.CopyFrom(watch)
    moved.sequence += 1
    assert not check_watch(c.replica_macs["r1"], moved)
    moved.CopyFrom(watch)
    moved.node_id = "c1"  # another client's replies
    assert not check_watch(c.replica_macs["r1"], moved)
