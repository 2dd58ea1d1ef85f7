"""Provider records this node keeps for others (ADD_PROVIDER) and for itself, with no I/O.

A record says "peer P has the content whose multihash is K"; it lives `validity` seconds after
it was last added (go-libp2p-kad-dht's `ProvideValidity`, 48 h) and providers republish well
before that (kubo: every 22 h).

Bounded, so a flood of ADD_PROVIDER costs a bounded amount of memory and one peer cannot crowd
out the rest: at most `max_per_key` providers per key (a newer one replaces the oldest),
`max_per_peer` records from any one remote peer, and `max_records` remote records in all (over
either cap a new record is refused and counted in `refused_peer_quota` / `refused_full`; a
held record can always be renewed). This node's own records (`add_own`) sit outside all three
caps: what it provides must stay answerable however many records others push at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROVIDE_VALIDITY = 48 * 3600.0  # go-libp2p-kad-dht providers.ProvideValidity
MAX_PER_KEY = 100
MAX_RECORDS = 100_000
MAX_PER_PEER = MAX_RECORDS // 10  # filling the store takes at least ten peers


@dataclass
class ProviderStore:
    validity: float = PROVIDE_VALIDITY
    max_per_key: int = MAX_PER_KEY
    max_records: int = MAX_RECORDS
    max_per_peer: int = MAX_PER_PEER
    #: This node's peer id, named as the provider of its own records.
    self_id: bytes = b""
    refused_full: int = 0
    refused_peer_quota: int = 0
    # key -> provider peer id -> (expiry, addresses)
    _records: dict[bytes, dict[bytes, tuple[float, tuple[bytes, ...]]]] = field(
        default_factory=dict)
    _per_peer: dict[bytes, int] = field(default_factory=dict)
    _count: int = 0
    _own: dict[bytes, float] = field(default_factory=dict)  # key -> expiry

    def __len__(self) -> int:
        """Records held for remote peers (the capped ones)."""
        return self._count

    def own(self) -> int:
        """This node's own records (an expired one stays counted until `gc`)."""
        return len(self._own)

    def add_own(self, key: bytes, now: float) -> None:
        """Record or renew this node as a provider of `key`; never refused."""
        self._own[key] = now + self.validity

    def add(self, key: bytes, provider: bytes, addrs: tuple[bytes, ...], now: float) -> bool:
        """Record or renew remote `provider` for `key`; False (and counted) when the store or
        the provider's quota is full."""
        providers = self._records.get(key)
        if providers is None or provider not in providers:
            if self._count >= self.max_records:
                self.refused_full += 1
                return False
            if self._per_peer.get(provider, 0) >= self.max_per_peer:
                self.refused_peer_quota += 1
                return False
            if providers is None:
                providers = self._records[key] = {}
            if len(providers) >= self.max_per_key:
                oldest = min(providers, key=lambda p: providers[p][0])
                del providers[oldest]
                self._forget(oldest)
            self._count += 1
            self._per_peer[provider] = self._per_peer.get(provider, 0) + 1
        else:
            del providers[provider]  # re-inserted last: dict order is renewal order
        providers[provider] = (now + self.validity, addrs)
        return True

    def held_by(self, provider: bytes) -> int:
        """How many records remote `provider` holds here (its quota use)."""
        return self._per_peer.get(provider, 0)

    def get(self, key: bytes, now: float) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """Live providers of `key`: this node first (it surely has the content), then remote
        ones, most recently renewed first."""
        providers = self._records.get(key, {})
        mine = [(self.self_id, ())] if self._own.get(key, 0.0) > now else []
        return mine + [(peer, addrs) for peer, (expiry, addrs) in reversed(providers.items())
                       if expiry > now and peer != self.self_id]

    def gc(self, now: float) -> int:
        """Drop expired records, own ones included; returns how many went."""
        dropped = 0
        for key in list(self._records):
            providers = self._records[key]
            for peer in [p for p, (expiry, _) in providers.items() if expiry <= now]:
                del providers[peer]
                self._forget(peer)
                dropped += 1
            if not providers:
                del self._records[key]
        for key in [k for k, expiry in self._own.items() if expiry <= now]:
            del self._own[key]
            dropped += 1
        return dropped

    def _forget(self, peer: bytes) -> None:
        self._count -= 1
        left = self._per_peer[peer] - 1
        if left:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]

    def keys(self) -> int:
        """Keys with a remote record or one of our own."""
        return len(self._records.keys() | self._own.keys())
