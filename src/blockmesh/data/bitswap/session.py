"""A client session: one caller fetching related blocks (a DAG) from whichever peers have them.

Discovery asks with want-have; want-blocks are then spread over the peers that said HAVE (or,
optimistically, over peers that already served this session), at most
`max_inflight_blocks_per_peer` each. A block is asked of one peer at a time, so it is not
fetched twice unless a peer stalls: a DONT_HAVE, a timeout (`want_block_timeout`, checked by
`tick`) or a disconnect moves the want to the next peer. The caller feeds CIDs in with `want`
and takes verified blocks out with `take`, walking the DAG itself to decide what comes next.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from blockmesh.data.bitswap.message import PresenceType, WantType
from blockmesh.data.bitswap.protocol import PeerId
from blockmesh.data.cid import CID, HashCode, Multihash

if TYPE_CHECKING:
    from blockmesh.data.bitswap.client import Client


@dataclass
class _Want:
    cid: CID
    priority: int
    block_peer: PeerId | None = None
    block_sent_at: float = 0.0
    asked_at: float = 0.0
    asked: set[PeerId] = field(default_factory=set)
    haves: set[PeerId] = field(default_factory=set)
    dont_haves: set[PeerId] = field(default_factory=set)


class Session:
    """Create with `Client.new_session`; every method takes the current time from the caller."""

    def __init__(self, client: Client, session_id: int,
                 only: frozenset[PeerId] | None = None, keep: bool = True) -> None:
        self.id = session_id
        #: When set, the session asks these peers alone and takes blocks only from them: an
        #: audit must learn what one member serves, not what the swarm has.
        self.only = only
        #: False: blocks are verified and handed to the caller, not stored (an audit checks
        #: another member; storing what it sampled would quietly repair a member that lies).
        self.keep = keep
        self._client = client
        self._config = client.config
        self._queue: deque[CID] = deque()
        self._queued: dict[CID, int] = {}  # cid -> priority, for wants not live yet
        self._live: dict[CID, _Want] = {}
        self._peers: set[PeerId] = set()  # peers that had something for this session
        self._inflight: dict[PeerId, int] = {}
        self._ready: list[tuple[CID, bytes]] = []
        self._by_hash: dict[bytes, set[CID]] = {}  # pending CIDs by multihash (blocks match so)
        self.closed = False
        self.timeouts = 0
        self._idle_since: float | None = None  # last block (or first check); None: reset
        self._searched: dict[CID, float] = {}  # provider lookups asked for, by want

    # -- caller API ----------------------------------------------------------------------------
    def want(self, cids: Iterable[CID], now: float) -> None:
        """Ask for blocks; earlier CIDs get higher priority. Repeats of pending CIDs are ignored."""
        if self.closed:
            raise RuntimeError("session is closed")
        for cid in cids:
            if cid in self._queued or cid in self._live:
                continue
            if cid.hash_code == HashCode.IDENTITY:  # the block is the digest: nothing to fetch
                self._ready.append((cid, Multihash.decode(cid.multihash).digest))
                continue
            self._queued[cid] = self._client.next_priority()
            self._queue.append(cid)
            self._by_hash.setdefault(cid.multihash, set()).add(cid)
            self._client.register(self, cid)
        self._pump(now)

    def cancel(self, cids: Iterable[CID], now: float) -> None:
        """Stop wanting `cids` (peers are told unless another session still wants them)."""
        dropped = [cid for cid in cids if self._forget(cid)]
        if dropped:
            self._queue = deque(c for c in self._queue if c in self._queued)
            self._client.unregister(self, dropped)
        self._pump(now)

    def take(self) -> list[tuple[CID, bytes]]:
        """Blocks received since the last call, each verified against the CID that was wanted."""
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> None:
        if self.closed:
            return
        pending = list(self._live) + list(self._queued)
        self._live.clear()
        self._queued.clear()
        self._queue.clear()
        self._inflight.clear()
        self._by_hash.clear()
        self._searched.clear()
        self.closed = True
        self._client.unregister(self, pending)
        self._client.forget_session(self)

    @property
    def pending(self) -> int:
        """Blocks wanted and not yet received."""
        return len(self._live) + len(self._queued)

    @property
    def done(self) -> bool:
        return not self.pending and not self._ready

    @property
    def peers(self) -> frozenset[PeerId]:
        return frozenset(self._peers)

    def wants(self) -> list[CID]:
        return list(self._live) + list(self._queue)

    def wants_cid(self, cid: CID) -> bool:
        return cid in self._live or cid in self._queued

    def wants_hash(self, multihash: bytes) -> bool:
        return multihash in self._by_hash

    def cids_for(self, multihash: bytes) -> list[CID]:
        return list(self._by_hash.get(multihash, ()))

    # -- events from the client ----------------------------------------------------------------
    # Event handlers leave the session to be pumped once per message by the client (`pump`):
    # re-planning after each of a message's hundreds of blocks would be quadratic.
    def on_block(self, peer: PeerId, multihash: bytes, data: bytes) -> list[CID]:
        """A verified block arrived; returns the CIDs of this session it satisfied."""
        if self.only is not None and peer not in self.only:
            return []
        hits = self.cids_for(multihash)
        for cid in hits:
            self._forget(cid)
            self._ready.append((cid, data))
        if hits:
            self._peers.add(peer)
            self._idle_since = None
            if len(self._queue) != len(self._queued):
                self._queue = deque(c for c in self._queue if c in self._queued)
        return hits

    def on_presence(self, peer: PeerId, cid: CID, kind: PresenceType) -> None:
        want = self._live.get(cid)
        if want is None or (self.only is not None and peer not in self.only):
            return  # late answer for something already received or cancelled, or not asked
        if kind is PresenceType.HAVE:
            want.haves.add(peer)
            want.dont_haves.discard(peer)
            self._peers.add(peer)
        else:
            self._peer_lacks(want, peer)

    def on_peer_connected(self, peer: PeerId, now: float) -> None:
        if self.only is not None and peer not in self.only:
            return
        for want in self._live.values():
            if want.block_peer is None:
                self._ask(want, [peer], now)
        self._pump(now)

    def on_peer_disconnected(self, peer: PeerId, now: float) -> None:
        self._peers.discard(peer)
        self._inflight.pop(peer, None)
        for want in self._live.values():
            want.asked.discard(peer)
            want.haves.discard(peer)
            want.dont_haves.discard(peer)
            if want.block_peer == peer:
                want.block_peer = None
        self._pump(now)

    def needs_providers(self, now: float) -> list[CID]:
        """A CID (at most one per call) whose providers the caller should look up and connect.

        Asked of a want nobody holds: at once when the session has no peer to ask or every
        peer it asked said DONT_HAVE, else once the session has received nothing for
        `provider_search_delay`; the same CID again only after `provider_search_interval`.
        Providers of one block of a DAG usually hold the rest, so one lookup at a time suffices.
        An audit session (`only`) never looks beyond its peers."""
        if self.closed or self.only is not None:
            return []
        if self._idle_since is None:
            self._idle_since = now
        idle = now - self._idle_since >= self._config.provider_search_delay
        alone = not self._candidates()
        for want in self._live.values():
            if want.block_peer is not None or want.haves:
                continue
            refused = bool(want.asked) and want.asked <= want.dont_haves
            if not (alone or refused or idle):
                continue
            last = self._searched.get(want.cid)
            if last is not None and now - last < self._config.provider_search_interval:
                continue
            self._searched[want.cid] = now
            return [want.cid]
        return []

    def tick(self, now: float) -> None:
        for want in self._live.values():
            if (want.block_peer is not None
                    and now - want.block_sent_at >= self._config.want_block_timeout):
                self.timeouts += 1
                self._peer_lacks(want, want.block_peer)
            elif (want.block_peer is None
                  and now - want.asked_at >= self._config.rebroadcast_interval):
                # Nobody had it: forget old answers and ask everyone again.
                want.asked.clear()
                want.dont_haves.clear()
                self._ask(want, self._candidates(), now)
        self._pump(now)

    # -- internals -----------------------------------------------------------------------------
    def _candidates(self) -> list[PeerId]:
        peers = self._client.connected_peers()
        return peers if self.only is None else [p for p in peers if p in self.only]

    def _forget(self, cid: CID) -> bool:
        """Drop a pending CID from every structure; False if it was not pending."""
        want = self._live.pop(cid, None)
        self._searched.pop(cid, None)
        if want is not None:
            self._release(want)
        elif self._queued.pop(cid, None) is None:
            return False
        same = self._by_hash[cid.multihash]
        same.discard(cid)
        if not same:
            del self._by_hash[cid.multihash]
        return True

    def _peer_lacks(self, want: _Want, peer: PeerId) -> None:
        want.haves.discard(peer)
        want.dont_haves.add(peer)
        if want.block_peer == peer:
            self._release(want)

    def _release(self, want: _Want) -> None:
        peer = want.block_peer
        if peer is not None:
            left = self._inflight.get(peer, 0) - 1
            if left > 0:
                self._inflight[peer] = left
            else:
                self._inflight.pop(peer, None)
            want.block_peer = None

    def pump(self, now: float) -> None:
        """Send what the latest events made possible: new live wants, want-blocks, wider asks."""
        self._pump(now)

    def _pump(self, now: float) -> None:
        if self.closed:
            return
        while self._queue and len(self._live) < self._config.session_live_wants:
            cid = self._queue.popleft()
            priority = self._queued.pop(cid, None)
            if priority is None:
                continue
            want = self._live[cid] = _Want(cid, priority, asked_at=now)
            self._assign(want, now)
            self._ask(want, self._peers or self._candidates(), now)
        # Every unassigned live want is retried on every pump; with all peers at their in-flight
        # limit none can be assigned, so skip the search (it was most of a fetcher's Bitswap
        # CPU: ~80 futile searches per received block with 256 live wants).
        saturated = self._saturated()
        for want in self._live.values():
            if want.block_peer is None and not saturated:
                self._assign(want, now)
                saturated = want.block_peer is not None and self._saturated()
            if want.block_peer is None and want.asked <= want.dont_haves:
                # Everyone asked so far lacks it: widen the search to every connected peer.
                self._ask(want, self._candidates(), now)

    def _saturated(self) -> bool:
        """True when no connected peer can take another want-block (`_assign` would fail)."""
        limit = self._config.max_inflight_blocks_per_peer
        inflight = self._inflight
        return all(inflight.get(p, 0) >= limit for p in self._client.connected_peers())

    def _ask(self, want: _Want, peers: Iterable[PeerId], now: float) -> None:
        client = self._client
        for peer in peers:
            if peer in want.asked or peer == want.block_peer or not client.supports_have(peer):
                continue
            if client.send_want(peer, want.cid, WantType.HAVE, want.priority):
                want.asked.add(peer)
                want.asked_at = now

    def _assign(self, want: _Want, now: float) -> None:
        """Send the want-block to the least loaded peer likely to have the block."""
        client = self._client
        limit = self._config.max_inflight_blocks_per_peer
        usable = [p for p in want.haves if client.is_usable(p) and p not in want.dont_haves]
        if not usable:  # optimistic: peers that served this session probably hold its DAG
            usable = [p for p in self._peers if client.is_usable(p) and p not in want.dont_haves]
        if not usable:  # pre-1.2.0 peers cannot say HAVE: asking for the block is the question
            usable = [p for p in self._candidates()
                      if not client.supports_have(p) and p not in want.dont_haves]
        usable = [p for p in usable if self._inflight.get(p, 0) < limit]
        if not usable:
            return
        peer = min(usable, key=lambda p: (self._inflight.get(p, 0), client.rank(p)))
        if client.send_want(peer, want.cid, WantType.BLOCK, want.priority):
            want.block_peer = peer
            want.block_sent_at = now
            want.asked.add(peer)
            self._inflight[peer] = self._inflight.get(peer, 0) + 1
