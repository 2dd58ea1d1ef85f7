"""Per-peer accounting and the wantlist a peer has told us, as the decision engine keeps them."""

from __future__ import annotations

from dataclasses import dataclass

from blockmesh.data.bitswap.message import WantType
from blockmesh.data.cid import CID


@dataclass(frozen=True, slots=True)
class Want:
    """What a peer asked of us for one CID."""

    cid: CID
    priority: int
    want_type: WantType
    send_dont_have: bool


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """The `bitswap ledger <peer>` view: exchange counts plus the peer's wantlist size."""

    bytes_sent: int
    bytes_received: int
    blocks_sent: int
    blocks_received: int
    exchanged: int
    wantlist_size: int

    @property
    def debt_ratio(self) -> float:
        """Sent over received, as kubo's `Value`: how much this peer owes us."""
        return self.bytes_sent / (self.bytes_received + 1)


class Ledger:
    """Counters and the wantlist for one peer. The wantlist is bounded by its owner."""

    def __init__(self) -> None:
        self.bytes_sent = 0
        self.bytes_received = 0
        self.blocks_sent = 0
        self.blocks_received = 0
        self.exchanged = 0  # blocks moved either way, as boxo's exchange count
        self.wants: dict[CID, Want] = {}
        # Stores key blocks by multihash, so a block arriving under one CID satisfies wants made
        # with another CID of the same bytes (CIDv0 vs CIDv1 dag-pb).
        self._by_hash: dict[bytes, set[CID]] = {}

    def sent_block(self, size: int) -> None:
        self.bytes_sent += size
        self.blocks_sent += 1
        self.exchanged += 1

    def received_block(self, size: int) -> None:
        self.bytes_received += size
        self.blocks_received += 1
        self.exchanged += 1

    def add_want(self, want: Want) -> None:
        """Record a want; a want-have never downgrades a want-block already held (as boxo)."""
        old = self.wants.get(want.cid)
        if old is not None and old.want_type is WantType.BLOCK and want.want_type is WantType.HAVE:
            want = Want(want.cid, want.priority, WantType.BLOCK,
                        want.send_dont_have or old.send_dont_have)
        self.wants[want.cid] = want
        self._by_hash.setdefault(want.cid.multihash, set()).add(want.cid)

    def remove_want(self, cid: CID, only: WantType | None = None) -> bool:
        """Drop the want for `cid` (only of type `only` when given); True if one was dropped."""
        want = self.wants.get(cid)
        if want is None or (only is not None and want.want_type is not only):
            return False
        del self.wants[cid]
        same = self._by_hash[cid.multihash]
        same.discard(cid)
        if not same:
            del self._by_hash[cid.multihash]
        return True

    def clear_wants(self) -> None:
        self.wants.clear()
        self._by_hash.clear()

    def wants_for(self, multihash: bytes) -> list[Want]:
        return [self.wants[c] for c in self._by_hash.get(multihash, ())]

    def snapshot(self) -> LedgerSnapshot:
        return LedgerSnapshot(self.bytes_sent, self.bytes_received, self.blocks_sent,
                              self.blocks_received, self.exchanged, len(self.wants))
