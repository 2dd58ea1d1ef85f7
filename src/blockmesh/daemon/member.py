"""A cluster member: the PBFT replica and the pinset hosted by the daemon, next to its Node.

This is where the two planes are wired together, and the only place: the replica runs on the
control-plane loop (`bridge.ControlLoop`), executing the pinset; every committed block wakes the
trio side, where the pin tracker turns the member's allocation into Bitswap fetches and local
pins, the auditor samples other members' claims over Bitswap, and each outcome goes back into
the log as an operation signed by the member's own identity.

The pinset is read from the trio thread while the replica's thread executes operations on it,
so it sits behind one lock (`SharedPinset`); reads copy out what they need and never hold the
lock across an await.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import trio
from prometheus_client import CollectorRegistry

from blockmesh.control.cluster.client import ClientSession, ClusterClient
from blockmesh.control.cluster.config import ClusterConfig, NodeConfig
from blockmesh.control.cluster.identity import ClientIdentity
from blockmesh.control.cluster.runtime import Replica
from blockmesh.control.pinset import PinsetApp
from blockmesh.control.pinset.app import MAX_BATCH, is_query
from blockmesh.control.pinset.audit import MAX_AUDIT_BLOCKS, Auditor
from blockmesh.control.pinset.tracker import Action, Allocated, Fetch, PinTracker, Report, Unpin
from blockmesh.control.proto import pinset_pb2 as pb
from blockmesh.daemon.bridge import ControlLoop
from blockmesh.data.cid import CID
from blockmesh.data.connectivity.backoff import BackoffPolicy
from blockmesh.data.net import NetError
from blockmesh.data.node import Node
from blockmesh.data.store.repo import RepoBusy
from blockmesh.errors import BlockmeshError, NotFound
from blockmesh.gc_tuning import settle_after_startup

log = logging.getLogger(__name__)

#: The cluster pins this member holds locally, so a restart knows which local pins are the
#: tracker's to drop (pins a user made with `blockmesh pin add` are never touched).
HELD_FILE = "cluster-pins.json"
#: A fetch for the pin tracker fails when no block arrives for this long.
FETCH_STALL_TIMEOUT = 30.0
#: How long one audit may take, the whole random path included.
AUDIT_TIMEOUT = 10.0
#: Redial a member whose connection dropped after a full-jitter backoff: ceilings from 0.25 s
#: doubling to 5 s (a member is never left unconnected longer than the old fixed 5 s period).
MEMBER_BACKOFF = BackoffPolicy(base=0.25, cap=5.0)
#: Garbage collection runs at most this often after unpins (seconds).
GC_INTERVAL = 30.0


class MemberError(BlockmeshError):
    """The repo's cluster membership is inconsistent (keys, peer id, cluster file)."""


