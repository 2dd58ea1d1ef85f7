"""The values a DHT server keeps for PUT_VALUE and serves for GET_VALUE, with no I/O.

Every value is validated (`records.validate`) before it is kept and again before it is served,
so an IPNS record stops being served when it expires. A new value replaces a stored one only if
`records.select` prefers it, as go-libp2p-kad-dht's PUT_VALUE handler decides ("old record is
better" otherwise). Values older than `max_age` are dropped (go's MaxRecordAge, 36 h: a
publisher republishes well within it) and at most `max_records` keys are held.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from blockmesh.data.routing import records
from blockmesh.data.routing.errors import RecordError

MAX_RECORD_AGE = 36 * 3600.0
MAX_RECORDS = 16_384


@dataclass
class ValueStore:
    max_age: float = MAX_RECORD_AGE
    max_records: int = MAX_RECORDS
    _values: OrderedDict[bytes, tuple[bytes, float]] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._values)

    def put(self, key: bytes, value: bytes, *, now: float, wall: float) -> None:
        """Keep `value` under `key` (received at monotonic `now`; `wall` is Unix time, for
        record validity). RecordError if it is invalid or the stored value is better."""
        records.validate(key, value, wall)
        stored = self.get(key, now=now, wall=wall)
        if stored is not None and stored != value and records.select(key, [value, stored]) != 0:
            raise RecordError("the stored record is newer than the one offered")
        if key not in self._values and len(self._values) >= self.max_records:
            self._evict(now)
            if len(self._values) >= self.max_records:
                raise RecordError("value store is full")
        self._values[key] = (value, now)
        self._values.move_to_end(key)

    def get(self, key: bytes, *, now: float, wall: float) -> bytes | None:
        """The stored value if it is still young enough and valid, else None (and dropped)."""
        entry = self._values.get(key)
        if entry is None:
            return None
        value, received = entry
        if now - received > self.max_age:
            del self._values[key]
            return None
        try:
            records.validate(key, value, wall)
        except RecordError:
            del self._values[key]
            return None
        return value

    def _evict(self, now: float) -> None:
        for key in [k for k, (_, t) in self._values.items() if now - t > self.max_age]:
            del self._values[key]
