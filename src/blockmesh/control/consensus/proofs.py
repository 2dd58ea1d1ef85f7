"""Checks of the certificates PBFT carries between replicas, and the NEW_VIEW plan they imply.

These are pure functions of the messages and the committee so a backup can recompute exactly
what an honest new primary had to send, and reject a NEW_VIEW that differs in anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message

from blockmesh.control.consensus.messages import SignatureChecker, sha256
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import DecodeError

DIGEST_SIZE = 32

M = TypeVar("M", bound=Message)


class InvalidMessage(DecodeError):
    """A message or certificate that must be dropped; `reason` is the drop counter's label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Committee:
    """The fixed replica set: n = 3f + 1 (extra replicas beyond that only add redundancy)."""

    nodes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.nodes or len(set(self.nodes)) != len(self.nodes):
            raise ValueError("a committee needs at least one replica and no duplicate ids")

    @property
    def n(self) -> int:
        return len(self.nodes)

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        return 2 * self.f + 1

    def primary(self, view: int) -> str:
        return self.nodes[view % self.n]

    def ordered(self, senders: Iterable[str]) -> list[str]:
        rank = {node: i for i, node in enumerate(self.nodes)}
        return sorted(senders, key=rank.__getitem__)


@dataclass(frozen=True)
class ParsedViewChange:
    message: pb.PBFTMessage
    view: int
    sender: str
    stable_sequence: int
    stable_digest: bytes
    checkpoint_proof: tuple[pb.PBFTMessage, ...]
    #: sequence -> (view it prepared in, batch digest, the signed PRE_PREPARE)
    prepared: dict[int, tuple[int, bytes, pb.PBFTMessage]]


@dataclass(frozen=True)
class NewViewPlan:
    """What a NEW_VIEW for `view` must re-issue: one batch per sequence in (low, high]."""

    view: int
    low: int
    certificate: pb.CheckpointCertificate | None
    #: (sequence, PrePrepare payload bytes, digest), in sequence order
    entries: tuple[tuple[int, bytes, bytes], ...]

    @property
    def high(self) -> int:
        return self.entries[-1][0] if self.entries else self.low


def parse_payload(cls: type[M], data: bytes) -> M:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (ProtoDecodeError, ValueError) as exc:
        raise InvalidMessage("malformed", f"{cls.__name__}: {exc}") from None
    return msg


def null_batch(view: int) -> bytes:
    """The empty batch a new primary proposes for a sequence nobody prepared."""
    return pb.PrePrepare(view=view).SerializeToString(deterministic=True)


def check_checkpoint_proof(
    sequence: int,
    digest: bytes,
    proof: Sequence[pb.PBFTMessage],
    committee: Committee,
    checker: SignatureChecker,
    interval: int,
) -> None:
    """2f+1 CHECKPOINT messages from distinct replicas, all for (sequence, digest), all signed."""
    if sequence == 0 or sequence % interval or len(digest) != DIGEST_SIZE:
        raise InvalidMessage("invalid_proof", f"no checkpoint can exist at {sequence}")
    senders: set[str] = set()
    for msg in proof:
        if (msg.type != pb.CHECKPOINT or msg.sequence != sequence or msg.digest != digest
                or msg.node_id in senders or not checker.knows_replica(msg.node_id)):
            raise InvalidMessage("invalid_proof", "checkpoint proof with a foreign message")
        if not checker.envelope(msg):
            raise InvalidMessage("invalid_proof", "checkpoint proof with a bad signature")
        senders.add(msg.node_id)
    if len(senders) < committee.quorum:
        raise InvalidMessage("invalid_proof", f"checkpoint proof has {len(senders)} signers")


def check_certificate(
    cert: pb.CheckpointCertificate, committee: Committee, checker: SignatureChecker, interval: int
) -> None:
    check_checkpoint_proof(cert.sequence, cert.state_digest, cert.proof, committee, checker,
                           interval)


def make_certificate(
    sequence: int, digest: bytes, votes: dict[str, pb.PBFTMessage], committee: Committee
) -> pb.CheckpointCertificate:
    senders = committee.ordered(votes)[: committee.quorum]
    return pb.CheckpointCertificate(
        sequence=sequence, state_digest=digest, proof=[votes[s] for s in senders]
    )


