"""One iterative Kademlia lookup as a state machine: peers in, queries out, no I/O.

It follows go-libp2p-kad-dht's `query.go`: each peer the lookup knows is *heard* (not asked
yet), *waiting* (asked, no answer), *queried* (answered) or *unreachable* (failed or timed
out). Up to alpha = 10 queries are in flight at once (go's default concurrency), always to the
closest heard peers. The lookup ends when the beta = 3 closest peers that have not failed have
all answered (go's `isLookupTermination` with its default resiliency), or when nobody is left to
ask (starved), or when the caller stops it (a value or enough providers found), or at its
bounds: `max_queries` queries sent and `max_peers` peers remembered. Its result is the k = 20
closest peers that answered.

The adapter drives it: `next_queries(now)` says whom to ask; `on_response`/`on_failure` report
the outcome; `expire(now)` turns overdue queries into failures. `hops` (the deepest chain of
referrals among queried peers) and `messages` (queries sent) are kept for the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from blockmesh.data.routing.kad.table import K, key_of

ALPHA = 10  # go-libp2p-kad-dht defaultConcurrency
BETA = 3  # go-libp2p-kad-dht defaultResiliency
QUERY_TIMEOUT = 10.0  # per peer; go bounds a whole query by its context, this bounds each RPC
MAX_QUERIES = 200
MAX_PEERS = 1000


class PeerState(Enum):
    HEARD = "heard"
    WAITING = "waiting"
    QUERIED = "queried"
    UNREACHABLE = "unreachable"


@dataclass
class _Peer:
    key: int
    depth: int
    state: PeerState = PeerState.HEARD
    deadline: float = 0.0


class Lookup:
    """Find the peers closest to `target` (already a Kademlia key integer)."""

    def __init__(self, target: int, seeds: list[bytes], *, self_id: bytes | None = None,
                 alpha: int = ALPHA, beta: int = BETA, k: int = K,
                 timeout: float = QUERY_TIMEOUT, max_queries: int = MAX_QUERIES,
                 max_peers: int = MAX_PEERS) -> None:
        self.target = target
        self.alpha, self.beta, self.k = alpha, beta, k
        self.timeout = timeout
        self.max_queries, self.max_peers = max_queries, max_peers
        self._self_id = self_id
        self._peers: dict[bytes, _Peer] = {}
        self.messages = 0
        self.hops = 0
        self._stopped = False
        for seed in seeds:
            self._hear(seed, 0)

    # -- state -----------------------------------------------------------------------------------
    def _hear(self, peer: bytes, depth: int) -> None:
        if peer in self._peers or peer == self._self_id:
            return
        key = key_of(peer)
        if len(self._peers) >= self.max_peers:
            # Forget the farthest peer nobody has asked yet, if the newcomer is closer.
            heard = [(p, s) for p, s in self._peers.items() if s.state is PeerState.HEARD]
            if not heard:
                return
            far, far_state = max(heard, key=lambda item: item[1].key ^ self.target)
            if far_state.key ^ self.target <= key ^ self.target:
                return
            del self._peers[far]
        self._peers[peer] = _Peer(key, depth)

    def state(self, peer: bytes) -> PeerState | None:
        entry = self._peers.get(peer)
        return None if entry is None else entry.state

    def _closest(self, states: tuple[PeerState, ...], count: int) -> list[bytes]:
        chosen = sorted((s.key ^ self.target, p) for p, s in self._peers.items()
                        if s.state in states)
        return [p for _, p in chosen[:count]]

    @property
    def known(self) -> int:
        """Peers the lookup remembers, in any state (bounded by `max_peers`)."""
        return len(self._peers)

    @property
    def in_flight(self) -> int:
        return sum(1 for s in self._peers.values() if s.state is PeerState.WAITING)

    # -- driving ---------------------------------------------------------------------------------
    def next_queries(self, now: float) -> list[bytes]:
        """Peers to ask now (each becomes waiting until `now + timeout`)."""
        if self.done:
            return []
        room = min(self.alpha - self.in_flight, self.max_queries - self.messages)
        if room <= 0:
            return []
        chosen = self._closest((PeerState.HEARD,), room)
        for peer in chosen:
            entry = self._peers[peer]
            entry.state = PeerState.WAITING
            entry.deadline = now + self.timeout
        self.messages += len(chosen)
        return chosen

    def on_response(self, peer: bytes, closer: list[bytes]) -> None:
        entry = self._peers.get(peer)
        if entry is None or entry.state is not PeerState.WAITING:
            return  # late, after a timeout already counted it as failed
        entry.state = PeerState.QUERIED
        self.hops = max(self.hops, entry.depth + 1)
        for other in closer:
            self._hear(other, entry.depth + 1)

    def on_failure(self, peer: bytes) -> None:
        entry = self._peers.get(peer)
        if entry is not None and entry.state is PeerState.WAITING:
            entry.state = PeerState.UNREACHABLE

    def expire(self, now: float) -> list[bytes]:
        """Waiting peers past their deadline become unreachable; returns them."""
        late = [p for p, s in self._peers.items()
                if s.state is PeerState.WAITING and s.deadline <= now]
        for peer in late:
            self._peers[peer].state = PeerState.UNREACHABLE
        return late

    def next_deadline(self) -> float | None:
        waiting = [s.deadline for s in self._peers.values() if s.state is PeerState.WAITING]
        return min(waiting) if waiting else None

    def stop(self) -> None:
        """The caller has what it wanted (a value, enough providers)."""
        self._stopped = True

    # -- outcome ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def finish_reason(self) -> str | None:
        if self._stopped:
            return "stopped"
        live = (PeerState.HEARD, PeerState.WAITING, PeerState.QUERIED)
        closest = self._closest(live, self.beta)
        if closest and all(self._peers[p].state is PeerState.QUERIED for p in closest):
            return "converged"
        waiting = self.in_flight
        if waiting == 0 and not self._closest((PeerState.HEARD,), 1):
            return "starved"
        if waiting == 0 and self.messages >= self.max_queries:
            return "budget"
        return None

    def result(self) -> list[bytes]:
        """The k closest peers that answered, closest first."""
        return self._closest((PeerState.QUERIED,), self.k)
