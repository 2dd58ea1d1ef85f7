"""The Kademlia routing table: who this node knows, by XOR distance, with no I/O.

Keys are sha256 of the peer id's bytes (or of a record key), as go-libp2p-kad-dht's `kbucket`
does (`ConvertPeerID`, `ConvertKey`), so distances agree with kubo's. Bucket i holds peers whose
key shares exactly i leading bits with ours; each holds at most k = 20 (go's default bucket
size). A full bucket keeps its long-lived members, as Kademlia prefers, unless one of them has
failed queries (`mark_failed`), in which case the newcomer replaces it.

Which peers enter follows kubo's dual DHT: the LAN table (`/ipfs/lan/kad/1.0.0`) takes peers we
reach at a private address, the WAN table (`/ipfs/kad/1.0.0`) peers with a public address
(go-libp2p-kad-dht `dual`: `PrivateRoutingTableFilter`, `PublicRoutingTableFilter`), and either
only if identify listed the protocol, i.e. the peer serves the DHT (server mode). `admits`
decides that from plain strings; the adapter supplies them.

Refresh: a bucket not looked up for `refresh_interval` (go: 10 min) is due; the adapter looks up
a random key in it (`random_key_in_bucket`) and calls `refreshed`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass, field

K = 20  # go-libp2p-kad-dht defaultBucketSize
KEY_BITS = 256
REFRESH_INTERVAL = 600.0  # go-libp2p-kad-dht RoutingTableRefreshPeriod (10 min)
MAX_REFRESH_CPL = 15  # go refreshes common prefix lengths up to 15 (maxCplForRefresh)

LAN_PROTOCOL = "/ipfs/lan/kad/1.0.0"
WAN_PROTOCOL = "/ipfs/kad/1.0.0"

# go-multiaddr net/private.go: Private4 and Private6.
_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16",
    "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"))
# go-multiaddr net/private.go: Unroutable4 and Unroutable6 (neither public nor private).
_UNROUTABLE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "192.0.0.0/26", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "ff00::/8"))


def key_of(data: bytes) -> int:
    """The 256-bit Kademlia key of a peer id or record key, as an integer."""
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def common_prefix_len(a: int, b: int) -> int:
    return KEY_BITS - (a ^ b).bit_length()


def _ip_of(addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address's IP; an IPv4-mapped IPv6 one (::ffff:a.b.c.d) as the IPv4 it is, so that
    a peer cannot pass 127.0.0.1 or 10.x off as a public IPv6 address (go-multiaddr unwraps them
    too)."""
    parts = addr.split("/")
    if len(parts) < 3 or parts[1] not in ("ip4", "ip6"):
        return None
    try:
        ip = ipaddress.ip_address(parts[2])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_private_addr(addr: str) -> bool:
    """go-multiaddr's `IsPrivateAddr` for a multiaddr string: an IP in its private list."""
    ip = _ip_of(addr)
    return ip is not None and any(ip in net for net in _PRIVATE if net.version == ip.version)


def is_public_addr(addr: str) -> bool:
    """go-multiaddr's `IsPublicAddr`: an IP neither private nor unroutable (DNS names count as
    public there; this node never dials them, so they are not counted here)."""
    ip = _ip_of(addr)
    if ip is None:
        return False
    nets = _PRIVATE + _UNROUTABLE
    return not any(ip in net for net in nets if net.version == ip.version)


@dataclass(frozen=True)
class Admission:
    """Which peers a table admits: the protocol they must serve and the kind of address."""

    protocol: str
    private: bool

    def admits(self, protocols: list[str] | tuple[str, ...], addrs: list[str]) -> bool:
        if self.protocol not in protocols:
            return False
        check = is_private_addr if self.private else is_public_addr
        return any(check(a) for a in addrs)

    def usable_addr(self, addr: str) -> bool:
        """Whether an address of a closer peer fits this table's network (go's query filter)."""
        return is_private_addr(addr) if self.private else is_public_addr(addr)


LAN = Admission(LAN_PROTOCOL, private=True)
WAN = Admission(WAN_PROTOCOL, private=False)


@dataclass
class _Entry:
    peer: bytes
    key: int
    added: float
    failures: int = 0


