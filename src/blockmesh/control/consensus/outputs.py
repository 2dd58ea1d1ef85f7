"""What one engine step asks its runtime to do, and the records it asks it to persist first.

The runtime applies `Output` in a fixed order: write every record of `persist` in one
transaction, then send `send` and `replies`, then act on `fetch`. Writing first is what lets a
replica killed at any moment come back without contradicting a vote it already sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blockmesh.control.proto import pbft_pb2 as pb


@dataclass(frozen=True)
class SaveView:
    """The replica's view, and whether it is still collecting VIEW_CHANGEs for it."""

    view: int
    view_changing: bool


@dataclass(frozen=True)
class SaveMessage:
    """A message this replica sent or a PRE_PREPARE it voted for; key (type, view, seq, node)."""

    message: pb.PBFTMessage


@dataclass(frozen=True)
class SavePrepared:
    """The highest-view prepared certificate of a sequence, carried by later VIEW_CHANGEs."""

    sequence: int
    certificate: pb.PreparedCertificate


@dataclass(frozen=True)
class SaveBlock:
    block: pb.Block


@dataclass(frozen=True)
class SaveCheckpoint:
    """A stable checkpoint; the store may drop log records at or below its sequence."""

    certificate: pb.CheckpointCertificate


Record = SaveView | SaveMessage | SavePrepared | SaveBlock | SaveCheckpoint


@dataclass(frozen=True)
class Send:
    """A message for one replica (`to`) or, with `to` None, for every other replica."""

    message: pb.PBFTMessage
    to: str | None = None


@dataclass(frozen=True)
class ClientReply:
    client_id: str
    message: pb.PBFTMessage
    #: The message's parsed payload when the engine built it (saves parsing it back).
    body: pb.Reply | None = None


@dataclass(frozen=True)
class FetchState:
    """Ask peers (SyncState / GetCheckpoint) for blocks from_height..to_height.

    to_height 0 means "as far as the peer has". `certificate`, when known, is the stable
    checkpoint the blocks must reach; peers' own certificates are welcome too. Feed every block
    and certificate obtained to `on_state_fetched`, in height order.
    """

    from_height: int
    to_height: int
    certificate: pb.CheckpointCertificate | None = None


@dataclass(frozen=True)
class Metric:
    """A counter increment or gauge sample, e.g. ("drop", 1, "bad_signature")."""

    name: str
    value: float = 1.0
    label: str = ""


@dataclass
class Output:
    persist: list[Record] = field(default_factory=list)
    send: list[Send] = field(default_factory=list)
    replies: list[ClientReply] = field(default_factory=list)
    committed: list[pb.Block] = field(default_factory=list)
    fetch: FetchState | None = None
    metrics: list[Metric] = field(default_factory=list)
    #: Call tick() no later than this (on the clock the engine is fed); always set by the engine.
    wake_at: float | None = None
