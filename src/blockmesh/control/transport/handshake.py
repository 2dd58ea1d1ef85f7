"""Mutual challenge–response authentication between two replicas, without I/O.

Both transports run the same four legs; only the carrier differs (TCP frames, or gRPC metadata
followed by the first messages of MessageStream):

    1. initiator -> responder   HELLO  (initiator id, nonce_i)
    2. responder -> initiator   REPLY  (responder id, nonce_r, sig_r)
    3. initiator -> responder   PROOF  (sig_i)
    4. responder -> initiator   ACK    (or an error, then the connection closes)

sig_r and sig_i are Ed25519 signatures over the same transcript — a domain tag, the role of the
signer, both ids and both nonces, each length-prefixed — checked against the cluster's public
keys. Fresh 32-byte nonces from both sides make every transcript new, so a recorded handshake
cannot be replayed; the role tag stops a peer from reflecting the other side's signature back.
The responder refuses an unknown initiator id before it signs anything, and the initiator
refuses a responder whose id is not the one it meant to dial.
"""

from __future__ import annotations

import hashlib
import os
import struct

from blockmesh.control.keys import SIGNATURE_SIZE, Signer, Verifier
from blockmesh.control.transport.errors import AuthenticationError

NONCE_SIZE = 32
MAX_NODE_ID_BYTES = 256
_DOMAIN = b"blockmesh/transport-handshake/v1"
_INITIATOR = b"initiator"
_RESPONDER = b"responder"


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def transcript(
    role: bytes, initiator: str, responder: str, nonce_i: bytes, nonce_r: bytes
) -> bytes:
    parts = (_DOMAIN, role, initiator.encode(), responder.encode(), nonce_i, nonce_r)
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


def _check_id(node_id: str) -> None:
    if not node_id or len(node_id.encode()) > MAX_NODE_ID_BYTES:
        raise AuthenticationError("malformed node id")


def _check_nonce(nonce: bytes) -> None:
    if len(nonce) != NONCE_SIZE:
        raise AuthenticationError(f"nonce must have {NONCE_SIZE} bytes, got {len(nonce)}")


class Initiator:
    """The dialing side: proves itself after the responder has proven it is `expected_peer`."""

    def __init__(self, signer: Signer, cluster: Verifier, expected_peer: str, nonce: bytes) -> None:
        _check_nonce(nonce)
        self._signer = signer
        self._cluster = cluster
        self._expected = expected_peer
        self.nonce = nonce

    def hello(self) -> tuple[str, bytes]:
        return self._signer.node_id, self.nonce

    def on_reply(self, responder: str, nonce_r: bytes, signature: bytes) -> bytes:
        """Check leg 2 and return the signature for leg 3."""
        _check_id(responder)
        _check_nonce(nonce_r)
        if responder != self._expected:
            raise AuthenticationError(f"dialed {self._expected!r} but {responder!r} answered")
        me = self._signer.node_id
        data = transcript(_RESPONDER, me, responder, self.nonce, nonce_r)
        if len(signature) != SIGNATURE_SIZE or not self._cluster.verify(responder, signature, data):
            raise AuthenticationError(f"{responder!r} did not prove it holds its cluster key")
        return self._signer.sign(transcript(_INITIATOR, me, responder, self.nonce, nonce_r))


class Responder:
    """The accepting side: refuses unknown ids up front, then checks the initiator's proof."""

    def __init__(self, signer: Signer, cluster: Verifier, nonce: bytes) -> None:
        _check_nonce(nonce)
        self._signer = signer
        self._cluster = cluster
        self.nonce = nonce
        self.peer: str | None = None
        self._nonce_i = b""

    def on_hello(self, initiator: str, nonce_i: bytes) -> tuple[str, bytes, bytes]:
        """Check leg 1 and return leg 2: (own id, own nonce, signature)."""
        _check_id(initiator)
        _check_nonce(nonce_i)
        me = self._signer.node_id
        if initiator == me:
            raise AuthenticationError("a node cannot connect to itself")
        if not self._cluster.knows(initiator):
            raise AuthenticationError(f"{initiator!r} is not a member of the cluster")
        self.peer = initiator
        self._nonce_i = nonce_i
        return (
            me,
            self.nonce,
            self._signer.sign(transcript(_RESPONDER, initiator, me, nonce_i, self.nonce)),
        )

    def on_proof(self, signature: bytes) -> str:
        """Check leg 3; return the now authenticated peer id."""
        if self.peer is None:
            raise AuthenticationError("proof before hello")
        data = transcript(_INITIATOR, self.peer, self._signer.node_id, self._nonce_i, self.nonce)
        if len(signature) != SIGNATURE_SIZE or not self._cluster.verify(self.peer, signature, data):
            raise AuthenticationError(f"{self.peer!r} did not prove it holds its cluster key")
        return self.peer


# --- one-shot calls -------------------------------------------------------------------------
#
# Unary RPCs that act on behalf of a replica (gRPC SendMessage, BroadcastMessage) have no stream
# to run the handshake on, so the caller signs each call: its id, the callee's id, the method, a
# wall-clock stamp, a fresh nonce and the SHA-256 of the request bytes. The callee accepts a
# stamp within CALL_WINDOW of its own clock and remembers the nonces of that window, so a
# captured call cannot be replayed.

CALL_WINDOW = 30.0
_CALL_DOMAIN = b"blockmesh/transport-call/v1"


def call_transcript(
    caller: str, callee: str, method: str, stamp_ms: int, nonce: bytes, body: bytes
) -> bytes:
    parts = (
        _CALL_DOMAIN,
        caller.encode(),
        callee.encode(),
        method.encode(),
        str(stamp_ms).encode(),
        nonce,
        hashlib.sha256(body).digest(),
    )
    return b"".join(struct.pack(">I", len(part)) + part for part in parts)


class CallGuard:
    """Checks signed one-shot calls against the cluster keys and a bounded replay cache."""

    def __init__(self, cluster: Verifier, node_id: str, capacity: int = 65536) -> None:
        self._cluster = cluster
        self._node_id = node_id
        self._capacity = capacity
        self._seen: dict[bytes, float] = {}

    def check(
        self,
        caller: str,
        method: str,
        stamp_ms: int,
        nonce: bytes,
        signature: bytes,
        body: bytes,
        now: float,
    ) -> None:
        _check_id(caller)
        _check_nonce(nonce)
        if not self._cluster.knows(caller):
            raise AuthenticationError(f"{caller!r} is not a member of the cluster")
        if abs(now - stamp_ms / 1000) > CALL_WINDOW:
            raise AuthenticationError("call stamp outside the accepted window (clock skew?)")
        if nonce in self._seen:
            raise AuthenticationError("replayed call")
        data = call_transcript(caller, self._node_id, method, stamp_ms, nonce, body)
        if not self._cluster.verify(caller, signature, data):
            raise AuthenticationError(f"{caller!r} did not sign this call with its cluster key")
        if len(self._seen) >= self._capacity:
            self._seen = {n: t for n, t in self._seen.items() if t > now}
            if len(self._seen) >= self._capacity:
                raise AuthenticationError("too many calls in the replay window")
        self._seen[nonce] = now + 2 * CALL_WINDOW
