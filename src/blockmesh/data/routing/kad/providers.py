"""Provider records this node keeps for others (ADD_PROVIDER) and for itself, with no I/O.

A record says "peer P has the content whose multihash is K"; it lives `validity` seconds after
it was last added (go-libp2p-kad-dht's `ProvideValidity`, 48 h) and providers republish well
before that (kubo: every 22 h). Bounded: at most `max_per_key` providers per key (a newer one
replaces the oldest) and `max_records` in all (over it, a new key is refused until `gc` frees
room), so a flood of ADD_PROVIDER costs a bounded amount of memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROVIDE_VALIDITY = 48 * 3600.0  # go-libp2p-kad-dht providers.ProvideValidity
MAX_PER_KEY = 100
MAX_RECORDS = 100_000


@dataclass
class ProviderStore:
    validity: float = PROVIDE_VALIDITY
    max_per_key: int = MAX_PER_KEY
    max_records: int = MAX_RECORDS
    # key -> provider peer id -> (expiry, addresses)
    _records: dict[bytes, dict[bytes, tuple[float, tuple[bytes, ...]]]] = field(
        default_factory=dict)
    _count: int = 0

    def __len__(self) -> int:
        return self._count

    def add(self, key: bytes, provider: bytes, addrs: tuple[bytes, ...], now: float) -> bool:
        """Record or renew `provider` for `key`; False when the store is full."""
        providers = self._records.get(key)
        if providers is None:
            if self._count >= self.max_records:
                return False
            providers = self._records[key] = {}
        if provider not in providers:
            if self._count >= self.max_records:
                return False
            if len(providers) >= self.max_per_key:
                oldest = min(providers, key=lambda p: providers[p][0])
                del providers[oldest]
                self._count -= 1
            self._count += 1
        else:
            del providers[provider]  # re-inserted last: dict order is renewal order
        providers[provider] = (now + self.validity, addrs)
        return True

    def get(self, key: bytes, now: float) -> list[tuple[bytes, tuple[bytes, ...]]]:
        """Live providers of `key`, most recently renewed first."""
        providers = self._records.get(key, {})
        return [(peer, addrs) for peer, (expiry, addrs) in reversed(providers.items())
                if expiry > now]

    def gc(self, now: float) -> int:
        """Drop expired records; returns how many went."""
        dropped = 0
        for key in list(self._records):
            providers = self._records[key]
            for peer in [p for p, (expiry, _) in providers.items() if expiry <= now]:
                del providers[peer]
                dropped += 1
            if not providers:
                del self._records[key]
        self._count -= dropped
        return dropped

    def keys(self) -> int:
        return len(self._records)