def check_prepared(
    cert: pb.PreparedCertificate,
    before_view: int,
    committee: Committee,
    checker: SignatureChecker,
) -> tuple[int, int, bytes]:
    """A PRE_PREPARE and 2f matching PREPAREs from distinct backups -> (seq, view, digest)."""
    pp = cert.pre_prepare
    view, seq = pp.view, pp.sequence
    if (pp.type != pb.PRE_PREPARE or view >= before_view or seq == 0
            or pp.node_id != committee.primary(view) or pp.digest != sha256(pp.payload)):
        raise InvalidMessage("invalid_proof", "prepared certificate with a bad pre-prepare")
    if not checker.envelope(pp):
        raise InvalidMessage("invalid_proof", "prepared certificate pre-prepare signature")
    senders: set[str] = set()
    for prep in cert.prepares:
        if (prep.type != pb.PREPARE or prep.view != view or prep.sequence != seq
                or prep.digest != pp.digest or prep.node_id == pp.node_id
                or prep.node_id in senders or not checker.knows_replica(prep.node_id)):
            raise InvalidMessage("invalid_proof", "prepared certificate with a foreign prepare")
        if not checker.envelope(prep):
            raise InvalidMessage("invalid_proof", "prepared certificate prepare signature")
        senders.add(prep.node_id)
    if len(senders) < 2 * committee.f:
        raise InvalidMessage("invalid_proof", f"prepared certificate has {len(senders)} prepares")
    return seq, view, pp.digest


def parse_view_change(
    msg: pb.PBFTMessage,
    committee: Committee,
    checker: SignatureChecker,
    interval: int,
    window: int,
) -> ParsedViewChange:
    """Validate a signed VIEW_CHANGE with all its proofs (its envelope signature included)."""
    if not checker.envelope(msg):
        raise InvalidMessage("bad_signature")
    body = parse_payload(pb.ViewChange, msg.payload)
    low = body.stable_sequence
    if low != msg.sequence:
        raise InvalidMessage("malformed", "view change sequence differs from stable_sequence")
    digest = b""
    if low:
        digest = msg.digest
        check_checkpoint_proof(low, digest, body.checkpoint_proof, committee, checker, interval)
    elif body.checkpoint_proof:
        raise InvalidMessage("malformed", "checkpoint proof for the genesis checkpoint")
    prepared: dict[int, tuple[int, bytes, pb.PBFTMessage]] = {}
    for cert in body.prepared:
        seq, view, batch = check_prepared(cert, msg.view, committee, checker)
        if not low < seq <= low + window or seq in prepared:
            raise InvalidMessage("invalid_proof", f"prepared certificate for sequence {seq}")
        prepared[seq] = (view, batch, cert.pre_prepare)
    return ParsedViewChange(msg, msg.view, msg.node_id, low, digest,
                            tuple(body.checkpoint_proof), prepared)


def plan_new_view(view: int, changes: Sequence[ParsedViewChange]) -> NewViewPlan:
    """Start after the newest stable checkpoint; re-propose the newest prepared batch of each
    sequence above it, and an empty batch where no certificate reports one."""
    base = max(changes, key=lambda c: c.stable_sequence)
    low = base.stable_sequence
    cert = None
    if low:
        cert = pb.CheckpointCertificate(sequence=low, state_digest=base.stable_digest,
                                        proof=base.checkpoint_proof)
    best: dict[int, tuple[int, bytes, pb.PBFTMessage]] = {}
    for change in changes:
        for seq, (pview, digest, pp) in change.prepared.items():
            if seq <= low:
                continue
            current = best.get(seq)
            if current is None or (pview, digest) > (current[0], current[1]):
                best[seq] = (pview, digest, pp)
    high = max(best, default=low)
    entries = []
    for seq in range(low + 1, high + 1):
        if seq in best:
            pp = best[seq][2]
            entries.append((seq, pp.payload, pp.digest))
        else:
            payload = null_batch(view)
            entries.append((seq, payload, sha256(payload)))
    return NewViewPlan(view, low, cert, tuple(entries))
