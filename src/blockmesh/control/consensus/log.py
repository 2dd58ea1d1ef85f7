"""Per-sequence bookkeeping of the PBFT message log (what arrived, what this replica voted)."""

from __future__ import annotations

from dataclasses import dataclass, field

from blockmesh.control.proto import pbft_pb2 as pb

ClientKey = tuple[str, int]

#: Batches a slot keeps from views it is not voting in; honest traffic needs one per view change.
MAX_FOREIGN_BATCHES = 8
#: Views one sender may have COMMITs in for one slot; honest replicas send one per view.
MAX_COMMIT_VIEWS = 8
#: Digests one sender may COMMIT in one view. An honest replica commits one; keeping more lets
#: a relayed COMMIT count even after its sender equivocated to us, which is safe because 2f+1
#: signers of one digest always include f+1 honest ones.
MAX_COMMITS_PER_VIEW = 2


@dataclass
class Batch:
    """A PrePrepare payload, checked once and then shared by every view that orders it."""

    digest: bytes
    view: int
    requests: list[pb.Request]
    keys: list[ClientKey]


@dataclass
class Slot:
    """Everything known about one sequence number above the low watermark."""

    #: Batches known for this sequence, by digest (from any view: content-addressed, so safe).
    batches: dict[bytes, Batch] = field(default_factory=dict)
    #: One signed PRE_PREPARE per known batch, kept to relay it to replicas that missed it.
    pre_prepares: dict[bytes, pb.PBFTMessage] = field(default_factory=dict)
    #: view -> the PRE_PREPARE this replica accepted (and voted on) in that view.
    accepted: dict[int, pb.PBFTMessage] = field(default_factory=dict)
    #: view -> digest of a PRE_PREPARE this replica would vote for but could not authenticate
    #: every request of itself; it votes once f other backups prepared it.
    held: dict[int, bytes] = field(default_factory=dict)
    #: (view, digest) -> sender -> PREPARE, and (view, sender) -> digest to catch equivocation.
    prepares: dict[tuple[int, bytes], dict[str, pb.PBFTMessage]] = field(default_factory=dict)
    prepare_votes: dict[tuple[int, str], bytes] = field(default_factory=dict)
    #: (view, digest) -> sender -> COMMIT; (view, sender) -> digests it committed.
    commits: dict[tuple[int, bytes], dict[str, pb.PBFTMessage]] = field(default_factory=dict)
    commit_votes: dict[tuple[int, str], list[bytes]] = field(default_factory=dict)
    #: This replica's own PREPARE / COMMIT by (type, view), to retransmit verbatim.
    sent: dict[tuple[int, int], pb.PBFTMessage] = field(default_factory=dict)
    #: Highest view this replica prepared the sequence in, with the certificate proving it.
    prepared_view: int = -1
    prepared_cert: pb.PreparedCertificate | None = None
    #: Digest known committed (2f+1 matching COMMITs in one view); set once.
    committed: bytes | None = None
    #: When this replica executed the sequence (its clock), if it did.
    executed_at: float = 0.0
    #: (view, replica) of votes for the committed batch that arrived after execution, from
    #: their author (dropped unchecked as late: only the link it came on vouches for it).
    late_voters: set[tuple[int, str]] = field(default_factory=set)

    def holders(self) -> set[str]:
        """Replicas known to hold the committed batch, because they voted for it; the
        retransmission of an executed sequence spares them."""
        digest = self.committed
        return ({who for (_, who), voted in self.prepare_votes.items() if voted == digest}
                | {who for (_, who), voted in self.commit_votes.items() if digest in voted}
                | {who for _, who in self.late_voters})

    def add_prepare(self, view: int, sender: str, msg: pb.PBFTMessage) -> None:
        self.prepare_votes[(view, sender)] = msg.digest
        self.prepares.setdefault((view, msg.digest), {})[sender] = msg

    def add_commit(self, view: int, sender: str, msg: pb.PBFTMessage) -> None:
        self.commit_votes.setdefault((view, sender), []).append(msg.digest)
        self.commits.setdefault((view, msg.digest), {})[sender] = msg

    def make_room_for_digest(self, view: int, sender: str, digest: bytes, limit: int) -> bool:
        """Bound an equivocator's COMMITs per view, evicting a digest nobody else backs in favour
        of one others committed too, so random-digest spam cannot crowd out the real one."""
        known = self.commit_votes.get((view, sender), [])
        if len(known) < limit:
            return True
        weakest = min(known, key=lambda d: len(self.commits[(view, d)]))
        if len(self.commits[(view, weakest)]) > 1 or not self.commits.get((view, digest)):
            return False
        known.remove(weakest)
        del self.commits[(view, weakest)]
        return True

    def make_room_for_commit(self, view: int, sender: str, limit: int) -> bool:
        """Keep a sender's COMMITs to its `limit` newest views; False if `view` is older."""
        views = sorted(v for (v, who) in self.commit_votes if who == sender)
        if len(views) < limit:
            return True
        if view <= views[0]:
            return False
        oldest = views[0]
        for digest in self.commit_votes.pop((oldest, sender)):
            senders = self.commits[(oldest, digest)]
            senders.pop(sender, None)
            if not senders:
                del self.commits[(oldest, digest)]
        return True
