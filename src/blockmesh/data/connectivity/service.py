"""`Connectivity`: the trio adapter that keeps a node connected under its policy.

It feeds the engines from a running Host and carries out what they decide: the bootstrap list
is dialled at start and whenever the node has fewer than `min_peers` peers, peering peers and
other kept peers (cluster members) are redialled with backoff whenever they drop, the
connection manager's trims are disconnected, and a health check runs periodically. Bitswap
traffic counts as activity for the connection manager, and every peer a live Bitswap session
fetches from is protected (tag `bitswap-session`) until the session ends.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from blockmesh.data.bitswap import Bitswap
from blockmesh.data.connectivity.backoff import BackoffPolicy
from blockmesh.data.connectivity.connmgr import ConnManager, ConnMgrPolicy
from blockmesh.data.connectivity.filters import Filters
from blockmesh.data.connectivity.health import DialGroup, HealthFacts, assess
from blockmesh.data.connectivity.redial import Redialer, below_threshold
from blockmesh.data.net import Host, NetError, PeerEvent, parse_peer_addr, parse_peer_id
from blockmesh.data.store.config import Config, ConfigError
from blockmesh.errors import BlockmeshError

logger = logging.getLogger(__name__)

#: How often the loop looks at Bitswap activity, trims and due redials when nothing wakes it.
TICK = 1.0
#: How often the health dict is recomputed.
HEALTH_INTERVAL = 5.0
SESSION_TAG = "bitswap-session"
PEERING_TAG = "peering"
#: Dials started by the redialers at once; more wait for the next round.
MAX_PARALLEL_DIALS = 8
#: One redial attempt's bound (a dial that hangs must not hold a target forever).
REDIAL_TIMEOUT = 10.0


@dataclass(frozen=True)
class ConnectivitySettings:
    bootstrap: tuple[str, ...] = ()
    min_peers: int = 4
    peering: tuple[str, ...] = ()
    connmgr: ConnMgrPolicy = field(default_factory=ConnMgrPolicy)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    filters_deny: tuple[str, ...] = ()
    filters_allow: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> ConnectivitySettings:
        try:
            return cls(bootstrap=tuple(config.bootstrap.peers),
                       min_peers=config.bootstrap.min_peers,
                       peering=tuple(config.peering.peers),
                       connmgr=ConnMgrPolicy(config.connmgr.low_water, config.connmgr.high_water,
                                             config.connmgr.grace_period),
                       backoff=BackoffPolicy(config.bootstrap.backoff_base,
                                             cap=config.bootstrap.backoff_cap),
                       filters_deny=tuple(config.filters.deny),
                       filters_allow=tuple(config.filters.allow))
        except ValueError as exc:
            raise ConfigError(f"config: {exc}") from None


class Connectivity:
    """Bootstrap, peering, kept peers, the connection manager and health over one Host."""

    def __init__(self, host: Host, bitswap: Bitswap, settings: ConnectivitySettings, *,
                 rng: random.Random | None = None,
                 routing_size: Callable[[], int | None] | None = None) -> None:
        self.host = host
        self.bitswap = bitswap
        self.settings = settings
        self._rng = rng or random.Random()
        #: Reports the DHT routing table's size when the node has a DHT (None: no DHT).
        self.routing_size = routing_size
        self.connmgr = ConnManager(settings.connmgr)
        host.filters = Filters.from_lists(list(settings.filters_deny),
                                          list(settings.filters_allow))
        for rule in host.filters.deny + host.filters.allow:
            if rule.peer is not None:
                parse_peer_id(rule.peer)  # a typo in a peer rule is an error, not a no-op
        self.groups: dict[str, Redialer] = {}
        self._conditional = {"bootstrap"}  # groups dialled only below min_peers
        self._wake = trio.Event()
        self._ledgers: dict[str, tuple[int, int]] = {}
        self._nursery: trio.Nursery | None = None
        self._pending_bootstrap = [parse_peer_addr(a) for a in settings.bootstrap]
        self._pending_peering = [parse_peer_addr(a) for a in settings.peering]

    # -- what the node keeps connected -------------------------------------------------------------
    def group(self, name: str, policy: BackoffPolicy | None = None) -> Redialer:
        """The redial group `name`, created with `policy` (default: the settings' backoff)."""
        if name not in self.groups:
            self.groups[name] = Redialer(policy or self.settings.backoff, self._rng)
        return self.groups[name]

    def keep(self, group: str, addr: str, *, protect: bool = True,
             policy: BackoffPolicy | None = None) -> str:
        """Keep the peer at `addr` (…/p2p/<id>) connected, redialling with backoff; protected
        from trimming under the group's name as tag. Returns the peer id."""
        target = parse_peer_addr(addr)
        self.group(group, policy).add(target.peer_id, (str(target),), trio.current_time())
        if target.peer_id in self.host.peers():
            self.group(group).connected(target.peer_id)
        if protect:
            self.connmgr.protect(target.peer_id, group)
        self._wake.set()
        return target.peer_id

    def forget(self, group: str, peer: str) -> None:
        """Stop keeping `peer` in `group` (its connection stays until trimmed or closed)."""
        if group in self.groups:
            self.groups[group].remove(peer)
        self.connmgr.unprotect(peer, group)

    def set_bootstrap(self, addrs: list[str]) -> None:
        """Replace the bootstrap list (after `bootstrap add/rm` edited the config)."""
        wanted = {t.peer_id: t for t in (parse_peer_addr(a) for a in addrs)}
        group = self.group("bootstrap")
        for peer in list(group.targets):
            if peer not in wanted:
                group.remove(peer)
        now = trio.current_time()
        for peer, target in wanted.items():
            group.add(peer, (str(target),), now)
            if peer in self.host.peers():
                group.connected(peer)
        self._wake.set()

    def peering(self) -> list[dict[str, object]]:
        group = self.groups.get(PEERING_TAG)
        if group is None:
            return []
        return [{"ID": t.peer, "Addrs": list(t.addrs), "Connected": t.connected,
                 "LastError": t.last_error} for t in group.targets.values()]

    # -- protection, for subsystems that know a peer matters -------------------------------------
    def protect(self, peer: str, tag: str) -> None:
        self.connmgr.protect(peer, tag)

    def unprotect(self, peer: str, tag: str) -> bool:
        return self.connmgr.unprotect(peer, tag)

    def active(self, peer: str) -> None:
        """Count useful traffic with `peer` (the DHT calls this for its replies)."""
        self.connmgr.active(peer, trio.current_time())

    # -- health ----------------------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        """The node's health now, as plain data (cheap: counts and the engines' state)."""
        return self._check_health()

    def _check_health(self) -> dict[str, object]:
        routing = None
        if self.routing_size is not None:
            try:
                routing = self.routing_size()
            except BlockmeshError as exc:
                logger.info("routing table size unavailable: %s", exc)
        groups = tuple(
            DialGroup(name, len(g.targets), g.connected_count(),
                      {t.peer: t.last_error for t in g.targets.values()
                       if not t.connected and t.last_error})
            for name, g in sorted(self.groups.items()))
        facts = HealthFacts(now=time.time(), peers=len(self.host.peers()),
                            listen_addrs=tuple(self.host.addrs()), groups=groups,
                            routing_table_size=routing, filtered=self.host.filtered,
                            last_filtered=self.host.last_filtered,
                            low_water=self.settings.connmgr.low_water)
        return {**assess(facts), "connmgr": self.connmgr.info(),
                "min_peers": self.settings.min_peers}

    # -- the loop --------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        now = trio.current_time()
        for target in self._pending_bootstrap:
            self.group("bootstrap").add(target.peer_id, (str(target),), now)
        for target in self._pending_peering:
            self.keep(PEERING_TAG, str(target))
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            events = self.host.subscribe()
            for peer in self.host.peers():
                self._on_event(PeerEvent("connected", peer))
            nursery.start_soon(self._events, events)
            nursery.start_soon(self._health_loop)
            task_status.started()
            while True:
                now = trio.current_time()
                self._observe_bitswap(now)
                await self._trim(now)
                self._dial_due(now)
                wait = TICK
                deadlines = [d for d in (g.next_deadline() for g in self.groups.values())
                             if d is not None]
                grace = self.connmgr.next_grace_end(now)
                if grace is not None:
                    deadlines.append(grace)
                if deadlines:
                    wait = min(TICK, max(0.0, min(deadlines) - now))
                with trio.move_on_after(wait):
                    await self._wake.wait()
                self._wake = trio.Event()

    async def _events(self, events: trio.MemoryReceiveChannel[PeerEvent]) -> None:
        while True:
            async with events:
                async for event in events:
                    self._on_event(event)
            # Fell behind (or the host stopped): resubscribe and reconcile with the truth.
            await trio.sleep(0)
            events = self.host.subscribe()
            live = set(self.host.peers())
            for peer in live:
                self._on_event(PeerEvent("connected", peer))
            for peer in [p for p in self._ledgers if p not in live]:
                self._on_event(PeerEvent("disconnected", peer))

    def _on_event(self, event: PeerEvent) -> None:
        now = trio.current_time()
        if event.kind == "connected":
            self.connmgr.connected(event.peer_id, now)
            self._ledgers.setdefault(event.peer_id, (0, 0))
            for group in self.groups.values():
                group.connected(event.peer_id)
        else:
            self.connmgr.disconnected(event.peer_id)
            self._ledgers.pop(event.peer_id, None)
            for group in self.groups.values():
                group.disconnected(event.peer_id, now)
        self._wake.set()

    def _observe_bitswap(self, now: float) -> None:
        for peer, ledger in self.bitswap.ledgers().items():
            seen = (ledger.bytes_sent + ledger.bytes_received, ledger.exchanged)
            if peer in self._ledgers and self._ledgers[peer] != seen:
                self._ledgers[peer] = seen
                self.connmgr.active(peer, now)
        fetching = set()
        for session in self.bitswap.client.sessions:
            fetching |= session.peers
            if session.only is not None:
                fetching |= session.only
        for peer in self.connmgr.protected_by(SESSION_TAG) - fetching:
            self.connmgr.unprotect(peer, SESSION_TAG)
        for peer in fetching:
            self.connmgr.protect(peer, SESSION_TAG)

    async def _trim(self, now: float) -> None:
        for peer in self.connmgr.trim(now):
            logger.info("connection manager: closing %s (over %d peers)", peer,
                        self.settings.connmgr.high_water)
            self.connmgr.disconnected(peer)  # counted gone now; the event confirms it
            await self.host.disconnect(peer)

    def _dial_due(self, now: float) -> None:
        assert self._nursery is not None
        peers = len(self.host.peers())
        budget = MAX_PARALLEL_DIALS
        for name, group in self.groups.items():
            if name in self._conditional and not below_threshold(peers, self.settings.min_peers):
                continue
            for target in group.due(now, budget):
                budget -= 1
                self._nursery.start_soon(self._dial, name, target.peer, target.addr())
            if budget <= 0:
                break

    async def _dial(self, name: str, peer: str, addr: str) -> None:
        group = self.groups.get(name)
        try:
            await self.host.connect(addr, timeout=REDIAL_TIMEOUT)
        except NetError as exc:
            if group is not None:
                group.failed(peer, " ".join(str(exc).split()), trio.current_time())
            logger.info("%s dial of %s failed: %s", name, addr, exc)
        else:
            if group is not None:
                group.connected(peer)
        self._wake.set()

    async def _health_loop(self) -> None:
        """The periodic check: logs each change of status with its reasons, so a node that
        loses its last peer says so (and why) in its log without anyone asking."""
        last = None
        while True:
            report = self._check_health()
            if report["status"] != last:
                last = report["status"]
                level = logging.INFO if last == "ok" else logging.WARNING
                reasons = report["reasons"]
                assert isinstance(reasons, list)
                logger.log(level, "health: %s (%s peers)%s", last, report["peers"],
                           "".join(f"; {r}" for r in reasons))
            await trio.sleep(HEALTH_INTERVAL)



def routing_table_size(routing: object) -> int | None:
    """Peers in the DHT's routing tables (every network it runs: WAN and LAN), read from its
    `stats()`; None when the node has no DHT."""
    stats = getattr(routing, "stats", None)
    if not callable(stats):
        return None
    tables = [v.get("peers") for v in stats().values() if isinstance(v, dict)]
    return sum(n for n in tables if isinstance(n, int))
