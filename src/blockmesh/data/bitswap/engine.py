"""One node's Bitswap: client and server over one block store, as the libp2p adapter drives it.

The adapter's loop is: `peer_connected` when a peer negotiates a Bitswap protocol; bytes from
each inbound stream through a `MessageReader` into `receive` (a BitswapError goes to
`stream_error` and the stream is reset); `tick` every so often; after any of these, send each
envelope of `outbox()` on a stream the adapter opened itself and report it with `message_sent`;
disconnect every peer in `flagged()`. Nothing here reads a clock or touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from blockmesh.data.bitswap.client import Client
from blockmesh.data.bitswap.config import DEFAULT_CONFIG, BitswapConfig
from blockmesh.data.bitswap.envelope import Envelope
from blockmesh.data.bitswap.ledger import LedgerSnapshot, Want
from blockmesh.data.bitswap.message import Message
from blockmesh.data.bitswap.protocol import PeerId, ProtocolVersion
from blockmesh.data.bitswap.server import DecisionEngine
from blockmesh.data.bitswap.session import Session
from blockmesh.data.bitswap.strikes import PeerStrikes
from blockmesh.data.cid import CID
from blockmesh.data.store.blockstore import Blockstore


@dataclass(frozen=True)
class BitswapStat:
    """The numbers `bitswap stat` shows (kubo's field names, snake-cased)."""

    blocks_received: int
    data_received: int
    blocks_sent: int
    data_sent: int
    dup_blks_received: int
    dup_data_received: int
    messages_received: int
    wantlist: tuple[CID, ...]
    peers: tuple[PeerId, ...]


class Bitswap:
    def __init__(self, store: Blockstore, config: BitswapConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.store = store
        self.strikes = PeerStrikes(config.max_strikes, config.max_remembered_bad_peers)
        self.server = DecisionEngine(store, config, self.strikes)
        self.client = Client(config, self.strikes)

    # -- inputs --------------------------------------------------------------------------------
    def peer_connected(self, peer: PeerId, protocol: str | ProtocolVersion, now: float) -> bool:
        """Returns False for a peer flagged before: the adapter should close the connection."""
        if self.strikes.is_flagged(peer):
            return False
        version = (protocol if isinstance(protocol, ProtocolVersion)
                   else ProtocolVersion.from_protocol_id(protocol))
        self.server.peer_connected(peer, version)
        self.client.peer_connected(peer, version, now)
        return True

    def peer_disconnected(self, peer: PeerId, now: float) -> None:
        self.server.peer_disconnected(peer)
        self.client.peer_disconnected(peer, now)

    def receive(self, peer: PeerId, msg: Message, now: float) -> list[tuple[CID, bytes]]:
        """Apply a decoded message. Wanted blocks are verified, stored, offered to peers that
        want them, and returned (sessions also hold them for their callers)."""
        if self.strikes.is_flagged(peer):
            return []
        self.server.message_received(peer, msg)
        blocks = self.client.receive(peer, msg, now)
        if self.strikes.is_flagged(peer):
            self.server.peer_disconnected(peer)
        if blocks:
            self.store.put_many(blocks, verify=False)  # Client.receive hashed each one
            self.server.blocks_added(cid for cid, _ in blocks)
        return blocks

    def stream_error(self, peer: PeerId, reason: str, now: float) -> bool:
        """An inbound stream carried garbage; True once the peer is flagged for disconnect."""
        flagged = self.client.stream_error(peer, reason, now)
        if flagged:
            self.server.peer_disconnected(peer)
        return flagged

    def add_blocks(self, blocks: Iterable[tuple[CID, bytes]]) -> None:
        """Store local blocks (an `add` while the node runs) and serve peers waiting for them."""
        items = list(blocks)
        self.store.put_many(items)
        self.server.blocks_added(cid for cid, _ in items)

    def new_session(self, only: frozenset[PeerId] | None = None, keep: bool = True) -> Session:
        return self.client.new_session(only, keep)

    def tick(self, now: float) -> None:
        self.client.tick(now)

    def message_sent(self, envelope: Envelope) -> None:
        self.server.message_sent(envelope)

    # -- outputs -------------------------------------------------------------------------------
    def outbox(self) -> list[Envelope]:
        """Everything due now: wantlist updates first, then replies within each peer's budget."""
        return self.client.outgoing() + self.server.envelopes()

    def flagged(self) -> dict[PeerId, str]:
        return self.strikes.flagged()

    def stat(self) -> BitswapStat:
        client = self.client.stats()
        return BitswapStat(
            blocks_received=client.blocks_received,
            data_received=client.bytes_received,
            blocks_sent=self.server.blocks_sent,
            data_sent=self.server.bytes_sent,
            dup_blks_received=client.dup_blocks_received,
            dup_data_received=client.dup_bytes_received,
            messages_received=client.messages_received,
            wantlist=tuple(self.client.wantlist()),
            peers=tuple(self.client.connected_peers()),
        )

    def ledger(self, peer: PeerId) -> LedgerSnapshot | None:
        return self.server.ledger(peer)

    def ledgers(self) -> dict[PeerId, LedgerSnapshot]:
        """Every connected peer's ledger (`bitswap ledger` for all peers)."""
        out = {}
        for peer in self.server.peers:
            snapshot = self.server.ledger(peer)
            if snapshot is not None:
                out[peer] = snapshot
        return out

    def peer_wantlist(self, peer: PeerId) -> list[Want]:
        """What `peer` wants from us (`bitswap wantlist --peer`)."""
        return self.server.peer_wantlist(peer)