class SharedPinset:
    """The pinset behind a lock: executed on the replica's thread, read on the daemon's."""

    def __init__(self, app: PinsetApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def execute(self, operation: bytes, client_id: str) -> bytes:
        with self._lock:
            return self._app.execute(operation, client_id)

    def read(self, reader: Callable[[PinsetApp], Any]) -> Any:
        with self._lock:
            return reader(self._app)


class Member:
    """Runs one member's replica and pin tracker beside `node` until cancelled (`run`)."""

    def __init__(self, node: Node, config: NodeConfig, cluster: ClusterConfig,
                 identity: ClientIdentity) -> None:
        """`identity`: the member's own client identity (membership.load_membership)."""
        self.node = node
        self.config = config
        self.cluster = cluster
        self.id = config.node_id
        info = cluster.node(self.id)
        if info.peer_id and info.peer_id != node.peer_id:
            raise MemberError(f"this repo's libp2p identity is {node.peer_id}, but the cluster "
                              f"file binds {self.id} to {info.peer_id}")
        #: The other members' data-plane addresses, by node id.
        self.peers = {n.id: n for n in cluster.nodes if n.id != self.id and n.peer_id}
        self.identity = identity
        self.pinset = SharedPinset(PinsetApp([n.id for n in cluster.nodes],
                                             writers=[c.id for c in cluster.writers()],
                                             policy=cluster.pinset.policy(),
                                             member_clients=cluster.member_clients()))
        self._held_path = node.repo.path / HELD_FILE
        self.tracker = PinTracker(held=self._load_held())
        self.auditor = Auditor(self.id, cluster.pinset.audit_interval)
        self.control = ControlLoop(f"{self.id}-control")
        #: The replica's metrics (its own /metrics port serves them too); the daemon's
        #: /metrics forwards them (observe.metrics.ForwardedRegistry).
        self.registry = CollectorRegistry()
        self.replica: Replica | None = None
        self._client: ClusterClient | None = None
        self._session: ClientSession | None = None
        self._submit_lock = trio.Lock()
        self._committed = trio.Event()
        self._reports: dict[CID, Report] = {}
        self._reports_ready = trio.Event()
        self._gc_due: float | None = None
        self._fetching = 0
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.control.run, self._replica_main)
            await self.control.call(self._open_client())
            self._keep_members()
            nursery.start_soon(self._heartbeats)
            nursery.start_soon(self._track)
            nursery.start_soon(self._send_reports)
            nursery.start_soon(self._audit)
            task_status.started()

    async def _replica_main(self) -> None:
        """The control-plane thread's life: the replica serving until it is cancelled."""
        self.replica = Replica(self.config, self.cluster, app=self.pinset, read_only=is_query,
                               registry=self.registry,
                               on_commit=lambda: self.control.to_trio(self._on_commit))
        # As `cluster start` does: the daemon's larger start-up heap is frozen and the young
        # generation collected every 50,000 allocations (gc_tuning.py); with CPython's defaults
        # the collector kept walking it while the replica worked (issue 15, goal 2).
        settle_after_startup()
        try:
            await self.replica.run()
        finally:
            if self._client is not None:
                await self._client.close()

    async def _open_client(self) -> None:
        self._client = ClusterClient(self.cluster, identity=self.identity)
        self._session = self._client.session(self.identity)

    def _on_commit(self) -> None:  # on the trio loop, after blocks were executed
        self._committed.set()
        self._committed = trio.Event()

    # ------------------------------------------------------------------ submitting

    async def submit(self, operation: pb.Operation, timeout: float = 60.0) -> pb.Result:
        """Order `operation` through PBFT, signed as this member; the f+1-certified result."""
        session = self._session
        if session is None:
            raise MemberError("the member's client is not running yet")
        raw = operation.SerializeToString()
        async with self._submit_lock:
            answer = await self.control.call(session.execute(raw, timeout))
        return pb.Result.FromString(answer)

    # ------------------------------------------------------------------ background work

    async def _dial(self, member: str) -> None:
        """Connect to `member`'s data plane unless already connected (NetError if it fails)."""
        peer = self.peers[member]
        if peer.peer_id not in self.node.host.peers():
            await self.node.connect(f"{peer.swarm}/p2p/{peer.peer_id}", timeout=5)

    def _keep_members(self) -> None:
        """The node keeps every other member connected, redialling with backoff when a
        connection drops, and never trims one (protected under the tag `cluster`)."""
        for peer in self.peers.values():
            self.node.connectivity.keep("cluster", f"{peer.swarm}/p2p/{peer.peer_id}",
                                        policy=MEMBER_BACKOFF)

    async def _heartbeats(self) -> None:
        interval = self.cluster.pinset.heartbeat_interval()
        while True:
            beat = pb.Heartbeat(time_ms=time.time_ns() // 1_000_000,
                                free_space=shutil.disk_usage(self.node.repo.path).free,
                                tags=list(self.cluster.pinset.tags))
            try:
                await self.submit(pb.Operation(heartbeat=beat), timeout=interval * 4)
            except BlockmeshError as exc:
                log.info("%s: heartbeat not ordered: %s", self.id, exc)
            await trio.sleep(interval)

    async def _track(self) -> None:
        """Feed the committed allocation to the tracker and carry out its actions."""
        while True:
            committed = self._committed
            allocated = self.pinset.read(lambda app: _allocated_for(app, self.id))
            now = trio.current_time()
            self._carry_out(self.tracker.sync(allocated, now) + self.tracker.tick(now))
            self._maybe_gc(now)
            deadline = self.tracker.next_deadline()
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
            with trio.move_on_after(wait):
                await committed.wait()

    def _carry_out(self, actions: Iterable[Action]) -> None:
        assert self._nursery is not None
        for action in actions:
            if isinstance(action, Fetch):
                self._nursery.start_soon(self._fetch, action)
            elif isinstance(action, Unpin):
                self._unpin(action.cid)
            else:
                self._reports[action.cid] = action
                self._reports_ready.set()

    async def _fetch(self, action: Fetch) -> None:
        for holder in action.holders:
            if holder in self.peers:
                with contextlib.suppress(BlockmeshError):  # the fetch asks everyone anyway
                    await self._dial(holder)
        now = trio.current_time
        self._fetching += 1  # fetched blocks are unpinned until the pin: no GC meanwhile
        try:
            await self.node.fetch(action.cid, stall_timeout=FETCH_STALL_TIMEOUT)
            with self.node.repo.gc_lock():
                self.node.repo.pin(action.cid)
        except BlockmeshError as exc:
            self._carry_out(self.tracker.failed(action.cid, str(exc), now()))
            return
        finally:
            self._fetching -= 1
        self._save_held(add=action.cid)
        self._carry_out(self.tracker.fetched(action.cid, now()))

    def _unpin(self, cid: CID) -> None:
        with contextlib.suppress(NotFound):  # unpinned by hand already
            self.node.repo.pins.remove(cid)
        self._save_held(remove=cid)
        if self._gc_due is None:
            self._gc_due = trio.current_time() + GC_INTERVAL

    def _maybe_gc(self, now: float) -> None:
        if self._gc_due is not None and now >= self._gc_due and not self._fetching:
            try:
                removed = self.node.repo.gc(wait=False).removed
            except RepoBusy:  # an add or pin is writing; try again later
                self._gc_due = now + GC_INTERVAL
                return
            self._gc_due = None
            log.info("%s: garbage collection removed %d blocks", self.id, len(removed))

    async def _send_reports(self) -> None:
        """Order the tracker's reports, all that are pending in one operation (up to
        MAX_BATCH): one consensus round for many pins instead of one each."""
        while True:
            await self._reports_ready.wait()
            self._reports_ready = trio.Event()
            while self._reports:
                batch = list(self._reports.values())[:MAX_BATCH]
                for report in batch:
                    del self._reports[report.cid]
                op = pb.Operation(statuses=pb.StatusBatch(reports=[
                    pb.StatusReport(cid=bytes(r.cid), state=r.state, error=r.error)
                    for r in batch]))
                try:
                    await self.submit(op)
                except BlockmeshError as exc:
                    log.info("%s: %d status reports not ordered: %s", self.id, len(batch), exc)
                    for report in batch:
                        self.tracker.unsent(report.cid)

    async def _audit(self) -> None:
        while True:
            await trio.sleep(1.0)
            claims = self.pinset.read(_claims)  # pinned, allocated and not down
            request = self.auditor.tick(trio.current_time(), claims)
            if request is None or request.target not in self.peers:
                continue
            peer = self.peers[request.target]
            try:
                await self._dial(request.target)
            except NetError as exc:
                # Unreachable is not lying: liveness (heartbeats) deals with members that are
                # down, and an accusation needs an answer that was wrong or missing.
                log.info("%s: no audit of %s, unreachable: %s", self.id, request.target, exc)
                continue
            ok, detail = True, ""
            try:
                served = await self.node.sample(request.cid, peer.peer_id,
                                                self.auditor.next_child,
                                                max_blocks=MAX_AUDIT_BLOCKS,
                                                timeout=AUDIT_TIMEOUT)
                detail = f"{served} block(s) served"
            except BlockmeshError as exc:
                ok, detail = False, str(exc)
            log.info("%s: audit of %s for %s: %s", self.id, request.target, request.cid,
                     "ok" if ok else f"FAILED ({detail})")
            report = pb.AuditReport(cid=bytes(request.cid), target=request.target, ok=ok,
                                    detail=detail[:500])
            try:
                # An outcome the cluster cannot order soon is stale, or the auditor is the one
                # cut off (then its failed samples say nothing about the target): drop it.
                await self.submit(pb.Operation(audit=report), timeout=AUDIT_TIMEOUT)
            except BlockmeshError as exc:
                log.info("%s: audit report not ordered: %s", self.id, exc)

    # ------------------------------------------------------------------ held pins on disk

    def _load_held(self) -> list[CID]:
        try:
            return [CID.parse(text) for text in json.loads(self._held_path.read_text())]
        except FileNotFoundError:
            return []
        except (ValueError, BlockmeshError) as exc:
            raise MemberError(f"{self._held_path} is damaged ({exc}); remove it to let the "
                              "tracker start afresh") from None

    def _save_held(self, *, add: CID | None = None, remove: CID | None = None) -> None:
        held = {str(c) for c in self._load_held()}
        if add is not None:
            held.add(str(add))
        if remove is not None:
            held.discard(str(remove))
        tmp = self._held_path.with_name(f".{HELD_FILE}.{random.getrandbits(32):08x}")
        tmp.write_text(json.dumps(sorted(held)))
        os.replace(tmp, self._held_path)


def _allocated_for(app: PinsetApp, member: str) -> dict[CID, Allocated]:
    allocated = {}
    for cid in app.allocated_to(member):
        view = app.view(cid)
        assert view is not None
        states = {m.member: m.state for m in view.members}
        holders = tuple(m for m in view.allocations
                        if m != member and states.get(m) == pb.PINNED)
        allocated[cid] = Allocated(states.get(member, pb.QUEUED), holders)
    return allocated


def _claims(app: PinsetApp) -> list[tuple[CID, str]]:
    claims = []
    down = app.down_members()
    for view in app.pins():
        cid = CID.decode(view.cid)
        for status in view.members:
            if status.state == pb.PINNED and status.member in view.allocations \
                    and status.member not in down:
                claims.append((cid, status.member))
    return claims
