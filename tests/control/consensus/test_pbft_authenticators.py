"""MAC authenticators on client requests: backups take a request by their own MAC entry, the
primary by the signature, and neither a garbled entry nor a forged signature gets through.
COMMITs carry MAC vectors among replicas: a bad entry or a borrowed name does not count."""

from __future__ import annotations

from dataclasses import replace

from pbft_cluster import UNIT_PARAMS, Cluster

from blockmesh.control.consensus.app import encode_get, encode_set, is_read_only
from blockmesh.control.consensus.authenticators import (
    MAC_SIZE,
    Pairing,
    PairKeys,
    authenticate,
    mac_vector,
    verify_entry,
)
from blockmesh.control.consensus.client import PBFTClient
from blockmesh.control.consensus.messages import (
    request_envelope,
    request_signing_bytes,
    sha256,
    sign_envelope,
    sign_request,
)
from blockmesh.control.keys import Signer
from blockmesh.control.proto import pbft_pb2 as pb


def _reader_c1(req: pb.Request) -> bool:
    """c1 is a read-only identity, as a cluster.toml `role = "reader"` makes it."""
    return req.client_id != "c1" or is_read_only(req.operation)


class _CountingKeys:
    """Wraps a key ring and counts the Ed25519 checks made through it."""

    def __init__(self, inner, envelopes: bool = False) -> None:
        self.inner = inner
        self.checks = 0
        #: With `envelopes`, the message types of the envelopes checked.
        self.envelopes = envelopes
        self.checked: set[int] = set()

    def knows(self, node_id: str) -> bool:
        return self.inner.knows(node_id)

    def verify(self, node_id: str, signature: bytes, data: bytes) -> bool:
        self.checks += 1
        if self.envelopes:
            self.checked.add(pb.PBFTMessage.FromString(data).type)
        return self.inner.verify(node_id, signature, data)


def _counting_cluster() -> tuple[Cluster, _CountingKeys]:
    c = Cluster()
    counting = _CountingKeys(c.client_keys)
    c.client_keys = counting
    for r in c.nodes:
        c.boot(r)
    return c, counting


def test_both_ends_derive_the_same_key_and_each_pair_its_own():
    client, replica, other = Signer.generate("c0"), Signer.generate("r0"), Signer.generate("r1")
    mine = PairKeys("c0", client.private, {"r0": replica.public_key, "r1": other.public_key},
                    Pairing.CLIENT)
    theirs = PairKeys("r0", replica.private, {"c0": client.public_key}, Pairing.REPLICA)
    assert mine.key("r0") == theirs.key("c0")
    assert mine.key("r1") != mine.key("r0")
    assert mine.key("stranger") is None and not mine.knows("stranger")
    broken = PairKeys("r0", replica.private, {"c0": bytes(32)}, Pairing.REPLICA)
    assert broken.key("c0") is None  # a low-order point gives no secret: signatures only


def test_an_entry_verifies_only_for_its_replica_and_its_bytes():
    c = Cluster()
    req = sign_request(c.client_signers["c0"], 1, b"op")
    data = request_signing_bytes(req)
    authenticate(req, c.client_macs["c0"], c.nodes, data)
    assert [len(t) for t in req.authenticator] == [MAC_SIZE] * 4
    for i, r in enumerate(c.nodes):
        assert verify_entry(req, c.replica_macs[r], i, data)
        assert not verify_entry(req, c.replica_macs[r], (i + 1) % 4, data)
    other = request_signing_bytes(sign_request(c.client_signers["c0"], 2, b"op"))
    assert not verify_entry(req, c.replica_macs["r1"], 1, other)
    assert not verify_entry(req, c.replica_macs["r1"], 9, data)


def test_backups_commit_without_checking_a_single_signature():
    c, counting = _counting_cluster()
    for i in range(3):
        c.request("c0", encode_set(f"k{i}".encode(), b"v"))
        c.deliver()
    assert len(c.results["c0"]) == 3
    assert counting.checks == 3  # the primary's, one per request; backups used their MACs


