"""Values this node holds for PUT_VALUE / GET_VALUE, with no I/O: each validated by its
namespace (`routing.records`: /pk/, /ipns/) before it is stored, a newer value kept only when
`records.select` prefers it (go-libp2p-kad-dht answers "old record was better" otherwise), and
each forgotten 36 h after it arrived (go's `maxRecordAge`), so holders must republish.

Bounded: at most `max_records` keys (over it, a new key is refused; a stored key can still be
updated), each value under the records module's size cap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blockmesh.data.routing import records
from blockmesh.data.routing.errors import RecordError

MAX_RECORD_AGE = 36 * 3600.0  # go-libp2p-kad-dht maxRecordAge
MAX_RECORDS = 10_000


@dataclass
class ValueStore:
    max_age: float = MAX_RECORD_AGE
    max_records: int = MAX_RECORDS
    _values: dict[bytes, tuple[bytes, float]] = field(default_factory=dict)  # value, received

    def __len__(self) -> int:
        return len(self._values)

    def put(self, key: bytes, value: bytes, *, now: float, unix_now: float) -> None:
        """Store `value` under `key`; RecordError when it is invalid, older than what is held,
        or the store is full. `now` is the monotonic clock, `unix_now` the wall clock that
        record validity (IPNS EOL) is checked against."""
        records.validate(key, value, unix_now)
        held = self.get(key, now=now, unix_now=unix_now)
        if held is not None and held != value and records.select(key, [value, held]) != 0:
            raise RecordError("the stored record is better than the one offered")
        if held is None and key not in self._values and len(self._values) >= self.max_records:
            raise RecordError(f"value store full ({self.max_records} records)")
        self._values[key] = (value, now)

    def get(self, key: bytes, *, now: float, unix_now: float) -> bytes | None:
        """The held value if it is still young enough and still valid (an IPNS record may
        have reached its end of life since it was stored)."""
        entry = self._values.get(key)
        if entry is None:
            return None
        value, received = entry
        try:
            if now - received >= self.max_age:
                raise RecordError("record too old")
            records.validate(key, value, unix_now)
        except RecordError:
            del self._values[key]
            return None
        return value

    def gc(self, now: float) -> int:
        old = [k for k, (_, received) in self._values.items() if now - received >= self.max_age]
        for key in old:
            del self._values[key]
        return len(old)
