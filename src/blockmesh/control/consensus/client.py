"""The client side of PBFT, sans-I/O: sign requests, retransmit, accept f+1 matching replies.

f+1 replies with the same result from distinct replicas include at least one honest replica,
and an honest replica only answers with what the agreed log produced.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from blockmesh.control.consensus.authenticators import MacKeys, authenticate
from blockmesh.control.consensus.messages import (
    ReplyVerifier,
    SignerLike,
    VerifierLike,
    request_envelope,
    request_signing_bytes,
    sign_request,
)
from blockmesh.control.consensus.proofs import Committee, InvalidMessage, parse_payload
from blockmesh.control.proto import pbft_pb2 as pb


@dataclass
class _Outstanding:
    timestamp: int
    envelope: pb.PBFTMessage
    resend_at: float
    votes: dict[str, bytes]


class PBFTClient:
    """One client identity with at most one request in flight (PBFT's client model).

    Timestamps must grow across restarts of the client too: pass `first_timestamp` from a
    durable counter or a clock in microseconds.
    """

    def __init__(
        self,
        signer: SignerLike,
        nodes: Sequence[str],
        replica_keys: VerifierLike | ReplyVerifier,
        retry_interval: float = 2.0,
        first_timestamp: int = 1,
        pair_keys: MacKeys | None = None,
        sign: bool = True,
    ) -> None:
        """`pair_keys` (this client's MAC keys with each replica) adds an authenticator to
        every request, so replicas can skip the Ed25519 check. With `sign` False (which needs
        `pair_keys`) requests carry the authenticator only, as BFT-SMaRt's default does: no
        request signature and no check of one (replies stay signed), at the price of the
        liveness caveat in docs/benchmarks.md ("MAC-only client requests") that a Byzantine
        client can exploit.
        Pass a shared ReplyVerifier as `replica_keys` when many clients live in one process."""
        if not sign and pair_keys is None:
            raise ValueError("an unsigned request needs MAC keys to be authenticated at all")
        self.client_id = signer.node_id
        self.committee = Committee(tuple(nodes))
        self._signer = signer
        self._pair_keys = pair_keys
        self._sign = sign
        self._replies = (replica_keys if isinstance(replica_keys, ReplyVerifier)
                         else ReplyVerifier(replica_keys))
        self._retry = retry_interval
        self._next_timestamp = first_timestamp
        self._current: _Outstanding | None = None
        self.drops: Counter[str] = Counter()

    @property
    def outstanding(self) -> bool:
        return self._current is not None

    def request(self, operation: bytes, now: float) -> pb.PBFTMessage:
        """The REQUEST envelope (signed unless MAC-only) to send to every replica."""
        if self._current is not None:
            raise RuntimeError("a PBFT client has one request in flight at a time")
        if self._sign:
            req = sign_request(self._signer, self._next_timestamp, operation)
        else:
            req = pb.Request(client_id=self.client_id, timestamp=self._next_timestamp,
                             operation=operation)
        if self._pair_keys is not None:
            authenticate(req, self._pair_keys, self.committee.nodes, request_signing_bytes(req))
        env = request_envelope(req)
        self._current = _Outstanding(self._next_timestamp, env, now + self._retry, {})
        self._next_timestamp += 1
        return env

    def abandon(self) -> None:
        """Give up the request in flight (after a timeout); its late replies are dropped."""
        self._current = None

    def tick(self, now: float) -> pb.PBFTMessage | None:
        """The request again when replies are overdue (replicas answer repeats from a cache)."""
        cur = self._current
        if cur is None or now < cur.resend_at:
            return None
        cur.resend_at = now + self._retry
        return cur.envelope

    def next_deadline(self) -> float | None:
        return None if self._current is None else self._current.resend_at

    def on_reply(self, msg: pb.PBFTMessage) -> bytes | None:
        """The accepted result once f+1 replicas agree on it, else None."""
        try:
            if msg.type != pb.REPLY:
                raise InvalidMessage("unknown_sender")
            body = parse_payload(pb.Reply, msg.payload)
            return self._take(msg.node_id, msg.view, msg.sequence, msg.signature, body,
                              msg.digest)
        except InvalidMessage as exc:
            self.drops[exc.reason] += 1
            return None

    def on_answer(self, node_id: str, sequence: int, signature: bytes,
                  body: pb.Reply) -> bytes | None:
        """`on_reply` for a REPLY taken apart (a SubmitRequest answer: the body, the replica,
        the sequence and the signature; the view is the body's)."""
        try:
            return self._take(node_id, body.view, sequence, signature, body, None)
        except InvalidMessage as exc:
            self.drops[exc.reason] += 1
            return None

    def _take(self, node_id: str, view: int, sequence: int, signature: bytes, body: pb.Reply,
              digest: bytes | None) -> bytes | None:
        cur = self._current
        if node_id not in self.committee.nodes:
            raise InvalidMessage("unknown_sender")
        if cur is None:
            raise InvalidMessage("late")
        if node_id in cur.votes:
            raise InvalidMessage("duplicate")
        if body.client_id != self.client_id or body.timestamp != cur.timestamp:
            raise InvalidMessage("late")
        refused = self._replies.check(node_id, view, sequence, signature, body, digest)
        if refused is not None:
            raise InvalidMessage(refused)
        result = body.result
        cur.votes[node_id] = result
        if sum(1 for r in cur.votes.values() if r == result) > self.committee.f:
            self._current = None
            return result
        return None