def test_a_garbled_entry_falls_back_to_the_signature():
    c, counting = _counting_cluster()
    env = c.clients["c0"].request(encode_set(b"k", b"v"), c.now)
    req = pb.Request.FromString(env.payload)
    req.authenticator[1] = bytes(MAC_SIZE)
    del req.authenticator[3:]
    for r in c.nodes:
        c.queue.append(("c0", r, request_envelope(req)))
    c.deliver()
    assert len(c.results["c0"]) == 1
    assert counting.checks == 3  # primary, then r1 and r3 by signature; r2 by its MAC


def test_good_macs_with_a_forged_signature_never_run_nor_depose_the_primary():
    c = Cluster()
    req = sign_request(c.client_signers["c0"], 7, encode_set(b"forged", b"x"))
    authenticate(req, c.client_macs["c0"], c.nodes, request_signing_bytes(req))
    req.client_signature = bytes(64)
    for r in c.nodes:
        c.queue.append(("c0", r, request_envelope(req)))
    c.deliver()
    assert c.replicas["r0"].drops["bad_client_signature"] == 1
    assert all(c.replicas[r].pending_requests == 1 for r in ("r1", "r2", "r3"))
    c.run_for(c.params.view_change_timeout * 3)
    for r in c.nodes:
        assert c.replicas[r].view == 0 and c.replicas[r].pending_requests == 0
        assert c.replicas[r].height == 0
    assert all(c.replicas[r].drops["bad_client_signature"] == 1 for r in ("r1", "r2", "r3"))


def test_a_reader_may_read_but_not_write():
    c = Cluster(authorize=_reader_c1)
    c.request("c1", encode_set(b"k", b"v"))
    c.deliver()
    assert all(c.replicas[r].drops["forbidden"] == 1 for r in c.nodes)
    assert all(c.replicas[r].height == 0 for r in c.nodes) and not c.results["c1"]
    c.clients["c1"].abandon()
    c.request("c1", encode_get(b"k"))
    c.deliver()
    assert len(c.results["c1"]) == 1 and all(c.replicas[r].height == 1 for r in c.nodes)


def _propose(c: Cluster, requests: list[pb.Request]) -> None:
    """r0, the primary, sends backups a PRE_PREPARE of its own making for sequence 1."""
    payload = pb.PrePrepare(requests=requests, view=0).SerializeToString(deterministic=True)
    msg = sign_envelope(c.signers["r0"], pb.PRE_PREPARE, 0, 1, sha256(payload), payload)
    for r in ("r1", "r2", "r3"):
        c.queue.append(("r0", r, msg))
    c.deliver()


def test_a_byzantine_primary_cannot_pass_off_a_reader_write():
    c = Cluster(authorize=_reader_c1)
    req = sign_request(c.client_signers["c1"], 1, encode_set(b"k", b"v"))
    authenticate(req, c.client_macs["c1"], c.nodes, request_signing_bytes(req))
    _propose(c, [req])
    assert all(c.replicas[r].drops["forbidden"] == 1 for r in ("r1", "r2", "r3"))
    assert all(c.replicas[r].height == 0 for r in c.nodes)


def test_a_byzantine_primary_cannot_forge_a_client_request():
    """A replica holds no client key: a request it makes up carries its own signature and the
    one MAC it can compute (its own pair key with the client), and an altered request keeps
    the client's signature and MACs over the old bytes. Backups refuse both."""
    c = Cluster()
    made_up = pb.Request(client_id="c0", timestamp=1, operation=encode_set(b"forged", b"x"))
    data = request_signing_bytes(made_up)
    made_up.client_signature = c.signers["r0"].sign(data)
    made_up.authenticator.extend([c.replica_macs["r0"].mac("c0", data)] * len(c.nodes))
    _propose(c, [made_up])
    assert all(c.replicas[r].drops["unauthenticated_request"] == 1 for r in ("r1", "r2", "r3"))
    assert not any(m.type == pb.PREPARE for _, m in c.sent)

    c = Cluster()
    genuine = sign_request(c.client_signers["c0"], 1, encode_set(b"k", b"v"))
    authenticate(genuine, c.client_macs["c0"], c.nodes, request_signing_bytes(genuine))
    altered = pb.Request()
    altered.CopyFrom(genuine)
    altered.operation = encode_set(b"forged", b"x")
    _propose(c, [altered])
    assert all(c.replicas[r].drops["unauthenticated_request"] == 1 for r in ("r1", "r2", "r3"))
    assert not any(m.type == pb.PREPARE for _, m in c.sent)
    assert all(c.replicas[r].height == 0 for r in c.nodes)


