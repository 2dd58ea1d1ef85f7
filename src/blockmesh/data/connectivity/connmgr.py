"""The connection manager: keep the number of connected peers between two water marks.

Like kubo's basic connection manager (Swarm.ConnMgr: LowWater 32, HighWater 96, GracePeriod
20 s by default): when more than `high_water` peers are connected, the least useful are
closed until `low_water` remain. A peer is never closed while it is protected (cluster
members, peering peers, peers a Bitswap session is fetching from: each protection carries the
tag of whoever asked, and the peer stays protected until every tag is lifted) or during the
grace period after it connected. Usefulness is the sum of the peer's tag values plus a bonus
for traffic (Bitswap or DHT) within the last `activity_window` seconds; ties go to the peer
idle longest, then to the newest connection.

Counting is per peer (the host's per-peer connection events), not per socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Score of a peer that exchanged something within the activity window.
ACTIVITY_BONUS = 10


@dataclass(frozen=True)
class ConnMgrPolicy:
    low_water: int = 32
    high_water: int = 96
    grace_period: float = 20.0
    activity_window: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.low_water <= self.high_water:
            raise ValueError("connection manager needs 0 <= low_water <= high_water")
        if self.grace_period < 0 or self.activity_window < 0:
            raise ValueError("grace_period and activity_window must not be negative")


@dataclass
class _Peer:
    since: float
    last_active: float
    tags: dict[str, int] = field(default_factory=dict)


class ConnManager:
    def __init__(self, policy: ConnMgrPolicy) -> None:
        self.policy = policy
        self._peers: dict[str, _Peer] = {}
        self._protected: dict[str, set[str]] = {}
        self.trimmed = 0

    # -- events ---------------------------------------------------------------------------------
    def connected(self, peer: str, now: float) -> None:
        if peer not in self._peers:
            self._peers[peer] = _Peer(since=now, last_active=now)

    def disconnected(self, peer: str) -> None:
        self._peers.pop(peer, None)

    def active(self, peer: str, now: float) -> None:
        """The peer exchanged something useful (a Bitswap block or message, a DHT reply)."""
        state = self._peers.get(peer)
        if state is not None:
            state.last_active = max(state.last_active, now)

    def tag(self, peer: str, tag: str, value: int) -> None:
        state = self._peers.get(peer)
        if state is not None:
            state.tags[tag] = value

    def untag(self, peer: str, tag: str) -> None:
        state = self._peers.get(peer)
        if state is not None:
            state.tags.pop(tag, None)

    def protect(self, peer: str, tag: str) -> None:
        """Never trim `peer` while `tag` (or any other protection) holds. A protection
        outlives disconnects: a cluster member that reconnects is protected again at once."""
        self._protected.setdefault(peer, set()).add(tag)

    def unprotect(self, peer: str, tag: str) -> bool:
        """Lift one protection; True if the peer is still protected by another tag."""
        tags = self._protected.get(peer)
        if tags is None:
            return False
        tags.discard(tag)
        if not tags:
            del self._protected[peer]
            return False
        return True

    def is_protected(self, peer: str, tag: str | None = None) -> bool:
        tags = self._protected.get(peer, set())
        return bool(tags) if tag is None else tag in tags

    def protected_by(self, tag: str) -> set[str]:
        return {peer for peer, tags in self._protected.items() if tag in tags}

    # -- decisions ------------------------------------------------------------------------------
    def score(self, peer: str, now: float) -> int:
        state = self._peers[peer]
        bonus = ACTIVITY_BONUS if now - state.last_active <= self.policy.activity_window else 0
        return sum(state.tags.values()) + bonus

    def trim(self, now: float) -> list[str]:
        """Peers to disconnect now, least useful first (empty unless over the high mark)."""
        count = len(self._peers)
        if count <= self.policy.high_water:
            return []
        candidates = [p for p, s in self._peers.items()
                      if p not in self._protected and now - s.since >= self.policy.grace_period]
        candidates.sort(key=lambda p: (self.score(p, now), self._peers[p].last_active,
                                       -self._peers[p].since, p))
        victims = candidates[:count - self.policy.low_water]
        self.trimmed += len(victims)
        return victims

    def next_grace_end(self, now: float) -> float | None:
        """When a peer in its grace period becomes trimmable, if the node is over the mark."""
        if len(self._peers) <= self.policy.high_water:
            return None
        ends = [s.since + self.policy.grace_period for p, s in self._peers.items()
                if p not in self._protected and s.since + self.policy.grace_period > now]
        return min(ends, default=None)

    def info(self) -> dict[str, object]:
        return {"low_water": self.policy.low_water, "high_water": self.policy.high_water,
                "grace_period": self.policy.grace_period, "peers": len(self._peers),
                "protected": sorted(p for p in self._protected if p in self._peers),
                "trimmed": self.trimmed}
