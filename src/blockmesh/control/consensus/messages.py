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
        type=msg_type,  # type: ignore[arg-type]  # the enum's values are plain ints
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
    batch_digests) to show its own reply is in it (see `ReplyVerifier`)."""
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


class CachingVerifier:
    """A key ring that remembers the signatures it has already found valid (bounded LRU)."""

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


class ReplyVerifier:
    """Checks the signatures of REPLYs, in either form (signed alone, or batch-signed).

    A batch-signed statement reaches a process once per client of the batch (and, for one
    client, once per retransmission). After one full check, the statement is remembered by
    (replica, signature) with the reply digests it covers, so each further reply of that batch
    costs a set lookup instead of re-hashing the list and rebuilding the signed bytes. Share
    one instance among the client identities of a process (a load generator)."""

    def __init__(self, keys: VerifierLike, cache_size: int = 4096) -> None:
        self._keys = keys
        self._batches: OrderedDict[tuple[str, bytes], tuple[int, int, bytes, frozenset[bytes]]]
        self._batches = OrderedDict()
        self._cache_size = cache_size

    def knows(self, node_id: str) -> bool:
        return self._keys.knows(node_id)

    def check(self, node_id: str, view: int, sequence: int, signature: bytes, body: pb.Reply,
              digest: bytes | None = None) -> str | None:
        """None when `node_id` signed `body` as REPLY at (`view`, `sequence`), else the reason
        ("malformed" or "bad_signature"). `digest` is the envelope's digest field when the
        reply came as an envelope; a reply taken apart (a SubmitRequest answer) has none, and
        the digest follows from the body."""
        own = reply_digest(body.client_id, body.timestamp, body.result)
        if not body.batch_digests:
            if digest is not None and digest != own:
                return "malformed"
            payload = body.SerializeToString(deterministic=True)
            msg = pb.PBFTMessage(type=pb.REPLY, view=view, sequence=sequence, digest=own,
                                 node_id=node_id, payload=payload)
            signed = msg.SerializeToString(deterministic=True)
            return None if self._keys.verify(node_id, signature, signed) else "bad_signature"
        key = (node_id, signature)
        known = self._batches.get(key)
        if known is not None:
            known_view, known_seq, known_digest, covered = known
            if (view, sequence) != (known_view, known_seq) or (
                    digest is not None and digest != known_digest):
                return "malformed"
            self._batches.move_to_end(key)
            return None if own in covered else "malformed"
        listed = list(body.batch_digests)
        if len(listed) > MAX_REPLY_BATCH or own not in listed:
            return "malformed"
        signed_digest = batch_reply_digest(listed)
        if digest is not None and digest != signed_digest:
            return "malformed"
        head = pb.PBFTMessage(type=pb.REPLY, view=view, sequence=sequence,
                              digest=signed_digest, node_id=node_id)
        if not self._keys.verify(node_id, signature, head.SerializeToString(deterministic=True)):
            return "bad_signature"
        self._batches[key] = (view, sequence, signed_digest, frozenset(listed))
        if len(self._batches) > self._cache_size:
            self._batches.popitem(last=False)
        return None


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
