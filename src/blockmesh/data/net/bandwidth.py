"""Bandwidth accounting and limits for every stream of a host, with no I/O (the clock is passed in).

`Bandwidth.charge` is called by `Stream` for each read and write: it counts the bytes per
peer and per protocol (kubo's `stats bw`: TotalIn, TotalOut, RateIn, RateOut) and returns how
long the stream must wait so that the global and per-peer rates hold. The limits apply at the
stream layer, under Bitswap: a limited peer gets its blocks more slowly, never an error.
Inbound bytes are limited by reading more slowly, so the muxer's receive window fills and the
sender is held back by flow control rather than by anything it could notice as a failure.

Rates are bytes per second; 0 means unlimited. A peer listed in `per_peer` gets its own rates
in place of `peer_rate_in`/`peer_rate_out` (0 there exempts it, a cluster member say).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal

from blockmesh.data.net.addrs import parse_peer_id
from blockmesh.data.net.errors import InvalidMultiaddr
from blockmesh.data.net.ratelimit import TokenBucket
from blockmesh.data.store.config import BandwidthConfig, ConfigError

Direction = Literal["in", "out"]

#: Seconds of history behind a rate: a rate is the bytes of the last few seconds over them.
RATE_WINDOW = 5
#: Peers and protocols whose counters are kept; beyond these the least recently active go
#: (a node that met many peers does not keep a counter for each forever).
MAX_PEER_METERS = 1024
MAX_PROTOCOL_METERS = 256
#: Idle per-peer buckets dropped once there are this many (an idle bucket is full anyway).
MAX_PEER_BUCKETS = 4096


@dataclass(frozen=True)
class PeerRates:
    rate_in: int = 0
    rate_out: int = 0

    def __post_init__(self) -> None:
        for rate in (self.rate_in, self.rate_out):
            if isinstance(rate, bool) or not isinstance(rate, int) or rate < 0:
                raise ValueError("a bandwidth rate is a whole number of bytes per second, 0 "
                                 "for unlimited")


@dataclass(frozen=True)
class BandwidthLimits:
    """Byte rates a host holds to: `rate_*` for all peers together, `peer_rate_*` for each."""

    rate_in: int = 0
    rate_out: int = 0
    peer_rate_in: int = 0
    peer_rate_out: int = 0
    per_peer: dict[str, PeerRates] = field(default_factory=dict)

    def __post_init__(self) -> None:
        PeerRates(self.rate_in, self.rate_out)  # the same checks
        PeerRates(self.peer_rate_in, self.peer_rate_out)

    def for_peer(self, peer: str) -> PeerRates:
        return self.per_peer.get(peer) or PeerRates(self.peer_rate_in, self.peer_rate_out)


UNLIMITED = BandwidthLimits()


def limits_from_config(section: BandwidthConfig) -> BandwidthLimits:
    """The repo config's [bandwidth] section as limits; ConfigError names what is wrong."""
    per_peer: dict[str, PeerRates] = {}
    for peer, rates in section.peers.items():
        try:
            parse_peer_id(peer)
        except InvalidMultiaddr:
            raise ConfigError(f"config bandwidth.peers: {peer!r} is not a peer id") from None
        if not isinstance(rates, dict) or not set(rates) <= {"rate_in", "rate_out"}:
            raise ConfigError(f"config bandwidth.peers.{peer} takes rate_in and rate_out only")
        try:
            per_peer[peer] = PeerRates(rates.get("rate_in", 0), rates.get("rate_out", 0))
        except ValueError as exc:
            raise ConfigError(f"config bandwidth.peers.{peer}: {exc}") from None
    try:
        return BandwidthLimits(section.rate_in, section.rate_out, section.peer_rate_in,
                               section.peer_rate_out, per_peer)
    except ValueError as exc:
        raise ConfigError(f"config bandwidth: {exc}") from None


class Meter:
    """A byte total and the rate of the last `RATE_WINDOW` seconds."""

    __slots__ = ("_seconds", "_start", "total")

    def __init__(self, now: float) -> None:
        self.total = 0
        self._start = now
        self._seconds: deque[list[int]] = deque(maxlen=RATE_WINDOW)  # [second, bytes]

    def add(self, amount: int, now: float) -> None:
        self.total += amount
        second = int(now)
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] += amount
        else:
            self._seconds.append([second, amount])

    def rate(self, now: float) -> float:
        """Bytes per second over the last `RATE_WINDOW` seconds (or since the meter started,
        if that is sooner), counting the current second as far as it has gone."""
        oldest = int(now) - RATE_WINDOW + 1
        recent = sum(amount for second, amount in self._seconds if second >= oldest)
        span = now - max(self._start, oldest)
        return recent / max(span, 1.0)


