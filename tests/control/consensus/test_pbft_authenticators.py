"""MAC authenticators on client requests: backups take a request by their own MAC entry, the
primary by the signature, and neither a garbled entry nor a forged signature gets through."""

from __future__ import annotations

from pbft_cluster import Cluster

from blockmesh.control.consensus.app import encode_set
from blockmesh.control.consensus.authenticators import (
    MAC_SIZE,
    PairKeys,
    authenticate,
    verify_entry,
)
from blockmesh.control.consensus.messages import (
    request_envelope,
    request_signing_bytes,
    sign_request,
)
from blockmesh.control.keys import Signer
from blockmesh.control.proto import pbft_pb2 as pb


class _CountingKeys:
    """Wraps a key ring and counts the Ed25519 checks made through it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.checks = 0

    def knows(self, node_id: str) -> bool:
        return self.inner.knows(node_id)

    def verify(self, node_id: str, signature: bytes, data: bytes) -> bool:
        self.checks += 1
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
                    client_side=True)
    theirs = PairKeys("r0", replica.private, {"c0": client.public_key}, client_side=False)
    assert mine.key("r0") == theirs.key("c0")
    assert mine.key("r1") != mine.key("r0")
    assert mine.key("stranger") is None and not mine.knows("stranger")
    broken = PairKeys("r0", replica.private, {"c0": bytes(32)}, client_side=False)
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
