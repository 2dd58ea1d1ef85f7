"""Every kind of bad input is dropped, counted by reason, and changes nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pbft_cluster import Cluster

from blockmesh.control.consensus.app import encode_set
from blockmesh.control.consensus.messages import (
    request_envelope,
    sha256,
    sign_envelope,
    sign_request,
)
from blockmesh.control.keys import Signer
from blockmesh.control.proto import pbft_pb2 as pb


def pre_prepare(c: Cluster, seq: int = 1, view: int = 0, op: bytes = b"x", client: str = "c0",
                ts: int = 1) -> pb.PBFTMessage:
    req = sign_request(c.client_signers[client], ts, encode_set(b"k", op))
    payload = pb.PrePrepare(requests=[req], view=view).SerializeToString(deterministic=True)
    return sign_envelope(c.signers[c.nodes[view % len(c.nodes)]], pb.PRE_PREPARE, view, seq,
                         sha256(payload), payload)


def drops_after(c: Cluster, replica: str, msg: pb.PBFTMessage) -> dict[str, int]:
    before = dict(c.replicas[replica].drops)
    out = c.replicas[replica].receive(msg, c.now)
    assert not out.send and not out.persist and not out.committed
    after = c.replicas[replica].drops
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def test_bad_signature():
    c = Cluster()
    msg = pre_prepare(c)
    msg.signature = bytes(64)
    assert drops_after(c, "r1", msg) == {"bad_signature": 1}


def test_tampered_message_fails_its_signature():
    c = Cluster()
    msg = pre_prepare(c)
    msg.sequence = 2
    assert drops_after(c, "r1", msg) == {"bad_signature": 1}


def test_unknown_sender():
    c = Cluster()
    stranger = Signer.generate("mallory")
    msg = sign_envelope(stranger, pb.PREPARE, 0, 1, sha256(b"x"))
    assert drops_after(c, "r1", msg) == {"unknown_sender": 1}


def test_signature_by_another_replica_is_forgery():
    c = Cluster()
    msg = sign_envelope(c.signers["r3"], pb.PREPARE, 0, 1, sha256(b"x"))
    msg.node_id = "r2"
    assert drops_after(c, "r1", msg) == {"bad_signature": 1}


def test_wrong_view():
    c = Cluster()
    msg = sign_envelope(c.signers["r2"], pb.PREPARE, 5, 1, sha256(b"x"))
    assert drops_after(c, "r1", msg) == {"wrong_view": 1}


def test_pre_prepare_from_a_backup_is_dropped():
    c = Cluster()
    msg = pre_prepare(c)
    forged = sign_envelope(c.signers["r2"], pb.PRE_PREPARE, 0, 1, msg.digest, msg.payload)
    assert drops_after(c, "r1", forged) == {"wrong_sender": 1}


def test_replayed_message_is_a_duplicate():
    c = Cluster()
    msg = pre_prepare(c)
    assert c.replicas["r1"].receive(msg, 0.0).send  # accepted: r1 prepares
    assert drops_after(c, "r1", msg) == {"duplicate": 1}


def test_conflicting_pre_prepare_for_the_same_view_and_sequence():
    c = Cluster()
    c.replicas["r1"].receive(pre_prepare(c, op=b"first"), 0.0)
    assert drops_after(c, "r1", pre_prepare(c, op=b"second")) == {"conflicting": 1}


def test_conflicting_prepare_from_one_replica():
    c = Cluster()
    c.replicas["r1"].receive(sign_envelope(c.signers["r2"], pb.PREPARE, 0, 1, sha256(b"a")), 0)
    other = sign_envelope(c.signers["r2"], pb.PREPARE, 0, 1, sha256(b"b"))
    assert drops_after(c, "r1", other) == {"conflicting": 1}


def test_sequences_outside_the_watermarks():
    c = Cluster()  # log window 4 -> (0, 4]
    assert drops_after(c, "r1", pre_prepare(c, seq=5)) == {"outside_watermarks": 1}
    assert drops_after(c, "r1", pre_prepare(c, seq=0)) == {"outside_watermarks": 1}


def test_unknown_type():
    c = Cluster()
    msg = sign_envelope(c.signers["r2"], 42, 0, 1)
    assert drops_after(c, "r1", msg) == {"unknown_type": 1}
    reply = sign_envelope(c.signers["r2"], pb.REPLY, 0, 1)
    assert drops_after(c, "r1", reply) == {"unknown_type": 1}


def test_malformed_payload():
    c = Cluster()
    payload = b"\xff\xff\xff"
    msg = sign_envelope(c.signers["r0"], pb.PRE_PREPARE, 0, 1, sha256(payload), payload)
    assert drops_after(c, "r1", msg) == {"malformed": 1}


def test_digest_that_does_not_match_the_batch():
    c = Cluster()
    good = pre_prepare(c)
    msg = sign_envelope(c.signers["r0"], pb.PRE_PREPARE, 0, 1, sha256(b"other"), good.payload)
    assert drops_after(c, "r1", msg) == {"malformed": 1}


def test_batch_with_a_forged_client_request():
    c = Cluster()
    req = sign_request(c.client_signers["c0"], 1, b"op")
    req.operation = b"tampered"
    payload = pb.PrePrepare(requests=[req]).SerializeToString(deterministic=True)
    msg = sign_envelope(c.signers["r0"], pb.PRE_PREPARE, 0, 1, sha256(payload), payload)
    # Kept, but not voted for: only f + 1 replicas vouching for the batch would release it.
    assert drops_after(c, "r1", msg) == {"unauthenticated_request": 1}


def test_client_request_checks():
    c = Cluster()
    stranger = Signer.generate("eve")
    env = request_envelope(sign_request(stranger, 1, b"op"))
    assert drops_after(c, "r0", env) == {"unknown_sender": 1}
    req = sign_request(c.client_signers["c0"], 1, b"x")
    req.client_signature = bytes(64)
    env = request_envelope(req)
    assert drops_after(c, "r0", env) == {"bad_client_signature": 1}
    req = sign_request(c.client_signers["c0"], 1, b"x")
    env = request_envelope(req)
    env.node_id = "c1"  # c1 relays c0's request as its own
    assert drops_after(c, "r0", env) == {"malformed": 1}
    big = sign_request(c.client_signers["c0"], 2, b"x" * (c.params.max_operation_size + 1))
    assert drops_after(c, "r0", request_envelope(big)) == {"too_large": 1}


def test_per_client_pending_bound():
    c = Cluster()
    signer = c.client_signers["c0"]
    backup = c.replicas["r1"]  # a backup buffers requests until the primary orders them
    for ts in range(1, c.params.max_pending_per_client + 1):
        backup.receive(request_envelope(sign_request(signer, ts, b"op")), 0.0)
    extra = request_envelope(sign_request(signer, 99, b"op"))
    assert drops_after(c, "r1", extra) == {"client_limit": 1}
    assert backup.pending_requests == c.params.max_pending_per_client


def test_stale_request_after_a_newer_one_executed():
    c = Cluster()
    signer = c.client_signers["c0"]
    for r in c.nodes:
        c.queue.append(("c0", r, request_envelope(sign_request(signer, 5, b"op"))))
    c.deliver()
    old = request_envelope(sign_request(signer, 4, b"op"))
    assert drops_after(c, "r1", old) == {"stale_request": 1}


@pytest.fixture(scope="module")
def cluster_once() -> Cluster:
    return Cluster()


@given(st.binary(max_size=300), st.sampled_from([pb.PRE_PREPARE, pb.PREPARE, pb.COMMIT,
                                                   pb.CHECKPOINT, pb.VIEW_CHANGE, pb.NEW_VIEW,
                                                   pb.REQUEST]))
def test_garbage_payloads_never_crash_the_engine(cluster_once, payload, kind):
    c = cluster_once
    signer = c.signers["r0"] if kind != pb.REQUEST else c.client_signers["c0"]
    msg = sign_envelope(signer, kind, 0, 4, sha256(payload), payload)
    out = c.replicas["r1"].receive(msg, 0.0)
    assert not out.committed


def test_drops_are_reported_as_metrics():
    c = Cluster()
    msg = pre_prepare(c)
    msg.signature = bytes(64)
    out = c.replicas["r1"].receive(msg, 0.0)
    assert [(m.name, m.label) for m in out.metrics] == [("drop", "bad_signature")]