@dataclass(frozen=True)
class BandwidthStats:
    """kubo's `stats bw` fields."""

    total_in: int
    total_out: int
    rate_in: float
    rate_out: float

    def to_json(self) -> dict[str, float]:
        return {"TotalIn": self.total_in, "TotalOut": self.total_out,
                "RateIn": self.rate_in, "RateOut": self.rate_out}


class _Meters:
    """An in and an out meter."""

    __slots__ = ("inbound", "outbound")

    def __init__(self, now: float) -> None:
        self.inbound = Meter(now)
        self.outbound = Meter(now)

    def add(self, direction: Direction, amount: int, now: float) -> None:
        (self.inbound if direction == "in" else self.outbound).add(amount, now)

    def stats(self, now: float) -> BandwidthStats:
        return BandwidthStats(self.inbound.total, self.outbound.total,
                              self.inbound.rate(now), self.outbound.rate(now))


class Bandwidth:
    """The counters and token buckets of one host."""

    def __init__(self, limits: BandwidthLimits = UNLIMITED, *, now: float = 0.0) -> None:
        self.limits = limits
        self._total = _Meters(now)
        self._peers: OrderedDict[str, _Meters] = OrderedDict()
        self._protocols: OrderedDict[str, _Meters] = OrderedDict()
        self._global = {
            "in": TokenBucket.for_rate(limits.rate_in, now) if limits.rate_in else None,
            "out": TokenBucket.for_rate(limits.rate_out, now) if limits.rate_out else None,
        }
        self._peer_buckets: dict[tuple[str, Direction], TokenBucket] = {}

    def charge(self, direction: Direction, peer: str, protocol: str, amount: int,
               now: float) -> float:
        """Count `amount` bytes moved with `peer` over `protocol`; seconds to wait before the
        next bytes may move (0 when no limit applies)."""
        self._total.add(direction, amount, now)
        _meters(self._peers, peer, MAX_PEER_METERS, now).add(direction, amount, now)
        _meters(self._protocols, protocol, MAX_PROTOCOL_METERS, now).add(direction, amount, now)
        wait = 0.0
        bucket = self._global[direction]
        if bucket is not None:
            wait = bucket.charge(amount, now)
        peer_bucket = self._peer_bucket(direction, peer, now)
        if peer_bucket is not None:
            wait = max(wait, peer_bucket.charge(amount, now))
        return wait

    def limited(self, direction: Direction, peer: str) -> bool:
        """Whether any rate applies to bytes moving `direction` with `peer`."""
        rates = self.limits.for_peer(peer)
        peer_rate = rates.rate_in if direction == "in" else rates.rate_out
        return self._global[direction] is not None or peer_rate > 0

    def _peer_bucket(self, direction: Direction, peer: str, now: float) -> TokenBucket | None:
        rates = self.limits.for_peer(peer)
        rate = rates.rate_in if direction == "in" else rates.rate_out
        if not rate:
            return None
        key = (peer, direction)
        bucket = self._peer_buckets.get(key)
        if bucket is None:
            if len(self._peer_buckets) >= MAX_PEER_BUCKETS:
                for idle in [k for k, b in self._peer_buckets.items() if b.full(now)]:
                    del self._peer_buckets[idle]
            bucket = self._peer_buckets[key] = TokenBucket.for_rate(rate, now)
        return bucket

    def stats(self, now: float, *, peer: str | None = None,
              protocol: str | None = None) -> BandwidthStats:
        """Totals and rates of the whole host, or of one peer, or of one protocol (zeros for
        one never seen). Not both: kubo refuses that too, and it is not counted."""
        if peer is not None and protocol is not None:
            raise ValueError("ask for one peer or one protocol, not both")
        if peer is not None:
            meters = self._peers.get(peer)
        elif protocol is not None:
            meters = self._protocols.get(protocol)
        else:
            meters = self._total
        if meters is None:
            return BandwidthStats(0, 0, 0.0, 0.0)
        return meters.stats(now)


    def totals(self) -> tuple[int, int]:
        """Bytes (in, out) since the host started."""
        return self._total.inbound.total, self._total.outbound.total

    def protocol_totals(self) -> dict[str, tuple[int, int]]:
        """Bytes (in, out) by protocol since the host started, for metrics. A protocol's meter is
        dropped only past `MAX_PROTOCOL_METERS` protocols, which a host never negotiates."""
        return {name: (meters.inbound.total, meters.outbound.total)
                for name, meters in self._protocols.items()}


def _meters(table: OrderedDict[str, _Meters], key: str, cap: int, now: float) -> _Meters:
    meters = table.get(key)
    if meters is None:
        if len(table) >= cap:
            table.popitem(last=False)
        meters = table[key] = _Meters(now)
    else:
        table.move_to_end(key)
    return meters
