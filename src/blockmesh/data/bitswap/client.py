"""The Bitswap client: our wantlist as each peer knows it, sessions, and checks on what arrives.

The want manager side remembers which wants each peer was sent, so a cancel goes exactly where a
want went, a new peer gets the full list in its first message, and every `rebroadcast_interval`
each peer gets the full list again (messages can be lost and peers restart). Every received
block is hashed against the CID that was wanted; a block nobody wanted (and that is not a
recent duplicate) is a strike against the sender.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from blockmesh.data.bitswap.config import DEFAULT_CONFIG, BitswapConfig
from blockmesh.data.bitswap.envelope import Envelope
from blockmesh.data.bitswap.framing import encode_frames
from blockmesh.data.bitswap.message import Entry, HashedBlock, Message, WantType
from blockmesh.data.bitswap.protocol import PeerId, ProtocolVersion
from blockmesh.data.bitswap.session import Session
from blockmesh.data.bitswap.strikes import PeerStrikes
from blockmesh.data.cid import CID
from blockmesh.errors import HashMismatch

_MAX_PRIORITY = (1 << 31) - 1


@dataclass
class _PeerWants:
    version: ProtocolVersion
    rank: int
    sent: dict[CID, Entry] = field(default_factory=dict)  # our wants as this peer knows them
    outbox: dict[CID, Entry] = field(default_factory=dict)  # changes not flushed yet
    full: bool = True  # the next message carries the whole list


@dataclass(frozen=True)
class ClientStats:
    blocks_received: int
    bytes_received: int
    dup_blocks_received: int
    dup_bytes_received: int
    messages_received: int
    wantlist_size: int


class Client:
    def __init__(self, config: BitswapConfig = DEFAULT_CONFIG,
                 strikes: PeerStrikes | None = None) -> None:
        self.config = config
        self.strikes = strikes or PeerStrikes(config.max_strikes, config.max_remembered_bad_peers)
        self._peers: dict[PeerId, _PeerWants] = {}
        self._sessions: dict[int, Session] = {}
        self._wanted: dict[bytes, set[Session]] = {}  # multihash -> sessions wanting it
        self._recent: OrderedDict[bytes, None] = OrderedDict()  # received lately (duplicates)
        self._session_ids = itertools.count(1)
        self._ranks = itertools.count()
        self._priority = _MAX_PRIORITY
        self._last_rebroadcast: float | None = None
        self.blocks_received = 0
        self.bytes_received = 0
        self.dup_blocks_received = 0
        self.dup_bytes_received = 0
        self.messages_received = 0

    # -- inputs --------------------------------------------------------------------------------
    def new_session(self, only: frozenset[PeerId] | None = None, keep: bool = True) -> Session:
        session = Session(self, next(self._session_ids), only, keep)
        self._sessions[session.id] = session
        return session

    def peer_connected(self, peer: PeerId, version: ProtocolVersion, now: float) -> None:
        if self.strikes.is_flagged(peer):
            return
        if peer in self._peers:
            self._peers[peer].version = version
            return
        self._peers[peer] = _PeerWants(version, next(self._ranks))
        for session in list(self._sessions.values()):
            session.on_peer_connected(peer, now)

    def peer_disconnected(self, peer: PeerId, now: float) -> None:
        if self._peers.pop(peer, None) is None:
            return
        for session in list(self._sessions.values()):
            session.on_peer_disconnected(peer, now)

    def receive(self, peer: PeerId, msg: Message, now: float) -> list[tuple[CID, bytes]]:
        """Handle the blocks and presences of `msg`; returns the blocks that were wanted, each
        under a CID that was asked for, by a session that keeps what it gets. The caller
        stores them; sessions also queue them."""
        if self.strikes.is_flagged(peer):
            return []
        self.messages_received += 1
        delivered = []
        touched: dict[int, Session] = {}
        for block in msg.blocks:
            multihash = block.cid.multihash
            sessions = self._wanted.get(multihash)
            if not sessions:
                self._unwanted(peer, multihash, len(block.data), now)
                continue
            wanted = self._wanted_cids(multihash)
            # A HashedBlock's multihash was computed from its bytes by the decoder and equals
            # the wanted one (the lookup above): hashing it again would prove nothing new.
            if not isinstance(block, HashedBlock):
                try:
                    wanted[0].verify(block.data)
                except HashMismatch:
                    self._strike(peer, f"block does not hash to {wanted[0]}", now)
                    continue
            self.blocks_received += 1
            self.bytes_received += len(block.data)
            del self._wanted[multihash]
            self._remember(multihash)
            for cid in wanted:
                self._cancel_everywhere(cid, answered_by=peer)
            for session in sessions:
                session.on_block(peer, multihash, block.data)
                touched[session.id] = session
            if any(session.keep for session in sessions):
                delivered.append((wanted[0], block.data))
        if self.strikes.is_flagged(peer):
            self._pump(touched, now)
            return delivered
        state = self._peers.get(peer)
        for presence in msg.presences:
            if state is not None:
                sent = state.sent.get(presence.cid)
                if sent is not None and sent.want_type is WantType.HAVE:
                    del state.sent[presence.cid]  # a server forgets a want-have once answered
            for session in self._wanted.get(presence.cid.multihash, ()):
                session.on_presence(peer, presence.cid, presence.type)
                touched[session.id] = session
        self._pump(touched, now)
        return delivered

    def stream_error(self, peer: PeerId, reason: str, now: float) -> bool:
        """A stream from `peer` carried garbage; True once the peer is flagged."""
        return self._strike(peer, reason, now)

    def tick(self, now: float) -> None:
        """Drive timeouts and the periodic full-wantlist rebroadcast."""
        if self._last_rebroadcast is None:
            self._last_rebroadcast = now
        elif now - self._last_rebroadcast >= self.config.rebroadcast_interval:
            self._last_rebroadcast = now
            for state in self._peers.values():
                if state.sent:
                    state.full = True
        for session in list(self._sessions.values()):
            session.tick(now)

    # -- outputs -------------------------------------------------------------------------------
    def outgoing(self) -> list[Envelope]:
        """Wantlist messages due to each peer (framed for its protocol version)."""
        out = []
        for peer, state in self._peers.items():
            if state.full:
                if not state.sent:
                    state.full = False  # nothing to ask this peer (a full list replaces cancels)
                    state.outbox.clear()
                    continue
                entries = tuple(state.sent.values())
            elif state.outbox:
                entries = tuple(state.outbox.values())
            else:
                continue
            msg = Message(entries, state.full)
            state.outbox.clear()
            state.full = False
            frames = encode_frames(msg, state.version, self.config.max_message_size)
            if frames:
                out.append(Envelope(peer, msg, tuple(frames)))
        return out

    # -- views ---------------------------------------------------------------------------------
    def wantlist(self) -> list[CID]:
        """Every CID some session still wants (`bitswap wantlist`)."""
        seen: dict[CID, None] = {}
        for session in self._sessions.values():
            for cid in session.wants():
                seen[cid] = None
        return list(seen)

    def sent_wants(self, peer: PeerId) -> dict[CID, WantType]:
        """What `peer` was told we want, by want type."""
        state = self._peers.get(peer)
        return {cid: e.want_type for cid, e in state.sent.items()} if state else {}

    def stats(self) -> ClientStats:
        return ClientStats(self.blocks_received, self.bytes_received, self.dup_blocks_received,
                           self.dup_bytes_received, self.messages_received, len(self.wantlist()))

    @property
    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    # -- what sessions use ---------------------------------------------------------------------
    def connected_peers(self) -> list[PeerId]:
        return [p for p in self._peers if not self.strikes.is_flagged(p)]

    def is_usable(self, peer: PeerId) -> bool:
        return peer in self._peers and not self.strikes.is_flagged(peer)

    def supports_have(self, peer: PeerId) -> bool:
        state = self._peers.get(peer)
        return state is not None and state.version.supports_have

    def rank(self, peer: PeerId) -> int:
        """Connection order, a stable tie-breaker when two peers are equally good."""
        return self._peers[peer].rank

    def next_priority(self) -> int:
        """Priorities count down, so earlier wants are served first (boxo does the same)."""
        value = self._priority
        self._priority = self._priority - 1 if self._priority > 1 else _MAX_PRIORITY
        return value

    def register(self, session: Session, cid: CID) -> None:
        self._wanted.setdefault(cid.multihash, set()).add(session)

    def unregister(self, session: Session, cids: list[CID]) -> None:
        """`session` dropped `cids`: cancel each at peers unless another session wants it."""
        for cid in cids:
            sessions = self._wanted.get(cid.multihash)
            if sessions is None:
                continue
            if not session.wants_hash(cid.multihash):
                sessions.discard(session)
                if not sessions:
                    del self._wanted[cid.multihash]
                    # a reply may already be on its way: it is a duplicate, not an offence
                    self._remember(cid.multihash)
            if not any(s.wants_cid(cid) for s in sessions):
                self._cancel_everywhere(cid)

    def forget_session(self, session: Session) -> None:
        self._sessions.pop(session.id, None)

    def send_want(self, peer: PeerId, cid: CID, kind: WantType, priority: int) -> bool:
        """Queue a want for `peer`; False if the peer cannot take it (gone, or a want-have to a
        pre-1.2.0 peer). A want-block is never downgraded to a want-have."""
        state = self._peers.get(peer)
        if state is None or self.strikes.is_flagged(peer):
            return False
        if kind is WantType.HAVE and not state.version.supports_have:
            return False
        old = state.sent.get(cid)
        if old is not None and (old.want_type is WantType.BLOCK or old.want_type is kind):
            return True
        entry = Entry(cid, priority, False, kind, True)
        state.sent[cid] = entry
        state.outbox[cid] = entry
        return True

    # -- internals -----------------------------------------------------------------------------
    def _wanted_cids(self, multihash: bytes) -> list[CID]:
        seen: dict[CID, None] = {}
        for session in self._wanted.get(multihash, ()):
            for cid in session.cids_for(multihash):
                seen[cid] = None
        return list(seen)

    def _cancel_everywhere(self, cid: CID, answered_by: PeerId | None = None) -> None:
        """Cancel `cid` wherever it was asked; the peer that sent the block dropped the want
        itself when it sent it, so it gets no cancel."""
        for peer, state in self._peers.items():
            if state.sent.pop(cid, None) is not None and peer != answered_by:
                state.outbox[cid] = Entry(cid, 0, True)

    def _unwanted(self, peer: PeerId, multihash: bytes, size: int, now: float) -> None:
        if multihash in self._recent:
            self.dup_blocks_received += 1
            self.dup_bytes_received += size
            return
        self._strike(peer, "sent a block nobody asked for", now)

    def _strike(self, peer: PeerId, reason: str, now: float) -> bool:
        flagged = self.strikes.strike(peer, reason)
        if flagged:
            self.peer_disconnected(peer, now)  # stop asking it; the adapter drops the link
        return flagged

    @staticmethod
    def _pump(sessions: dict[int, Session], now: float) -> None:
        for session in sessions.values():
            session.pump(now)

    def _remember(self, multihash: bytes) -> None:
        self._recent[multihash] = None
        self._recent.move_to_end(multihash)
        while len(self._recent) > self.config.recent_blocks_memory:
            self._recent.popitem(last=False)