def _mac_only_cluster() -> tuple[Cluster, _CountingKeys]:
    c, counting = _counting_cluster()
    for name in list(c.clients):
        c.clients[name] = PBFTClient(c.client_signers[name], c.nodes, c.keys,
                                     pair_keys=c.client_macs[name], sign=False)
    return c, counting


def _mac_only(c: Cluster, client: str, timestamp: int, operation: bytes,
              good: set[str]) -> pb.Request:
    """An unsigned request whose authenticator entries are right only for `good`."""
    req = pb.Request(client_id=client, timestamp=timestamp, operation=operation)
    authenticate(req, c.client_macs[client], c.nodes, request_signing_bytes(req))
    for i, r in enumerate(c.nodes):
        if r not in good:
            req.authenticator[i] = bytes(MAC_SIZE)
    return req


def test_mac_only_requests_commit_without_any_ed25519_check():
    c, counting = _mac_only_cluster()
    for i in range(3):
        c.request("c0", encode_set(f"k{i}".encode(), b"v"))
        c.deliver()
    assert len(c.results["c0"]) == 3
    assert counting.checks == 0
    assert all(c.replicas[r].height == 3 for r in c.nodes)


def test_mac_only_entries_garbled_for_two_backups_still_commit_in_the_same_view():
    """Right for the primary and r1 only: r1 prepares, and r2, r3 vote once f = 1 backup other
    than themselves did (with the PRE_PREPARE, f + 1 replicas vouch for the request)."""
    c, counting = _mac_only_cluster()
    req = _mac_only(c, "c0", 1, encode_set(b"k", b"v"), {"r0", "r1"})
    for r in c.nodes:
        c.queue.append(("c0", r, request_envelope(req)))
    c.deliver()
    assert all(c.replicas[r].height == 1 and c.replicas[r].view == 0 for r in c.nodes)
    assert c.replicas["r2"].drops["unauthenticated_request"] == 1
    assert counting.checks == 0


def test_mac_only_entry_right_for_the_primary_alone_costs_one_view_change():
    """The liveness price of MAC-only requests (docs/benchmarks.md): no backup can vouch for
    the batch, so it never prepares and the requests behind it wait for a view change; the
    stuck batch is dropped by the new view and everything else commits."""
    c, _ = _mac_only_cluster()
    req = _mac_only(c, "c0", 1, encode_set(b"k", b"bad"), {"r0"})
    for r in c.nodes:
        c.queue.append(("c0", r, request_envelope(req)))
    c.deliver()
    assert not any(m.type == pb.PREPARE for _, m in c.sent)
    c.run_for(0.01)
    c.request("c1", encode_set(b"k", b"good"))
    c.deliver()
    assert not c.results["c1"]
    c.run_for(c.params.view_change_timeout * 4)
    assert len(c.results["c1"]) == 1
    # r0 still holds c0's request, which no later primary can authenticate: like a backup a
    # client reached alone, it suspects view 1 by itself, which takes f + 1 to act on.
    assert all(c.replicas[r].view == 1 for r in ("r1", "r2", "r3"))
    assert all(c.replicas[r].height == 2 for r in c.nodes)


def test_a_cluster_may_require_signatures():
    c = Cluster(params=replace(UNIT_PARAMS, client_signatures_required=True))
    c.clients["c0"] = PBFTClient(c.client_signers["c0"], c.nodes, c.keys,
                                 pair_keys=c.client_macs["c0"], sign=False)
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver()
    assert all(c.replicas[r].drops["unsigned_request"] == 1 for r in c.nodes)
    assert all(c.replicas[r].height == 0 for r in c.nodes)


# ----------------------------------------------------------------- COMMITs by MAC vector