@dataclass
class RoutingTable:
    """k-buckets around `self_id`. Peer ids are their binary form throughout."""

    self_id: bytes
    k: int = K
    refresh_interval: float = REFRESH_INTERVAL
    max_failures: int = 2
    _buckets: list[list[_Entry]] = field(default_factory=lambda: [[] for _ in range(KEY_BITS + 1)])
    _index: dict[bytes, _Entry] = field(default_factory=dict)
    _refreshed: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.self_key = key_of(self.self_id)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, peer: bytes) -> bool:
        return peer in self._index

    def bucket_of(self, peer: bytes) -> int:
        return common_prefix_len(self.self_key, key_of(peer))

    def add(self, peer: bytes, now: float) -> bool:
        """Admit `peer` (already known to pass `Admission`); True when it is in the table."""
        if peer == self.self_id:
            return False
        entry = self._index.get(peer)
        if entry is not None:
            entry.failures = 0
            return True
        key = key_of(peer)
        bucket = self._buckets[common_prefix_len(self.self_key, key)]
        if len(bucket) >= self.k:
            failing = [e for e in bucket if e.failures > 0]
            if not failing:
                return False
            worst = max(failing, key=lambda e: e.failures)
            self._drop(worst)
        entry = _Entry(peer, key, now)
        bucket.append(entry)
        self._index[peer] = entry
        return True

    def remove(self, peer: bytes) -> bool:
        entry = self._index.get(peer)
        if entry is None:
            return False
        self._drop(entry)
        return True

    def _drop(self, entry: _Entry) -> None:
        self._buckets[common_prefix_len(self.self_key, entry.key)].remove(entry)
        del self._index[entry.peer]

    def mark_failed(self, peer: bytes) -> None:
        """A query to `peer` failed: after `max_failures` in a row it leaves the table, and
        before that a newcomer to a full bucket may take its place."""
        entry = self._index.get(peer)
        if entry is None:
            return
        entry.failures += 1
        if entry.failures >= self.max_failures:
            self._drop(entry)

    def mark_alive(self, peer: bytes) -> None:
        entry = self._index.get(peer)
        if entry is not None:
            entry.failures = 0

    def nearest(self, key: int, count: int) -> list[bytes]:
        """Up to `count` peers closest to `key` by XOR distance, closest first."""
        entries = sorted(self._index.values(), key=lambda e: e.key ^ key)
        return [e.peer for e in entries[:count]]

    def peers(self) -> list[bytes]:
        return list(self._index)

    def bucket_sizes(self) -> dict[int, int]:
        """Non-empty buckets by common prefix length with our key."""
        return {i: len(b) for i, b in enumerate(self._buckets) if b}

    # -- refresh ---------------------------------------------------------------------------------
    def max_cpl(self) -> int:
        sizes = self.bucket_sizes()
        return max(sizes) if sizes else 0

    def due_refreshes(self, now: float) -> list[int]:
        """Buckets (common prefix lengths, up to one past the deepest non-empty one, at most
        MAX_REFRESH_CPL) not looked up within `refresh_interval`."""
        top = min(self.max_cpl() + 1, MAX_REFRESH_CPL)
        return [cpl for cpl in range(top + 1)
                if now - self._refreshed.get(cpl, float("-inf")) >= self.refresh_interval]

    def refreshed(self, cpl: int, now: float) -> None:
        self._refreshed[cpl] = now

    def random_key_in_bucket(self, cpl: int, max_tries: int = 1 << 20) -> bytes:
        """Bytes whose Kademlia key shares exactly `cpl` leading bits with ours: a FIND_NODE
        for them walks toward that bucket (servers hash the key they are given, so any bytes
        do). Found by trial, about 2**(cpl+1) hashes."""
        if not 0 <= cpl <= MAX_REFRESH_CPL:
            raise ValueError(f"refresh only buckets 0..{MAX_REFRESH_CPL}")
        for _ in range(max_tries):
            candidate = os.urandom(32)
            if common_prefix_len(self.self_key, key_of(candidate)) == cpl:
                return candidate
        raise RuntimeError("no key found for the bucket")  # 2**-(2**20/2**16) odds
