"""Which peers to dial now: targets kept connected with backoff between attempts.

One engine serves the bootstrap list (dialled only while the node has fewer peers than its
threshold), the peering list (always wanted), and the cluster members' data-plane connections.
The adapter reports what happened (`started`, `failed`, `connected`, `disconnected`) and asks
`due(now)` which targets to dial; the engine never dials anything itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from blockmesh.data.connectivity.backoff import Backoff, BackoffPolicy


@dataclass
class Target:
    peer: str
    addrs: tuple[str, ...]
    backoff: Backoff
    next_at: float = 0.0
    dialing: bool = False
    connected: bool = False
    last_error: str | None = None
    attempts: int = 0
    rotation: int = field(default=0)

    def addr(self) -> str:
        """The address to try next: each failure moves on to the target's next address."""
        return self.addrs[self.rotation % len(self.addrs)]


class Redialer:
    """Targets by peer id, each with its own backoff."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        self.targets: dict[str, Target] = {}

    def add(self, peer: str, addrs: tuple[str, ...], now: float) -> None:
        """Keep `peer` connected at `addrs` (full multiaddrs); due at once if new."""
        if not addrs:
            raise ValueError(f"no address to dial {peer} at")
        target = self.targets.get(peer)
        if target is None:
            self.targets[peer] = Target(peer, addrs, Backoff(self.policy, self._rng), now)
        else:
            target.addrs = addrs

    def remove(self, peer: str) -> None:
        self.targets.pop(peer, None)

    def due(self, now: float, limit: int | None = None) -> list[Target]:
        """Targets to dial now (not connected, not being dialled, backoff elapsed), longest
        waiting first, at most `limit`; each is marked as being dialled, so the adapter must
        answer with `failed` or `connected`."""
        out = sorted((t for t in self.targets.values()
                      if not t.connected and not t.dialing and t.next_at <= now),
                     key=lambda t: t.next_at)[:limit]
        for target in out:
            target.dialing = True
            target.attempts += 1
        return out

    def failed(self, peer: str, error: str, now: float) -> None:
        target = self.targets.get(peer)
        if target is None:
            return
        target.dialing = False
        target.last_error = error
        target.rotation += 1
        target.next_at = now + target.backoff.next_delay()

    def connected(self, peer: str) -> None:
        target = self.targets.get(peer)
        if target is None:
            return
        target.dialing = False
        target.connected = True
        target.last_error = None
        target.backoff.reset()

    def disconnected(self, peer: str, now: float) -> None:
        """The peer went away: redial after a first jittered delay (a peer that restarts is
        not redialled by every node in the same instant)."""
        target = self.targets.get(peer)
        if target is None or not target.connected:
            return
        target.connected = False
        target.next_at = now + target.backoff.next_delay()

    def next_deadline(self) -> float | None:
        waiting = [t.next_at for t in self.targets.values() if not t.connected and not t.dialing]
        return min(waiting, default=None)

    def connected_count(self) -> int:
        return sum(t.connected for t in self.targets.values())


def below_threshold(connected_peers: int, min_peers: int) -> bool:
    """Bootstrap dials only while the node has fewer peers than this (kubo's MinPeerThreshold):
    a node that already has enough peers leaves the bootstrap peers alone."""
    return connected_peers < min_peers
