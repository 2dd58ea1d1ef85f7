"""The CHECKPOINT votes a replica collects, and the certificates they make.

Every `checkpoint_interval` sequences each replica signs the hash of the block it executed
there. 2f+1 matching signatures make a stable checkpoint: the log below it can go, and the
watermarks move. Votes for sequences beyond the high watermark are kept apart, one (the
newest) per sender: 2f+1 of them for one checkpoint prove how far the others got, f+1 of any
kind that this replica fell behind; either way it catches up by state transfer
(state_transfer.py), not by the log.

This module owns the votes and this replica's own CHECKPOINTs; the engine owns the watermarks
(the log and the view change read them everywhere) and decides what a certificate means: a
stable checkpoint if this replica executed that far and agrees, a transfer target if it has
not.
"""

from __future__ import annotations

from collections.abc import Callable

from blockmesh.control.consensus.proofs import (
    DIGEST_SIZE,
    Committee,
    InvalidMessage,
    make_certificate,
    parse_payload,
)
from blockmesh.control.proto import pbft_pb2 as pb


class Checkpoints:
    """CHECKPOINT messages by sequence, the newest far one per sender, and the stable one."""

    def __init__(self, committee: Committee, interval: int) -> None:
        self._committee = committee
        self._interval = interval
        #: The certificate of the low watermark (None at genesis).
        self.stable: pb.CheckpointCertificate | None = None
        #: sequence -> this replica's own CHECKPOINT, from the stable one up (the newest is
        #: retransmitted, the rest say what it executed).
        self.own: dict[int, pb.PBFTMessage] = {}
        #: sequence -> sender -> CHECKPOINT, for sequences within the watermarks.
        self.votes: dict[int, dict[str, pb.PBFTMessage]] = {}
        #: sender -> its newest CHECKPOINT above the high watermark.
        self.far: dict[str, pb.PBFTMessage] = {}

    def add_own(self, msg: pb.PBFTMessage, low: int) -> None:
        """This replica's CHECKPOINT: kept, and counted as its vote above the low watermark."""
        seq = msg.sequence
        self.own[seq] = msg
        if seq > low:
            self.votes.setdefault(seq, {})[msg.node_id] = msg

    def receive(self, msg: pb.PBFTMessage, low: int, high: int,
                verify: Callable[[pb.PBFTMessage], None]) -> bool:
        """Record another replica's CHECKPOINT: True if it is within the watermarks (a vote for
        its sequence), False if beyond them (a far one). Raises InvalidMessage to drop it;
        `verify` checks the signature, only of a message that adds something."""
        seq, sender = msg.sequence, msg.node_id
        if seq == 0 or seq % self._interval or len(msg.digest) != DIGEST_SIZE:
            raise InvalidMessage("malformed")
        if seq <= low:
            raise InvalidMessage("outside_watermarks")
        body = parse_payload(pb.Checkpoint, msg.payload)
        if body.height != seq or body.state_digest != msg.digest:
            raise InvalidMessage("malformed")
        if seq <= high:
            votes = self.votes.get(seq, {})
            known = votes.get(sender)
            if known is not None:
                raise InvalidMessage("duplicate" if known.digest == msg.digest else "conflicting")
            verify(msg)
            self.votes.setdefault(seq, {})[sender] = msg
            return True
        known = self.far.get(sender)
        if known is not None and known.sequence >= seq:
            raise InvalidMessage("duplicate")
        verify(msg)
        self.far[sender] = msg
        return False

    def certificate(self, seq: int) -> pb.CheckpointCertificate | None:
        """2f+1 matching votes for `seq`, if they arrived."""
        by_digest: dict[bytes, dict[str, pb.PBFTMessage]] = {}
        for sender, msg in self.votes.get(seq, {}).items():
            by_digest.setdefault(msg.digest, {})[sender] = msg
        for digest, group in by_digest.items():
            if len(group) >= self._committee.quorum:
                return make_certificate(seq, digest, group, self._committee)
        return None

    def far_certificate(self) -> pb.CheckpointCertificate | None:
        """The highest checkpoint beyond the watermarks that 2f+1 far votes agree on."""
        groups: dict[tuple[int, bytes], dict[str, pb.PBFTMessage]] = {}
        for sender, msg in self.far.items():
            groups.setdefault((msg.sequence, msg.digest), {})[sender] = msg
        for (seq, digest), group in sorted(groups.items(), reverse=True):
            if len(group) >= self._committee.quorum:
                return make_certificate(seq, digest, group, self._committee)
        return None

    def agrees(self, cert: pb.CheckpointCertificate) -> bool:
        """Whether this replica signed the same state at the certificate's sequence."""
        own = self.own.get(cert.sequence)
        return own is not None and own.digest == cert.state_digest

    def stabilize(self, cert: pb.CheckpointCertificate, high: int) -> list[int]:
        """`cert` is the new low watermark and `high` the new high one: forget what is below,
        turn far votes now within the window into votes, and return their sequences (to be
        checked for a certificate)."""
        seq = cert.sequence
        self.stable = cert
        self.votes = {s: v for s, v in self.votes.items() if s > seq}
        self.own = {s: m for s, m in self.own.items() if s >= seq}
        moved = sorted({m.sequence for m in self.far.values() if m.sequence <= high})
        for sender, msg in list(self.far.items()):
            if msg.sequence <= high:
                del self.far[sender]
                if msg.sequence > seq:
                    self.votes.setdefault(msg.sequence, {})[sender] = msg
        return moved

    def checkpointed(self, peer: str, low: int) -> int:
        """The highest sequence `peer` is known to have executed (by its CHECKPOINT)."""
        return max((s for s, votes in self.votes.items() if peer in votes), default=low)

    def newest_own(self) -> pb.PBFTMessage | None:
        return self.own[max(self.own)] if self.own else None
