"""What the daemon shows about itself: one snapshot for the web dashboard, `blockmesh top` and
the metrics, and the little history that the engines do not keep (bandwidth over time, peer
latency, the blockstore's size, traffic by peer group).

Everything here reads the engines' own counters; nothing is counted in Bitswap's hot paths. A
sampler task wakes once a second on the daemon's trio loop (the engines' loop, so no locks),
and the slow readings (a ping per peer, a walk over the blockstore) run less often, bounded in
time. Nothing that reads the repo's files or its pin database runs on the loop: the blockstore
walk and the pin count run in a worker thread (the pin database's lock may be held by a long
job pinning on another thread), and snapshots show their last results.
"""

from __future__ import annotations

import itertools
import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from blockmesh import __version__
from blockmesh.data.cid import CID
from blockmesh.data.store.blockstore import StoreStat
from blockmesh.errors import BlockmeshError

if TYPE_CHECKING:
    from blockmesh.daemon.member import Member
    from blockmesh.data.node import Node

logger = logging.getLogger(__name__)

#: Seconds between samples, and how many the bandwidth history keeps (five minutes).
SAMPLE_INTERVAL = 1.0
HISTORY = 300
#: Peers are pinged this often, each ping bounded, and at most this many per round.
PING_INTERVAL = 10.0
PING_TIMEOUT = 2.0
MAX_PINGED = 32
#: Counting the blockstore walks every block: it runs after blocks were written or deleted,
#: but no sooner than STORE_STAT_SPACING walks' durations after the last (and at least every
#: STORE_STAT_INTERVAL), so a large repo is not walked back to back.
STORE_STAT_INTERVAL = 30.0
STORE_STAT_SPACING = 5.0
STORE_STAT_MIN_GAP = 2.0
#: Long lists (wantlists, pins) are cut to this many entries in a snapshot; counts stay whole.
MAX_LISTED = 100

CLUSTER = "cluster"
OTHER = "other"
PEER_GROUPS = (CLUSTER, OTHER)


@dataclass
class GroupTraffic:
    """Blocks and bytes exchanged with one group of peers, as the ledgers counted them."""

    blocks_sent: int = 0
    bytes_sent: int = 0
    blocks_received: int = 0
    bytes_received: int = 0


@dataclass
class PeerGroups:
    """Traffic by peer group, accumulated from per-peer ledger snapshots.

    A ledger lives only while its peer is connected, so each sample adds what every ledger
    gained since the previous one to its peer's group: the sums only grow (Prometheus counters),
    and the label set stays fixed however many peers come and go. What a peer moved in its last
    second before disconnecting is not counted here (the unlabelled totals have it).
    """

    groups: dict[str, GroupTraffic] = field(
        default_factory=lambda: {g: GroupTraffic() for g in PEER_GROUPS})
    _last: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    def update(self, ledgers: dict[str, Any], group_of: Callable[[str], str]) -> None:
        seen: dict[str, tuple[int, int, int, int]] = {}
        for peer, ledger in ledgers.items():
            now = (ledger.blocks_sent, ledger.bytes_sent, ledger.blocks_received,
                   ledger.bytes_received)
            before = self._last.get(peer, (0, 0, 0, 0))
            if any(n < b for n, b in zip(now, before, strict=True)):
                before = (0, 0, 0, 0)  # a new ledger since (the peer reconnected)
            traffic = self.groups[group_of(peer)]
            traffic.blocks_sent += now[0] - before[0]
            traffic.bytes_sent += now[1] - before[1]
            traffic.blocks_received += now[2] - before[2]
            traffic.bytes_received += now[3] - before[3]
            seen[peer] = now
        self._last = seen


