"""Signing, digests and signature checks for PBFT envelopes and client requests.

A signature covers the deterministic serialization of the message with its signature field
empty, so any party can re-derive the signed bytes from the parsed message alone.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from blockmesh.control.proto import pbft_pb2 as pb

MessageType = pb.MessageType
ZERO_HASH = bytes(32)


class SignerLike(Protocol):
    """What the engine needs of a private key (blockmesh.control.keys.Signer fits)."""

    @property
    def node_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class VerifierLike(Protocol):
    """What the engine needs of a key ring (blockmesh.control.keys.Verifier fits)."""

    def knows(self, node_id: str) -> bool: ...

    def verify(self, node_id: str, signature: bytes, data: bytes) -> bool: ...


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def envelope_signing_bytes(msg: pb.PBFTMessage) -> bytes:
    unsigned = pb.PBFTMessage()
    unsigned.CopyFrom(msg)
    unsigned.ClearField("signature")
    return unsigned.SerializeToString(deterministic=True)


def sign_envelope(
    signer: SignerLike,
    msg_type: int,
    view: int,
    sequence: int,
    digest: bytes = b"",
    payload: bytes = b"",
) -> pb.PBFTMessage:
    msg = pb.PBFTMessage(
        type=msg_type,
        view=view,
        sequence=sequence,
        digest=digest,
        node_id=signer.node_id,
        payload=payload,
    )
    msg.signature = signer.sign(msg.SerializeToString(deterministic=True))
    return msg


def request_signing_bytes(req: pb.Request) -> bytes:
    unsigned = pb.Request(client_id=req.client_id, timestamp=req.timestamp, operation=req.operation)
    return unsigned.SerializeToString(deterministic=True)


def sign_request(signer: SignerLike, timestamp: int, operation: bytes) -> pb.Request:
    """A client request signed by `signer`, whose node_id is the client id."""
    req = pb.Request(client_id=signer.node_id, timestamp=timestamp, operation=operation)
    req.client_signature = signer.sign(req.SerializeToString(deterministic=True))
    return req


def request_envelope(req: pb.Request) -> pb.PBFTMessage:
    """The REQUEST envelope a client sends; digest names the request.

    The envelope is left unsigned: the request's client_signature inside it covers everything
    that matters (replicas check the digest against the payload), and a second signature would
    cost the client an Ed25519 operation per request that no replica ever checks."""
    body = req.SerializeToString(deterministic=True)
    return pb.PBFTMessage(type=pb.REQUEST, sequence=req.timestamp, digest=sha256(body),
                          node_id=req.client_id, payload=body)


def reply_digest(client_id: str, timestamp: int, result: bytes) -> bytes:
    """What clients compare across replicas: the same request answered with the same result."""
    return sha256(pb.Reply(client_id=client_id, timestamp=timestamp, result=result)
                  .SerializeToString(deterministic=True))


#: Reply digests one batch-signed REPLY may list; a longer list is refused unverified.
MAX_REPLY_BATCH = 4096


def batch_reply_digest(digests: Sequence[bytes]) -> bytes:
    return sha256(b"".join(digests))


def sign_batch_replies(
    signer: SignerLike, view: int, sequence: int, replies: Sequence[tuple[str, int, bytes]]
) -> list[tuple[pb.PBFTMessage, pb.Reply]]:
    """One REPLY envelope per (client, timestamp, result) of a batch, under ONE signature,
    each with its parsed body (the replica answers clients from the body, not the bytes).

    Signing every reply costs a replica one Ed25519 signature per request; this costs one per
    batch. The signature covers the envelope with an empty payload and, as digest, the hash of
    every reply digest of the batch; each client's envelope carries the list (Reply.
    batch_digests) to show its own reply is in it (see `reply_signing_bytes`)."""
    digests = [reply_digest(client, ts, result) for client, ts, result in replies]
    head = pb.PBFTMessage(type=pb.REPLY, view=view, sequence=sequence,
                          digest=batch_reply_digest(digests), node_id=signer.node_id)
    signature = signer.sign(head.SerializeToString(deterministic=True))
    signed = []
    for client, ts, result in replies:
        body = pb.Reply(client_id=client, timestamp=ts, result=result, view=view,
                        batch_digests=digests)
        signed.append((pb.PBFTMessage(
            type=pb.REPLY, view=view, sequence=sequence, digest=head.digest,
            node_id=signer.node_id, signature=signature,
            payload=body.SerializeToString(deterministic=True)), body))
    return signed


def reply_envelope_digest(body: pb.Reply) -> bytes:
    """The digest a REPLY envelope with payload `body` must carry (either form)."""
    if body.batch_digests:
        return batch_reply_digest(body.batch_digests)
    return reply_digest(body.client_id, body.timestamp, body.result)


def reply_signing_bytes(msg: pb.PBFTMessage, body: pb.Reply) -> bytes | None:
    """What the replica signed for REPLY `msg` whose parsed payload is `body`, or None when
    the reply is malformed (a digest that does not follow from the body)."""
    own = reply_digest(body.client_id, body.timestamp, body.result)
    if not body.batch_digests:
        return envelope_signing_bytes(msg) if msg.digest == own else None
    if (len(body.batch_digests) > MAX_REPLY_BATCH or own not in body.batch_digests
            or msg.digest != batch_reply_digest(body.batch_digests)):
        return None
    head = pb.PBFTMessage(type=msg.type, view=msg.view, sequence=msg.sequence,
                          digest=msg.digest, node_id=msg.node_id)
    return head.SerializeToString(deterministic=True)


class CachingVerifier:
    """A key ring that remembers the signatures it has already found valid (bounded LRU).

    A replica signs one REPLY for a whole batch (`sign_batch_replies`), so a process running
    many client identities receives the same signed statement once per client of the batch;
    sharing one of these among them verifies it once."""

    def __init__(self, keys: VerifierLike, cache_size: int = 4096) -> None:
        self._keys = keys
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size

    def knows(self, node_id: str) -> bool:
        return self._keys.knows(node_id)

    def verify(self, node_id: str, signature: bytes, data: bytes) -> bool:
        key = sha256(node_id.encode() + b"\0" + signature + data)
        if key in self._cache:
            self._cache.move_to_end(key)
            return True
        if not self._keys.verify(node_id, signature, data):
            return False
        self._cache[key] = None
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return True


class SignatureChecker:
    """Verifies envelopes and requests, remembering successes.

    Messages travel twice in PBFT: on their own and embedded in certificates (VIEW_CHANGE,
    NEW_VIEW, checkpoint proofs). Remembering what already verified keeps view changes cheap.
    """

    def __init__(self, replicas: VerifierLike, clients: VerifierLike, cache_size: int) -> None:
        self._replicas = CachingVerifier(replicas, cache_size)
        self._clients = CachingVerifier(clients, cache_size)

    def knows_replica(self, node_id: str) -> bool:
        return self._replicas.knows(node_id)

    def knows_client(self, client_id: str) -> bool:
        return self._clients.knows(client_id)

    def envelope(self, msg: pb.PBFTMessage) -> bool:
        """A replica's signature on an envelope."""
        return self._replicas.verify(msg.node_id, msg.signature, envelope_signing_bytes(msg))

    def request(self, req: pb.Request, signed_bytes: bytes | None = None) -> bool:
        """The client's signature on `req` (`signed_bytes`: its signing bytes, if at hand)."""
        data = request_signing_bytes(req) if signed_bytes is None else signed_bytes
        return self._clients.verify(req.client_id, req.client_signature, data)
