"""The node's health from plain facts: connected peers, DHT table size, reachability, and, for
a node without peers, why it has none.

`assess` is pure: the adapter gathers the facts (`HealthFacts`) on each periodic check and
keeps the returned dict, which `blockmesh status` prints and the metrics endpoint can read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blockmesh.data.connectivity.filters import address_ip


@dataclass(frozen=True)
class DialGroup:
    """What one redial group (bootstrap, peering, cluster) looks like right now."""

    name: str
    targets: int
    connected: int
    #: Peer -> its last dial error, for targets not connected that failed at least once.
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthFacts:
    now: float  # wall-clock seconds, only reported
    peers: int
    listen_addrs: tuple[str, ...]
    groups: tuple[DialGroup, ...]
    routing_table_size: int | None = None  # None: no DHT on this node
    filtered: int = 0  # connections and dials refused by filters so far
    last_filtered: str | None = None
    low_water: int = 0


def reachability(listen_addrs: tuple[str, ...]) -> str:
    """"public" when some listen address is a routable IP, "private" for a LAN address,
    "loopback" when only this machine can dial in, "unknown" without an IP address."""
    kinds = set()
    for addr in listen_addrs:
        ip = address_ip(addr)
        if ip is None:
            continue
        if ip.is_loopback:
            kinds.add("loopback")
        elif ip.is_unspecified or ip.is_private or ip.is_link_local:
            kinds.add("private")
        else:
            kinds.add("public")
    for kind in ("public", "private", "loopback"):
        if kind in kinds:
            return kind
    return "unknown"


def assess(facts: HealthFacts) -> dict[str, object]:
    """The health dict: `status` is "ok", "degraded" (some configured peers unreachable) or
    "isolated" (no peer at all); `reasons` says why in words a user can act on."""
    reasons: list[str] = []
    configured = sum(g.targets for g in facts.groups)
    if facts.peers == 0:
        if configured == 0:
            reasons.append("no peers: no bootstrap or peering peers are configured "
                           "(blockmesh bootstrap add MADDR, or swarm peering add MADDR)")
        for group in facts.groups:
            if group.targets and group.errors:
                last = next(reversed(group.errors.values()))
                every = "all" if len(group.errors) == group.targets else "some"
                reasons.append(f"no peers: {every} {len(group.errors)} {group.name} dial(s) "
                               f"failing; last error: {last}")
        if facts.filtered:
            reasons.append(f"no peers: {facts.filtered} connection(s) refused by filters; "
                           f"last: {facts.last_filtered}")
        if len(reasons) == 0:
            reasons.append("no peers: configured peers not dialled yet or waiting for backoff")
    else:
        for group in facts.groups:
            if group.errors:
                reasons.append(f"{len(group.errors)} of {group.targets} {group.name} peer(s) "
                               f"unreachable; last error: {next(reversed(group.errors.values()))}")
    reach = reachability(facts.listen_addrs)
    if reach == "loopback":
        reasons.append("listening on loopback only: peers on other machines cannot dial in")
    status = "isolated" if facts.peers == 0 else ("degraded" if any(
        g.errors for g in facts.groups) else "ok")
    return {
        "status": status,
        "checked_at": facts.now,
        "peers": facts.peers,
        "routing_table_size": facts.routing_table_size,
        "reachability": reach,
        "listen_addrs": list(facts.listen_addrs),
        "groups": {g.name: {"configured": g.targets, "connected": g.connected,
                            "failing": dict(g.errors)} for g in facts.groups},
        "filtered": facts.filtered,
        "reasons": reasons,
    }
