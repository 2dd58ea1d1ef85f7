"""Values this node holds for PUT_VALUE / GET_VALUE, with no I/O: each validated by its
namespace (`routing.records`: /pk/, /ipns/) before it is stored, a newer value kept only when
`records.select` prefers it (go-libp2p-kad-dht answers "old record was better" otherwise), and
each forgotten 36 h after it arrived (go's `maxRecordAge`), so holders must republish.

Bounded, each value under the records module's size cap: a remote peer holds at most
`max_per_peer` keys (the peer whose PUT_VALUE was stored last holds the key) and remote peers
at most `max_records` in all; over either cap a PUT_VALUE that would take a new key is refused
and counted (`refused_peer_quota` / `refused_full`). This node's own values (`put_own`) are
kept apart and outside both caps, so others can neither evict nor block them; GET_VALUE
answers with whichever of ours and theirs `records.select` prefers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blockmesh.data.routing import records
from blockmesh.data.routing.errors import RecordError

MAX_RECORD_AGE = 36 * 3600.0  # go-libp2p-kad-dht maxRecordAge
MAX_RECORDS = 10_000
MAX_PER_PEER = MAX_RECORDS // 10  # filling the store takes at least ten peers


@dataclass
class ValueStore:
    max_age: float = MAX_RECORD_AGE
    max_records: int = MAX_RECORDS
    max_per_peer: int = MAX_PER_PEER
    refused_full: int = 0
    refused_peer_quota: int = 0
    _values: dict[bytes, tuple[bytes, float, bytes]] = field(
        default_factory=dict)  # key -> value, received, holder
    _per_peer: dict[bytes, int] = field(default_factory=dict)
    _own: dict[bytes, tuple[bytes, float]] = field(default_factory=dict)  # value, received

    def __len__(self) -> int:
        """Values held for remote peers (the capped ones)."""
        return len(self._values)

    def own(self) -> int:
        return len(self._own)

    def held_by(self, peer: bytes) -> int:
        """How many keys remote `peer` holds here (its quota use)."""
        return self._per_peer.get(peer, 0)

    def put_own(self, key: bytes, value: bytes, *, now: float, unix_now: float) -> None:
        """Keep this node's own `value` under `key`; RecordError when it is invalid or older
        than our own held one. Never refused for room."""
        records.validate(key, value, unix_now)
        held = self._fresh(self._own, key, now, unix_now)
        if held is not None and held != value and records.select(key, [value, held]) != 0:
            raise RecordError("the stored record is better than the one offered")
        self._own[key] = (value, now)

    def put(self, key: bytes, value: bytes, *, sender: bytes, now: float,
            unix_now: float) -> None:
        """Store `value` from remote peer `sender` under `key`; RecordError when it is invalid,
        older than what is held, or over the store's or the sender's cap. `now` is the
        monotonic clock, `unix_now` the wall clock that record validity (IPNS EOL) is checked
        against."""
        records.validate(key, value, unix_now)
        held = self.get(key, now=now, unix_now=unix_now)
        if held is not None and held != value and records.select(key, [value, held]) != 0:
            raise RecordError("the stored record is better than the one offered")
        entry = self._values.get(key)
        if entry is None or entry[2] != sender:
            if entry is None and len(self._values) >= self.max_records:
                self.refused_full += 1
                raise RecordError(f"value store full ({self.max_records} records)")
            if self._per_peer.get(sender, 0) >= self.max_per_peer:
                self.refused_peer_quota += 1
                raise RecordError(f"peer holds its quota of {self.max_per_peer} values")
            if entry is not None:
                self._release(entry[2])
            self._per_peer[sender] = self._per_peer.get(sender, 0) + 1
        self._values[key] = (value, now, sender)

    def get(self, key: bytes, *, now: float, unix_now: float) -> bytes | None:
        """The best of our own and the remote value for `key` that is still young enough and
        still valid (an IPNS record may have reached its end of life since it was stored)."""
        held = [v for v in (self._fresh(self._own, key, now, unix_now),
                            self._fresh(self._values, key, now, unix_now)) if v is not None]
        if len(held) == 2 and held[0] != held[1]:
            return held[records.select(key, held)]
        return held[0] if held else None

    def _fresh(self, store: dict, key: bytes, now: float, unix_now: float) -> bytes | None:
        entry = store.get(key)
        if entry is None:
            return None
        value, received = entry[0], entry[1]
        try:
            if now - received >= self.max_age:
                raise RecordError("record too old")
            records.validate(key, value, unix_now)
        except RecordError:
            self._drop(store, key)
            return None
        return value

    def _drop(self, store: dict, key: bytes) -> None:
        entry = store.pop(key)
        if store is self._values:
            self._release(entry[2])

    def _release(self, peer: bytes) -> None:
        left = self._per_peer[peer] - 1
        if left:
            self._per_peer[peer] = left
        else:
            del self._per_peer[peer]

    def gc(self, now: float) -> int:
        """Forget values (ours included) older than `max_age`; returns how many went."""
        dropped = 0
        for store in (self._values, self._own):
            for key in [k for k, entry in store.items() if now - entry[1] >= self.max_age]:
                self._drop(store, key)
                dropped += 1
        return dropped