class Observer:
    """Samples one Node (and its cluster Member, if any) and renders snapshots of it."""

    def __init__(self, node: Node, member: Member | None = None, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.member = member
        self._wall_clock = wall_clock
        self.started = wall_clock()
        #: (wall time, bytes sent, bytes received) once a sample, oldest first.
        self.history: deque[tuple[float, int, int]] = deque(maxlen=HISTORY)
        self.latency: dict[str, float] = {}
        self.peer_groups = PeerGroups()
        self.store_stat: StoreStat | None = None
        self.pin_count: int | None = None
        self.pins: list[tuple[CID, str]] = []  # the first MAX_LISTED, as of `pin_count`
        self._cluster_peers = frozenset(
            n.peer_id for n in member.cluster.nodes if n.peer_id) if member else frozenset()

    def group_of(self, peer: str) -> str:
        return CLUSTER if peer in self._cluster_peers else OTHER

    # -- sampling ------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample until cancelled."""
        async with trio.open_nursery() as nursery:
            self.sample()
            nursery.start_soon(self._ping_loop)
            nursery.start_soon(self._store_loop)
            nursery.start_soon(self._pin_loop)
            task_status.started()
            while True:
                await trio.sleep(SAMPLE_INTERVAL)
                self.sample()

    def sample(self) -> None:
        stat = self.node.bitswap.stat()
        received = stat.data_received + stat.dup_data_received
        self.history.append((self._wall_clock(), stat.data_sent, received))
        self.peer_groups.update(self.node.bitswap.ledgers(), self.group_of)

    async def _ping_loop(self) -> None:
        while True:
            peers = self.node.host.peers()[:MAX_PINGED]
            async with trio.open_nursery() as nursery:
                for peer in peers:
                    nursery.start_soon(self._ping, peer)
            for gone in set(self.latency) - set(self.node.host.peers()):
                del self.latency[gone]
            await trio.sleep(PING_INTERVAL)

    async def _ping(self, peer: str) -> None:
        try:
            self.latency[peer] = await self.node.host.ping(peer, timeout=PING_TIMEOUT)
        except Exception as exc:  # whatever a peer's stream does, the daemon goes on
            self.latency.pop(peer, None)  # unknown now rather than stale
            if not isinstance(exc, BlockmeshError):
                logger.debug("ping of %s failed: %r", peer, exc)

    async def _store_loop(self) -> None:
        repo = self.node.repo
        counted: tuple[int, int] | None = None
        last, gap = -math.inf, 0.0  # when the last walk ended, and the spacing it earned
        while True:
            ops = repo.blocks.ops
            since = trio.current_time() - last
            changed = counted != (ops.puts, ops.deletes)
            if since >= STORE_STAT_INTERVAL or (changed and since >= gap):
                counted = (ops.puts, ops.deletes)
                start = trio.current_time()
                try:
                    self.store_stat = await trio.to_thread.run_sync(repo.blocks.stat)
                except (OSError, BlockmeshError) as exc:  # shown stale, tried again later
                    logger.warning("could not count the blockstore: %s", exc)
                last = trio.current_time()
                gap = max(STORE_STAT_MIN_GAP, (last - start) * STORE_STAT_SPACING)
            await trio.sleep(SAMPLE_INTERVAL)

    async def _pin_loop(self) -> None:
        """Count the pins once a sample, off the loop (one indexed COUNT and a LIMIT query, so
        cheap, unlike the blockstore walk: pins added or removed show within a second)."""
        pins = self.node.repo.pins
        while True:
            try:
                self.pin_count, self.pins = await trio.to_thread.run_sync(
                    pins.summary, MAX_LISTED)
            except (sqlite3.Error, BlockmeshError) as exc:  # shown stale, tried again later
                logger.warning("could not count the pins: %s", exc)
            await trio.sleep(SAMPLE_INTERVAL)

    # -- rendering -----------------------------------------------------------------------------
    def bandwidth(self) -> list[dict[str, float]]:
        """Bytes per second between consecutive samples, oldest first."""
        out = []
        samples = list(self.history)
        for (t0, s0, r0), (t1, s1, r1) in itertools.pairwise(samples):
            span = max(t1 - t0, 1e-3)
            out.append({"t": t1, "sent": (s1 - s0) / span, "received": (r1 - r0) / span})
        return out

    def peers(self) -> list[dict[str, Any]]:
        ledgers = self.node.bitswap.ledgers()
        rows = []
        for info in self.node.peers():
            ledger = ledgers.get(info.id)
            rtt = self.latency.get(info.id)
            rows.append({
                "id": info.id, "address": info.address, "group": self.group_of(info.id),
                "latency_ms": None if rtt is None else round(rtt * 1000, 3),
                "ledger": None if ledger is None else {
                    "blocks_sent": ledger.blocks_sent, "bytes_sent": ledger.bytes_sent,
                    "blocks_received": ledger.blocks_received,
                    "bytes_received": ledger.bytes_received,
                    "wants": ledger.wantlist_size,
                    "debt_ratio": _finite(ledger.debt_ratio)},
            })
        return rows

    def bitswap(self) -> dict[str, Any]:
        engine = self.node.bitswap
        stat = engine.stat()
        server = engine.server
        peers = server.peers
        wantlist = [str(cid) for cid in stat.wantlist]
        return {
            "blocks_sent": stat.blocks_sent, "bytes_sent": stat.data_sent,
            "blocks_received": stat.blocks_received, "bytes_received": stat.data_received,
            "dup_blocks_received": stat.dup_blks_received,
            "dup_bytes_received": stat.dup_data_received,
            "messages_received": stat.messages_received,
            "peers": len(stat.peers), "sessions": len(engine.client.sessions),
            "queued_tasks": sum(server.queued(p) for p in peers),
            "outstanding_bytes": sum(server.outstanding(p) for p in peers),
            "wantlist_size": len(wantlist), "wantlist": wantlist[:MAX_LISTED],
            "peer_wants": {p: [str(w.cid) for w in engine.peer_wantlist(p)[:MAX_LISTED]]
                           for p in peers},
        }

    def store(self) -> dict[str, Any]:
        ops = self.node.repo.blocks.ops
        stat = self.store_stat
        pins = [{"cid": str(cid), "kind": kind} for cid, kind in self.pins]
        return {
            "blocks": None if stat is None else stat.blocks,
            "bytes": None if stat is None else stat.bytes,
            "ops": {"put": ops.puts, "put_bytes": ops.put_bytes, "get": ops.gets,
                    "get_bytes": ops.get_bytes, "has": ops.has, "delete": ops.deletes},
            "pin_count": self.pin_count, "pins": pins,
        }

    async def cluster(self) -> dict[str, Any] | None:
        member = self.member
        if member is None:
            return None
        from blockmesh.daemon.cluster_routes import ClusterApi

        api = ClusterApi(member)
        try:
            peers = (await api.peers({})).value  # type: ignore[union-attr]
            statuses = (await api.status({})).value  # type: ignore[union-attr]
            stable = None
            replica = member.replica
            if replica is not None:
                stable = (await member.control.call(_engine_status(replica))).stable_checkpoint
        except BlockmeshError as exc:  # the control plane is starting or stopping
            return {"id": member.id, "error": str(exc), "view": None, "primary": None,
                    "height": None, "stable_checkpoint": None, "cluster_clock": None,
                    "members": [], "pin_count": 0, "pins": []}
        return {"id": member.id, "view": peers["view"], "primary": peers["primary"],
                "height": peers["height"], "stable_checkpoint": stable,
                "cluster_clock": peers["cluster_clock"], "members": peers["members"],
                "pin_count": len(statuses), "pins": statuses[:MAX_LISTED]}

    async def snapshot(self) -> dict[str, Any]:
        """Everything the dashboard and `top` show, as JSON-ready values."""
        node = self.node
        health = getattr(node, "health", None)
        return {
            "time": self._wall_clock(), "uptime": self._wall_clock() - self.started,
            "node": {"id": node.peer_id, "addresses": node.addrs(),
                     "agent": f"blockmesh/{__version__}"},
            "peers": self.peers(),
            "bandwidth": self.bandwidth(),
            "bitswap": self.bitswap(),
            "store": self.store(),
            "health": health() if callable(health) else None,
            "cluster": await self.cluster(),
        }


async def _engine_status(replica: Any) -> Any:
    return replica.engine.status()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
