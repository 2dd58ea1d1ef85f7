"""Replies signed once per batch: every client of the batch can check its own, and nothing
else passes (a reply missing from the list, a changed result, a padded list, a stranger)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pbft_cluster import UNIT_PARAMS, Cluster

from blockmesh.control.cluster.replies import to_response
from blockmesh.control.consensus import PBFTClient
from blockmesh.control.consensus.app import encode_set
from blockmesh.control.consensus.messages import (
    MAX_REPLY_BATCH,
    ReplyVerifier,
    sign_batch_replies,
)
from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb

NODES = ["r0", "r1", "r2", "r3"]
SIGNERS = {r: Signer.generate(r) for r in NODES}
KEYS = Verifier({r: s.public_key for r, s in SIGNERS.items()})
BATCH = [("c0", 1, b"zero"), ("c1", 1, b"one"), ("c2", 1, b"two")]


def _client(client_id: str) -> PBFTClient:
    client = PBFTClient(Signer.generate(client_id), NODES, KEYS)
    client.request(b"op", now=0.0)
    return client


def _with_body(msg: pb.PBFTMessage, edit: Callable[[pb.Reply], object]) -> pb.PBFTMessage:
    body = pb.Reply.FromString(msg.payload)
    edit(body)
    changed = pb.PBFTMessage()
    changed.CopyFrom(msg)
    changed.payload = body.SerializeToString(deterministic=True)
    return changed


def test_one_signature_serves_every_client_of_the_batch():
    by_replica = {r: [e for e, _ in sign_batch_replies(SIGNERS[r], 0, 7, BATCH)]
                  for r in ("r0", "r1")}
    assert len({m.signature for m in by_replica["r0"]}) == 1
    for i, (client_id, _, result) in enumerate(BATCH):
        client = _client(client_id)
        assert client.on_reply(by_replica["r0"][i]) is None
        answer = to_response(by_replica["r1"][i])
        assert client.on_answer(answer.node_id, answer.sequence, answer.signature,
                                answer.reply) == result


def test_a_batch_reply_that_does_not_vouch_for_this_client_is_refused():
    replies = [e for e, _ in sign_batch_replies(SIGNERS["r0"], 0, 7, BATCH)]
    client = _client("c0")
    dropped = _with_body(replies[0], lambda b: b.batch_digests.remove(b.batch_digests[0]))
    changed = _with_body(replies[0], lambda b: setattr(b, "result", b"forged"))
    padded = _with_body(replies[0], lambda b: b.batch_digests.extend(
        [bytes(32)] * MAX_REPLY_BATCH))
    for bad in (dropped, changed, padded):
        assert client.on_reply(bad) is None
    assert client.drops["malformed"] == 3
    stranger = sign_batch_replies(Signer.generate("r1"), 0, 7, BATCH)[0][0]
    assert client.on_reply(stranger) is None and client.drops["bad_signature"] == 1
    assert client.outstanding


def test_replicas_sign_a_multi_request_batch_once():
    c = Cluster(params=replace(UNIT_PARAMS, max_batch_size=3, max_batch_delay=0.5), clients=3)
    for i, client in enumerate(("c0", "c1", "c2")):
        c.request(client, encode_set(f"k{i}".encode(), b"v"))
    c.deliver()
    assert all(len(c.results[client]) == 1 for client in ("c0", "c1", "c2"))
    signatures: dict[str, set[bytes]] = {}
    for client in ("c0", "c1", "c2"):
        for m in c.replies[client]:
            assert len(pb.Reply.FromString(m.payload).batch_digests) == 3
            signatures.setdefault(m.node_id, set()).add(m.signature)
    assert sorted(signatures) == NODES
    assert all(len(s) == 1 for s in signatures.values())


class _CountingKeys:
    def __init__(self) -> None:
        self.checks = 0

    def knows(self, node_id: str) -> bool:
        return KEYS.knows(node_id)

    def verify(self, node_id: str, signature: bytes, data: bytes) -> bool:
        self.checks += 1
        return KEYS.verify(node_id, signature, data)


def test_clients_sharing_a_reply_verifier_check_a_batch_signature_once():
    counting = _CountingKeys()
    shared = ReplyVerifier(counting, cache_size=16)
    replies = [e for e, _ in sign_batch_replies(SIGNERS["r0"], 0, 7, BATCH)]
    for i, (client_id, _, _) in enumerate(BATCH):
        client = PBFTClient(Signer.generate(client_id), NODES, shared)
        client.request(b"op", now=0.0)
        assert client.on_reply(replies[i]) is None and client.drops.total() == 0
    assert counting.checks == 1
    forged = sign_batch_replies(Signer.generate("r0"), 0, 7, BATCH)[0][0]
    client = PBFTClient(Signer.generate("c0"), NODES, shared)
    client.request(b"op", now=0.0)
    assert client.on_reply(forged) is None and client.drops["bad_signature"] == 1
    assert counting.checks == 2
