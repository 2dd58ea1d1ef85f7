"""The `[pinset]` table of cluster.toml: the settings every member must share.

Allocation is computed by every member from committed state, so anything that shapes it
(default replication factors, how long a member may be silent before its pins move, how long an
exclusion lasts) must be the same everywhere: it lives in the cluster file, not in a member's own
config. Tags are the one exception, and they are not used by allocation: each member reports its
own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from blockmesh.control.pinset.app import MAX_TAG, MAX_TAGS, PinsetPolicy
from blockmesh.errors import DecodeError

#: Heartbeats go out this many times per re-allocation period, so one lost beat never makes
#: a member look down; bounded so a short period does not flood the log.
BEATS_PER_PERIOD = 4
MIN_HEARTBEAT = 0.5
MAX_HEARTBEAT = 15.0
#: Bounds of `exclusion_period` in seconds (cluster.toml and `cluster init` alike): under a
#: second every audit timeout would be an exclusion that ends before the replacement has the
#: pin; the doubling then reaches 2**10 of the longest period, decades, which is "for good".
MIN_EXCLUSION_PERIOD = 1.0
MAX_EXCLUSION_PERIOD = 30 * 86400.0


@dataclass(frozen=True)
class PinsetConfig:
    replication_min: int = -1
    replication_max: int = -1
    #: Seconds an allocated member may be silent (cluster clock) before its pins get a
    #: replacement: IPFS Cluster's default monitoring would notice a dead peer in about 30 s.
    reallocate_after: float = 60.0
    #: Seconds between two audits by one member (each picks one random claim).
    audit_interval: float = 30.0
    #: Seconds a member's first exclusion from a pin (f+1 failed audits) lasts on the cluster
    #: clock; each further exclusion from the same pin lasts twice the previous one, and each
    #: strike fades after 12 such periods without a new exclusion (`strikes.py`). Ten default
    #: audit intervals: long enough for a passing overload to pass and for the replacement to
    #: fetch the pin, short enough that a pin left without enough eligible members heals in
    #: minutes without an operator.
    exclusion_period: float = 300.0
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for value in (self.replication_min, self.replication_max):
            if value < -1:
                raise DecodeError("replication factors are -1 (every member) or positive")
        if not 1.0 <= self.reallocate_after <= 30 * 86400:
            raise DecodeError("reallocate_after must be 1 s to 30 days")
        if not 1.0 <= self.audit_interval <= 86400:
            raise DecodeError("audit_interval must be 1 s to 1 day")
        if not MIN_EXCLUSION_PERIOD <= self.exclusion_period <= MAX_EXCLUSION_PERIOD:
            raise DecodeError("exclusion_period must be 1 s to 30 days")
        if len(self.tags) > MAX_TAGS or any(len(t.encode()) > MAX_TAG for t in self.tags):
            raise DecodeError(f"at most {MAX_TAGS} tags of {MAX_TAG} bytes")

    def policy(self) -> PinsetPolicy:
        return PinsetPolicy(self.replication_min or -1, self.replication_max or -1,
                            int(self.reallocate_after * 1000),
                            int(self.exclusion_period * 1000))

    def heartbeat_interval(self) -> float:
        return min(MAX_HEARTBEAT, max(MIN_HEARTBEAT, self.reallocate_after / BEATS_PER_PERIOD))

    def to_table(self) -> dict[str, Any]:
        return {"replication_min": self.replication_min, "replication_max": self.replication_max,
                "reallocate_after": self.reallocate_after, "audit_interval": self.audit_interval,
                "exclusion_period": self.exclusion_period, "tags": list(self.tags)}

    @classmethod
    def from_table(cls, raw: Any) -> PinsetConfig:
        if not isinstance(raw, dict):
            raise DecodeError("[pinset] must be a table")
        unknown = set(raw) - {"replication_min", "replication_max", "reallocate_after",
                              "audit_interval", "exclusion_period", "tags"}
        if unknown:
            raise DecodeError(f"unknown [pinset] keys {sorted(unknown)}")
        try:
            return cls(int(raw.get("replication_min", -1)), int(raw.get("replication_max", -1)),
                       float(raw.get("reallocate_after", 60.0)),
                       float(raw.get("audit_interval", 30.0)),
                       float(raw.get("exclusion_period", 300.0)),
                       tuple(str(t) for t in raw.get("tags", ())))
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"bad [pinset] value: {exc}") from None