def _commits_held_from_r1(c: Cluster) -> dict[str, pb.PBFTMessage]:
    """Run one request until every replica sent its COMMIT, delivering none of them to r1."""
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver(keep=lambda src, dst, m: not (dst == "r1" and m.type == pb.COMMIT))
    commits = {m.node_id: m for _, m in c.sent if m.type == pb.COMMIT}
    assert set(commits) == set(c.nodes) and c.heights()["r1"] == 0
    return commits


def test_replica_pair_keys_are_symmetric_and_unrelated_to_client_keys():
    a, b = Signer.generate("r0"), Signer.generate("r1")
    ab = PairKeys("r0", a.private, {"r1": b.public_key}, Pairing.PEERS)
    ba = PairKeys("r1", b.private, {"r0": a.public_key}, Pairing.PEERS)
    assert ab.key("r1") == ba.key("r0") is not None
    # The same two parties as a client and a replica: both ends agree on another key.
    as_client = PairKeys("r0", a.private, {"r1": b.public_key}, Pairing.CLIENT)
    as_replica = PairKeys("r1", b.private, {"r0": a.public_key}, Pairing.REPLICA)
    assert as_client.key("r1") == as_replica.key("r0") not in (None, ab.key("r1"))
    # Both claiming the client end order the ids differently: no key in common.
    other_client = PairKeys("r1", b.private, {"r0": a.public_key}, Pairing.CLIENT)
    assert other_client.key("r0") != as_client.key("r1")



def test_commits_carry_a_mac_vector_and_no_signature_check():
    c = Cluster()
    counting = _CountingKeys(c.keys, envelopes=True)
    c.keys = counting
    for r in c.nodes:
        c.boot(r)
    c.request("c0", encode_set(b"k", b"v"))
    c.deliver()
    assert c.heights() == dict.fromkeys(c.nodes, 1)
    commits = [m for _, m in c.sent if m.type == pb.COMMIT]
    assert len(commits) == 4 and all(len(m.signature) == 4 * MAC_SIZE for m in commits)
    assert counting.checked and pb.COMMIT not in counting.checked


def test_a_commit_with_a_bad_entry_or_another_replicas_name_does_not_count():
    c = Cluster()
    commits = _commits_held_from_r1(c)
    r1 = c.replicas["r1"]
    bad = pb.PBFTMessage()
    bad.CopyFrom(commits["r2"])
    bad.signature = bad.signature[:MAC_SIZE] + bytes(MAC_SIZE) + bad.signature[2 * MAC_SIZE:]
    assert r1.receive(bad, c.now).metrics[0].label == "bad_mac"
    # r3 claims to be r0 and r2, with the only MACs it can make: its own keys'.
    for author in ("r0", "r2"):
        forged = pb.PBFTMessage(type=pb.COMMIT, view=0, sequence=1,
                                digest=commits["r3"].digest, node_id=author)
        forged.signature = mac_vector(c.peer_macs["r3"], c.nodes, "r3",
                                      forged.SerializeToString(deterministic=True))
        assert r1.receive(forged, c.now).metrics[0].label == "bad_mac"
    assert not r1.receive(commits["r3"], c.now).committed  # own + r3's: 2 of 3
    assert r1.receive(commits["r2"], c.now).committed  # the genuine one counts


def test_a_relayed_commit_counts_by_its_authors_entry():
    """COMMITs relayed by a third replica (retransmission, `_send_proof`) still verify: the
    recipient checks the entry their author made for it."""
    c = Cluster()
    commits = _commits_held_from_r1(c)
    r1 = c.replicas["r1"]
    for author in ("r0", "r2"):
        relayed = pb.PBFTMessage()
        relayed.CopyFrom(commits[author])
        out = r1.receive(relayed, c.now, sender="r3")
    assert out.committed and r1.height == 1


def test_view_sync_ignores_commits_forged_in_a_higher_view():
    c = Cluster()
    r1 = c.replicas["r1"]
    for author in ("r0", "r2", "r3"):
        forged = pb.PBFTMessage(type=pb.COMMIT, view=3, sequence=1, digest=bytes(32),
                                node_id=author)
        forged.signature = mac_vector(c.peer_macs["r3"], c.nodes, "r3",
                                      forged.SerializeToString(deterministic=True))
        r1.receive(forged, c.now)
    assert r1.view == 0 and not r1.view_changing  # only r3's own vote verified: 1 < f + 1
