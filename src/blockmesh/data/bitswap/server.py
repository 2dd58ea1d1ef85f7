"""The Bitswap server: decides what to send to whom, as boxo's decision engine does.

Inputs: a peer connected or left, a message from a peer, blocks added to the local store, and
"the adapter finished writing an envelope". Output: envelopes, pulled with `next_envelope`.
Peers are served fairly: the one with the fewest bytes in flight goes first, ties broken by who
was served longest ago, and a peer with `max_outstanding_bytes_per_peer` in flight waits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from blockmesh.data.bitswap.config import DEFAULT_CONFIG, BitswapConfig
from blockmesh.data.bitswap.envelope import Envelope
from blockmesh.data.bitswap.framing import encode_frames
from blockmesh.data.bitswap.ledger import Ledger, LedgerSnapshot, Want
from blockmesh.data.bitswap.linkorder import LinkOrder
from blockmesh.data.bitswap.message import (
    Block,
    Entry,
    Message,
    Presence,
    PresenceType,
    WantType,
)
from blockmesh.data.bitswap.protocol import PeerId, ProtocolVersion
from blockmesh.data.bitswap.strikes import PeerStrikes
from blockmesh.data.bitswap.taskqueue import PeerTasks, Task, TaskKind
from blockmesh.data.cid import CID, HashCode
from blockmesh.data.store.blockstore import Blockstore
from blockmesh.errors import NotFound

_PRESENCE_OVERHEAD = 4  # field keys and lengths around a presence's CID


@dataclass
class _Peer:
    version: ProtocolVersion
    order: LinkOrder
    ledger: Ledger = field(default_factory=Ledger)
    tasks: PeerTasks = field(default_factory=PeerTasks)
    outstanding: int = 0
    last_served: int = 0
    dropped_wants: int = 0


class DecisionEngine:
    def __init__(self, store: Blockstore, config: BitswapConfig = DEFAULT_CONFIG,
                 strikes: PeerStrikes | None = None) -> None:
        self._store = store
        self._config = config
        self._strikes = strikes or PeerStrikes(config.max_strikes, config.max_remembered_bad_peers)
        self._peers: dict[PeerId, _Peer] = {}
        self._turn = itertools.count(1)
        self.blocks_sent = 0
        self.bytes_sent = 0

    # -- inputs --------------------------------------------------------------------------------
    def peer_connected(self, peer: PeerId,
                       version: ProtocolVersion = ProtocolVersion.V1_2_0) -> None:
        state = self._peers.get(peer)
        if state is None:
            self._peers[peer] = self._new_peer(version)
        else:
            state.version = version

    def peer_disconnected(self, peer: PeerId) -> None:
        self._peers.pop(peer, None)

    def message_received(self, peer: PeerId, msg: Message) -> None:
        """Account received blocks and apply the wantlist part of `msg`."""
        if self._strikes.is_flagged(peer):
            return
        state = self._peers.get(peer)
        if state is None:  # the adapter should have said; assume the newest protocol
            state = self._peers[peer] = self._new_peer(ProtocolVersion.V1_2_0)
        for block in msg.blocks:
            state.ledger.received_block(len(block.data))
        if msg.full:
            state.ledger.clear_wants()
            state.tasks.clear()
        for entry in self._in_walk_order(state, msg.entries):
            if entry.cancel:
                state.ledger.remove_want(entry.cid)
                state.tasks.remove(entry.cid)
            elif not self._add_want(peer, state, entry):
                return

    def blocks_added(self, cids: Iterable[CID]) -> None:
        """Blocks just stored locally: peers that wanted them get them (or a HAVE)."""
        for cid in cids:
            for state in self._peers.values():
                for want in state.ledger.wants_for(cid.multihash):
                    self._queue_reply(state, want)

    def message_sent(self, envelope: Envelope) -> None:
        """The adapter wrote `envelope`: its bytes no longer count against the peer."""
        state = self._peers.get(envelope.peer)
        if state is not None:
            state.outstanding = max(0, state.outstanding - envelope.work)

    # -- outputs -------------------------------------------------------------------------------
    def next_envelope(self) -> Envelope | None:
        """The next reply to send, or None while nothing is due (or every peer is at its cap)."""
        while True:
            peer = self._pick_peer()
            if peer is None:
                return None
            envelope = self._build(peer, self._peers[peer])
            if envelope is not None:
                return envelope

    def envelopes(self) -> list[Envelope]:
        """Every reply due now, stopping at each peer's outstanding-bytes cap."""
        out = []
        while (envelope := self.next_envelope()) is not None:
            out.append(envelope)
        return out

    # -- views ---------------------------------------------------------------------------------
    @property
    def peers(self) -> list[PeerId]:
        return list(self._peers)

    def ledger(self, peer: PeerId) -> LedgerSnapshot | None:
        state = self._peers.get(peer)
        return state.ledger.snapshot() if state else None

    def peer_wantlist(self, peer: PeerId) -> list[Want]:
        """What `peer` wants from us, highest priority first (`bitswap wantlist --peer`)."""
        state = self._peers.get(peer)
        if state is None:
            return []
        return sorted(state.ledger.wants.values(), key=lambda w: -w.priority)

    def queued(self, peer: PeerId) -> int:
        state = self._peers.get(peer)
        return len(state.tasks) if state else 0

    def outstanding(self, peer: PeerId) -> int:
        state = self._peers.get(peer)
        return state.outstanding if state else 0

    # -- internals -----------------------------------------------------------------------------
    def _new_peer(self, version: ProtocolVersion) -> _Peer:
        return _Peer(version, LinkOrder(self._config.max_link_positions_per_peer))

    @staticmethod
    def _in_walk_order(state: _Peer, entries: tuple[Entry, ...]) -> list[Entry]:
        """`entries`, the want-blocks among them re-prioritised into walk order where their
        parent went to this peer from here (see linkorder.py for why)."""
        wanted = [i for i, e in enumerate(entries)
                  if not e.cancel and e.want_type is WantType.BLOCK]
        out = list(entries)
        if len(wanted) < 2 or not state.order:
            return out
        priorities = state.order.priorities([entries[i].cid for i in wanted],
                                            [entries[i].priority for i in wanted])
        for i, priority in zip(wanted, priorities, strict=True):
            if priority != entries[i].priority:
                out[i] = replace(entries[i], priority=priority)
        return out

    def _add_want(self, peer: PeerId, state: _Peer, entry: Entry) -> bool:
        """Record a want and queue its reply; False once the peer is flagged as a flooder."""
        ledger = state.ledger
        full = len(ledger.wants) >= self._config.max_wantlist_per_peer
        if full and entry.cid not in ledger.wants:
            state.dropped_wants += 1
            if state.dropped_wants > self._config.max_dropped_wants_per_peer:
                self._strikes.flag(peer, "wantlist flood")
                self._peers.pop(peer, None)
                return False
            return True
        if entry.cid.hash_code == HashCode.IDENTITY:
            return True  # the bytes are in the CID itself: nothing to send
        ledger.add_want(Want(entry.cid, entry.priority, entry.want_type, entry.send_dont_have))
        self._queue_reply(state, ledger.wants[entry.cid])
        return True

    def _block_size(self, cid: CID) -> int | None:
        """The stored block's size, or None when absent or too big to send."""
        try:
            size = self._store.size(cid)
        except NotFound:
            return None
        return size if size <= self._config.max_block_size else None

    def _queue_reply(self, state: _Peer, want: Want) -> None:
        size = self._block_size(want.cid)
        dont_have = want.send_dont_have and state.version.supports_have
        presence_size = len(bytes(want.cid)) + _PRESENCE_OVERHEAD
        if size is None:
            if dont_have:
                state.tasks.push(Task(want.cid, TaskKind.DONT_HAVE, want.priority, presence_size))
        elif (want.want_type is WantType.BLOCK
              or size <= self._config.max_replace_have_with_block
              or not state.version.supports_have):
            state.tasks.push(Task(want.cid, TaskKind.BLOCK, want.priority, size, dont_have))
        else:
            state.tasks.push(Task(want.cid, TaskKind.HAVE, want.priority, presence_size))

    def _pick_peer(self) -> PeerId | None:
        cap = self._config.max_outstanding_bytes_per_peer
        best = None
        best_key: tuple[int, int] | None = None
        for peer, state in self._peers.items():
            if not state.tasks or state.outstanding >= cap:
                continue
            key = (state.outstanding, state.last_served)
            if best_key is None or key < best_key:
                best, best_key = peer, key
        return best

    def _build(self, peer: PeerId, state: _Peer) -> Envelope | None:
        blocks: list[Block] = []
        presences: list[Presence] = []
        work = 0
        for task in state.tasks.pop_batch(self._config.target_message_size):
            if task.kind is TaskKind.BLOCK:
                try:
                    data = self._store.get(task.cid)
                except NotFound:  # deleted since the want was queued
                    if task.send_dont_have:
                        presences.append(Presence(task.cid, PresenceType.DONT_HAVE))
                        work += len(bytes(task.cid)) + _PRESENCE_OVERHEAD
                    continue
                blocks.append(Block(task.cid, data))
                state.order.learn(task.cid, data)
                state.ledger.sent_block(len(data))
                state.ledger.remove_want(task.cid)
                self.blocks_sent += 1
                self.bytes_sent += len(data)
                work += len(data)
            else:
                kind = PresenceType.HAVE if task.kind is TaskKind.HAVE else PresenceType.DONT_HAVE
                presences.append(Presence(task.cid, kind))
                # As boxo: a HAVE answers a want-have for good, but after a DONT_HAVE the want
                # stays, so the block reaches the peer if it is added here later.
                if kind is PresenceType.HAVE:
                    state.ledger.remove_want(task.cid, only=WantType.HAVE)
                work += task.size
        state.last_served = next(self._turn)
        if not blocks and not presences:
            return None
        msg = Message(blocks=tuple(blocks), presences=tuple(presences),
                      pending_bytes=state.tasks.block_bytes)
        frames = encode_frames(msg, state.version, self._config.max_message_size)
        state.outstanding += work
        return Envelope(peer, msg, tuple(frames), work)
