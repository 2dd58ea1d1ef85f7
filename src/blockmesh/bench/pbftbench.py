"""PBFT cluster throughput and latency: four replica processes on loopback and a load generator.

Each cell of the matrix starts a fresh cluster (`cluster start` x4, free ports, a temporary
directory), waits until the replicas are meshed, runs an unmeasured warm-up, then measures:

- closed loop: C client identities, each with one request in flight, waiting for f+1
  matching signed replies before the next (the issue's 32-client figure);
- open loop: requests issued on a fixed schedule at a target rate whatever the replies do,
  each from an idle client identity (PBFT's client has one request in flight); a request
  that finds every identity busy waits in a queue for the first to come free, and its latency
  still counts from its scheduled instant, so neither a stalled cluster nor the identity limit
  can hide queueing (no coordinated omission). A sweep steps the offered rate up to find the
  saturation point (`sustains`).

The view-change cell kills the primary with SIGKILL under a light load and times the first
request that commits afterwards, which can only commit in the new view.

The load generator runs in this process and pays for the clients' Ed25519 signing and reply
checks; on a two-core machine it competes with the replicas for CPU, as the issue's
reference measurement did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import psutil

from blockmesh.bench.pbft_clients import run_split_load, shares
from blockmesh.control import event_loop
from blockmesh.control.cluster.client import ClientSession, ClusterClient, RequestFailed
from blockmesh.control.cluster.config import (
    ClusterConfig,
    free_base_port,
    init_cluster,
)
from blockmesh.control.cluster.loadgen import run_load
from blockmesh.control.consensus.app import encode_set
from blockmesh.daemon.local_cluster import LocalMembers
from blockmesh.daemon.membership import init_members
from blockmesh.errors import BlockmeshError
from blockmesh.gc_tuning import settled

NODES = 4
SIZES = (0, 100, 1024)
TRANSPORTS = ("grpc", "tcp")
#: Batching on: up to 64 requests per PRE_PREPARE, one batch in flight (the replicas'
#: default), so requests that arrive meanwhile form the next batch. Off: one request per
#: PRE_PREPARE, pipelined 16 deep (with the default depth of one it would be lock-step).
BATCHING: dict[bool, dict[str, float | int]] = {
    False: {"max_batch_size": 1, "max_inflight_batches": 16},
    True: {"max_batch_size": 64},
}
#: Fast failure detection so the view-change cell finishes in seconds (default timeout is 4 s).
VIEW_CHANGE_PBFT = {"view_change_timeout": 1.0, "retransmit_interval": 0.5}
START_TIMEOUT = 60.0
REQUEST_TIMEOUT = 30.0
#: Open loop: seconds after the last scheduled instant for queued and in-flight requests to
#: commit; what has not by then counts as unfinished (and the step as not sustained).
DRAIN_SECONDS = 10.0
#: An open-loop step is sustained when it commits at least this share of the offered rate...
SUSTAINED_SHARE = 0.95
#: ...with a p99 latency (from the scheduled instant) no higher than this...
P99_BOUND_MS = 500.0
#: ...and no queue that grows through the step: the median latency of the requests due in the
#: second half of the measured window at most DRIFT_FACTOR times (plus DRIFT_SLACK_MS) that of
#: the first half's. (Halves, not single seconds: one-second medians drift by 2x as noise.)
DRIFT_FACTOR = 1.5
DRIFT_SLACK_MS = 20.0
#: The sweep stops after this many steps in a row that were not sustained.
SWEEP_STOP_AFTER = 2

Log = Callable[[str], None]


class BenchError(BlockmeshError):
    """The cluster under test did not start or did not answer."""


@dataclass
class Row:
    transport: str
    mode: str  # "closed" or "open"
    batching: bool
    size: int
    clients: int
    target_rate: float | None
    committed: int
    failed: int
    #: Open loop: measured requests that found every client identity busy at their scheduled
    #: instant and waited for one (their latency includes the wait).
    queued: int
    #: Open loop: measured requests not committed by the end of the drain.
    unfinished: int
    seconds: float
    #: Closed loop: measured requests / their seconds. Open loop: requests that committed
    #: inside the measured window / its length, whenever they were scheduled.
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    mean_batch: float | None
    #: CPU (user + system) per committed request: the busiest replica, all four together,
    #: and the load generator. Steadier than req/s when other jobs share the cores.
    cpu_ms_primary: float | None = None
    cpu_ms_replicas: float | None = None
    cpu_ms_client: float | None = None
    #: The same per process: node0..node3 (node0 is view 0's primary) and "client".
    cpu_ms_by_process: dict[str, float] | None = None
    #: Open loop: median latency of the requests due in the first and in the second half of
    #: the measured window; the second well above the first means a queue that kept growing.
    p50_first_half_ms: float | None = None
    p50_second_half_ms: float | None = None


def sustains(row: Row, p99_bound_ms: float = P99_BOUND_MS) -> bool:
    """Whether an open-loop step kept up with its offered rate: no failed or unfinished
    request, committed req/s ≥ SUSTAINED_SHARE of offered, p99 within the bound, and latency
    not drifting up through the step."""
    first, last = row.p50_first_half_ms, row.p50_second_half_ms
    steady = first is None or last is None or last <= DRIFT_FACTOR * first + DRIFT_SLACK_MS
    return (row.mode == "open" and row.target_rate is not None and row.failed == 0
            and row.unfinished == 0 and row.p99_ms <= p99_bound_ms and steady
            and row.requests_per_second >= SUSTAINED_SHARE * row.target_rate)


@dataclass
class Saturation:
    """The open-loop sweep of one (transport, size): the highest sustained offered rate and
    what it committed, and the most any step committed."""
    transport: str
    size: int
    identities: int
    offered: float | None
    committed_per_second: float | None
    p50_ms: float | None
    p99_ms: float | None
    peak_per_second: float
    p99_bound_ms: float


def saturation(rows: list[Row], p99_bound_ms: float = P99_BOUND_MS) -> list[Saturation]:
    found: list[Saturation] = []
    cells = sorted({(r.transport, r.size) for r in rows if r.mode == "open"})
    for kind, size in cells:
        steps = [r for r in rows if r.mode == "open" and (r.transport, r.size) == (kind, size)]
        kept = [r for r in steps if sustains(r, p99_bound_ms)]
        best = max(kept, key=lambda r: r.target_rate or 0.0) if kept else None
        peak = max(r.requests_per_second for r in steps)
        if best is None:
            found.append(Saturation(kind, size, steps[0].clients, None, None, None, None, peak,
                                    p99_bound_ms))
        else:
            found.append(Saturation(kind, size, best.clients, best.target_rate,
                                    best.requests_per_second, best.p50_ms, best.p99_ms, peak,
                                    p99_bound_ms))
    return found


@dataclass
class ViewChangeRow:
    transport: str
    view_change_timeout: float
    seconds_to_first_commit: float
    new_view: int


@dataclass
class BenchResult:
    rows: list[Row] = field(default_factory=list)
    view_changes: list[ViewChangeRow] = field(default_factory=list)
    saturation: list[Saturation] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"rows": [asdict(r) for r in self.rows],
                "view_changes": [asdict(v) for v in self.view_changes],
                "saturation": [asdict(s) for s in self.saturation]}


class LocalCluster:
    """Four `cluster start` processes in `root`; stopped by PID when the context exits."""

    def __init__(self, root: Path, kind: str, pbft: dict[str, float | int], clients: int,
                 profile_dir: Path | None = None, sign_requests: bool = False) -> None:
        self.root = root
        self.kind = kind
        #: Whether the load generator signs its requests or sends them MAC-only.
        self.sign_requests = sign_requests
        init_cluster(root, NODES, "127.0.0.1", free_base_port(NODES), 100, clients=clients,
                     transport=kind, pbft=pbft)
        self.config = ClusterConfig.load(root / "cluster.toml")
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._profile_dir = profile_dir

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalCluster]:
        try:
            for k in range(NODES):
                self._start(f"node{k}")
            self._wait_meshed()
            yield self
        finally:
            self.stop()

    def _start(self, node: str) -> None:
        command = [sys.executable]
        if self._profile_dir is not None:
            command += ["-m", "cProfile", "-o",
                        str(self._profile_dir / f"{self.kind}-{node}.prof")]
        command += ["-m", "blockmesh.cli", "cluster", "start", "--config",
                    str(self.root / f"{node}.toml"), "--transport", self.kind]
        with open(self.root / f"{node}.log", "wb") as log:
            self.procs[node] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, node: str) -> None:
        proc = self.procs.pop(node)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs.clear()

    def _wait_meshed(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for node, proc in self._processes().items():
                if proc.poll() is not None:
                    raise BenchError(f"{node} exited with {proc.returncode}; see "
                                     f"{self.root / (node + '.log')}")
            rows = event_loop.run(self._status())
            if all(len(r.get("peers", ())) == NODES - 1 for r in rows):
                return
            time.sleep(0.2)
        raise BenchError(f"the {self.kind} replicas did not mesh within {START_TIMEOUT:g} s")

    def _processes(self) -> dict[str, subprocess.Popen[bytes]]:
        """The replica processes by node, read for meshing and CPU time (MemberCluster's are
        its member daemons, which LocalMembers starts)."""
        return self.procs

    async def _status(self) -> list[dict[str, object]]:
        async with ClusterClient(self.config) as cc:
            return await cc.status()

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds so far of every replica process and of this process."""
        seconds = {}
        for node, proc in self._processes().items():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(proc.pid).cpu_times()
                seconds[node] = times.user + times.system
        own = os.times()
        seconds["client"] = own.user + own.system
        return seconds

    def batch_totals(self, node: str = "node0") -> tuple[float, float]:
        """(sum, count) of the batch-size histogram of `node` (the primary of view 0)."""
        address = self.config.node(node).metrics_address
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        totals = []
        for suffix in ("sum", "count"):
            found = re.search(rf"^blockmesh_pbft_batch_size_{suffix}\{{[^}}]*\}} (\S+)$", text,
                              re.MULTILINE)
            totals.append(float(found.group(1)) if found else 0.0)
        return totals[0], totals[1]


class MemberCluster(LocalCluster):
    """Four `blockmesh daemon` member repos (daemon/local_cluster.py) whose replicas the load
    generator drives exactly as it drives `cluster start` processes: goal 2 of issue 15, the
    replica hosted beside the data plane. The members' application is the pinset, which
    answers the load generator's KV operations BAD_REQUEST after ordering them: consensus,
    storage and replies cost what they cost stand-alone, execution next to nothing on both."""

    def __init__(self, root: Path, kind: str, pbft: dict[str, float | int], clients: int,
                 profile_dir: Path | None = None, sign_requests: bool = False) -> None:
        if set(pbft) - set(BATCHING[True]) or profile_dir is not None:
            raise BenchError("member daemons take the default PBFT parameters and no profiler")
        self.root = root
        self.kind = kind
        self.sign_requests = sign_requests
        self.config = init_members(root, NODES, "127.0.0.1", free_base_port(NODES),
                                   transport=kind, checkpoint_interval=100, clients=clients)
        self.members = LocalMembers(root, self.config, log_level="warning")
        self._profile_dir = None

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalCluster]:
        try:
            self.members.start_all()
            self._wait_meshed()
            yield self
        finally:
            self.stop()

    def _processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {node: daemon.proc for node, daemon in self.members.procs.items()}

    def kill(self, node: str) -> None:
        self.members.kill(node)

    def stop(self) -> None:
        self.members.stop_all()


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


Session = TypeVar("Session")


@dataclass
class OpenLoopResult(Generic[Session]):
    committed: int = 0  # measured requests (scheduled inside the window) that committed
    failed: int = 0
    queued: int = 0  # measured requests that waited for an idle identity
    unfinished: int = 0  # measured requests neither committed nor failed after the drain
    window_commits: int = 0  # commits whose reply came inside the window, any schedule
    seconds: float = 0.0  # the measured window
    latencies: list[float] = field(default_factory=list)  # measured commits, from schedule
    #: Seconds from the window's start to each measured commit's scheduled instant, in the
    #: order of `latencies`.
    due_offsets: list[float] = field(default_factory=list)
    everything: int = 0  # commits in all, warm-up included (for CPU per request)


async def run_schedule(sessions: list[Session], execute: Callable[[Session], Awaitable[object]],
                       rate: float, seconds: float, warmup: float,
                       drain: float = DRAIN_SECONDS) -> OpenLoopResult[Session]:
    """Open loop: the i-th request is due at start + i / rate, for `warmup` unmeasured and
    then `seconds` measured seconds, whatever the earlier ones are doing. A due request goes
    out on an idle session at once, or else waits in a FIFO that the next session to finish
    takes from; its latency runs from the instant it was due either way. `execute` raises
    RequestFailed for a request that failed. After the schedule, `drain` seconds for the
    rest, then what is still pending is cancelled and counted as unfinished."""
    loop = asyncio.get_running_loop()
    out: OpenLoopResult[Session] = OpenLoopResult(seconds=seconds)
    idle = list(sessions)
    backlog: deque[tuple[float, bool]] = deque()
    tasks: set[asyncio.Task[None]] = set()
    began = loop.time()
    measure_from = began + warmup
    end = measure_from + seconds
    measured_issued = 0

    async def serve(session: Session, due: float, measured: bool) -> None:
        while True:
            try:
                await execute(session)
            except RequestFailed:
                if measured:
                    out.failed += 1
            else:
                now = loop.time()
                out.everything += 1
                if measure_from <= now < end:
                    out.window_commits += 1
                if measured:
                    out.committed += 1
                    out.latencies.append(now - due)
                    out.due_offsets.append(due - measure_from)
            if not backlog:
                idle.append(session)
                return
            due, measured = backlog.popleft()

    issued = 0
    while True:
        due = began + issued / rate
        if due >= end:
            break
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        issued += 1
        measured = due >= measure_from
        measured_issued += measured
        if not idle:
            backlog.append((due, measured))
            out.queued += measured
            continue
        task = asyncio.create_task(serve(idle.pop(), due, measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=max(0.0, end + drain - loop.time()))
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out.unfinished = measured_issued - out.committed - out.failed
    return out


async def open_loop(config: ClusterConfig, transport: str, rate: float, seconds: float,
                    size: int, identities: int, warmup: float, sign_requests: bool = False,
                    drain: float = DRAIN_SECONDS) -> OpenLoopResult[ClientSession]:
    """`run_schedule` against the cluster: KV sets of `size` bytes from `identities` client
    identities (the cluster's first writers)."""
    async with ClusterClient(config, transport, sign_requests=sign_requests) as cc:
        sessions = [cc.session(i) for i in range(identities)]
        value = os.urandom(size)
        operations = {s.client_id: encode_set(f"open/{s.client_id}".encode(), value)
                      for s in sessions}

        def execute(session: ClientSession) -> Awaitable[bytes]:
            return session.execute(operations[session.client_id], REQUEST_TIMEOUT)

        with settled():
            return await run_schedule(sessions, execute, rate, seconds, warmup, drain)


def _mean_batch(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    count = after[1] - before[1]
    return (after[0] - before[0]) / count if count > 0 else None


def _cpu_per_request(before: dict[str, float], after: dict[str, float],
                     requests: int) -> dict[str, Any]:
    """CPU ms per request from two `LocalCluster.cpu_seconds` readings."""
    if requests <= 0:
        return {"cpu_ms_primary": None, "cpu_ms_replicas": None, "cpu_ms_client": None,
                "cpu_ms_by_process": None}
    used = {k: after[k] - before[k] for k in after if k in before}
    replicas = [v for k, v in used.items() if k != "client"]
    per = 1000 / requests
    return {"cpu_ms_primary": round(max(replicas, default=0.0) * per, 3),
            "cpu_ms_replicas": round(sum(replicas) * per, 3),
            "cpu_ms_client": round(used.get("client", 0.0) * per, 3),
            "cpu_ms_by_process": {k: round(v * per, 3) for k, v in sorted(used.items())}}


def run_closed(cluster: LocalCluster, batching: bool, size: int, clients: int, count: int,
               warmup: int, processes: int = 1) -> Row:
    """Warm-up and measurement run as one load, so the CPU readings straddle both; the
    CPU columns divide by every request of the cell, warm-up included. `processes` > 1
    splits the clients over that many load-generator processes (bench/pbft_clients.py),
    whose CPU the "client" column adds up."""
    before = cluster.batch_totals()
    cpu_before = cluster.cpu_seconds()
    if processes == 1:
        result = event_loop.run(run_load(cluster.config, count, size, clients, cluster.kind,
                                         warmup, REQUEST_TIMEOUT, cluster.sign_requests))
        spent = 0.0
    else:
        assert cluster.config.directory is not None  # loaded from its cluster.toml
        result, spent = run_split_load(cluster.config.directory / "cluster.toml", size,
                                       cluster.kind, REQUEST_TIMEOUT, cluster.sign_requests,
                                       shares(clients, count, warmup, processes))
    cpu_after = cluster.cpu_seconds()
    cpu_after["client"] += spent
    cpu = _cpu_per_request(cpu_before, cpu_after, result.committed + warmup)
    mean = _mean_batch(before, cluster.batch_totals())
    ordered = sorted(result.latencies)
    return Row(cluster.kind, "closed", batching, size, clients, None, result.committed,
               result.failed, 0, 0, round(result.seconds, 3), round(result.rate, 1),
               round(_percentile(ordered, 0.5) * 1000, 2),
               round(_percentile(ordered, 0.99) * 1000, 2),
               None if mean is None else round(mean, 2), **cpu)


def run_open(cluster: LocalCluster, batching: bool, size: int, rate: float, seconds: float,
             identities: int, warmup: float, drain: float = DRAIN_SECONDS) -> Row:
    """One open-loop step; the CPU columns divide by every commit of the step, warm-up and
    drain included (the CPU readings straddle them)."""
    before = cluster.batch_totals()
    cpu_before = cluster.cpu_seconds()
    out = event_loop.run(open_loop(cluster.config, cluster.kind, rate, seconds, size,
                                   identities, warmup, cluster.sign_requests, drain))
    cpu = _cpu_per_request(cpu_before, cluster.cpu_seconds(), out.everything)
    mean = _mean_batch(before, cluster.batch_totals())
    ordered = sorted(out.latencies)
    half = seconds / 2
    first = sorted(x for x, at in zip(out.latencies, out.due_offsets, strict=True) if at < half)
    last = sorted(x for x, at in zip(out.latencies, out.due_offsets, strict=True) if at >= half)
    return Row(cluster.kind, "open", batching, size, identities, rate, out.committed, out.failed,
               out.queued, out.unfinished, round(out.seconds, 3),
               round(out.window_commits / out.seconds, 1),
               round(_percentile(ordered, 0.5) * 1000, 2),
               round(_percentile(ordered, 0.99) * 1000, 2),
               None if mean is None else round(mean, 2), **cpu,
               p50_first_half_ms=round(_percentile(first, 0.5) * 1000, 2) if first else None,
               p50_second_half_ms=round(_percentile(last, 0.5) * 1000, 2) if last else None)


def run_view_change(cluster: LocalCluster) -> ViewChangeRow:
    """SIGKILL the primary of view 0 under load; time the first commit after it."""
    config = cluster.config
    timeout = float(dict(config.pbft).get("view_change_timeout", 4.0))

    async def measure() -> tuple[float, int]:
        async with ClusterClient(config) as cc:
            background = [cc.session(i) for i in range(1, 5)]
            stop = asyncio.Event()

            async def churn(session: ClientSession) -> None:
                key = f"vc/{session.client_id}".encode()
                while not stop.is_set():
                    with contextlib.suppress(RequestFailed):
                        await session.execute(encode_set(key, b"x"), REQUEST_TIMEOUT)

            workers = [asyncio.create_task(churn(s)) for s in background]
            await asyncio.sleep(1.0)
            cluster.kill("node0")
            killed = time.monotonic()
            await cc.session(0).execute(encode_set(b"vc/first", b"after"), 4 * REQUEST_TIMEOUT)
            took = time.monotonic() - killed
            stop.set()
            await asyncio.wait(workers, timeout=REQUEST_TIMEOUT)
            views = [r.get("view", 0) for r in await cc.status() if "error" not in r]
            return took, int(min(views, default=0))

    took, view = event_loop.run(measure())
    if view < 1:
        raise BenchError("the first commit after killing the primary was not in a new view")
    return ViewChangeRow(cluster.kind, timeout, round(took, 3), view)


@dataclass(frozen=True)
class Plan:
    transports: tuple[str, ...] = TRANSPORTS
    sizes: tuple[int, ...] = SIZES
    batching: tuple[bool, ...] = (True, False)
    modes: tuple[str, ...] = ("closed", "open")
    clients: int = 32
    count: int = 2000
    warmup: int = 300
    #: Open loop: offered rates, in order. More than one is a sweep, which stops after
    #: SWEEP_STOP_AFTER steps in a row that were not sustained.
    rates: tuple[float, ...] = (2000.0,)
    seconds: float = 5.0
    open_identities: int = 256
    view_change: bool = True
    extra_pbft: tuple[tuple[str, float | int], ...] = ()
    #: Sign every request (True) or authenticate it by MACs only, as BFT-SMaRt's benchmark
    #: does by default.
    sign_requests: bool = False
    #: Replicas as `cluster start` processes ("standalone") or hosted by member daemons.
    hosted: str = "standalone"
    p99_bound_ms: float = P99_BOUND_MS
    #: Closed loop: load-generator processes the clients are split over.
    client_processes: int = 1


def run_bench(plan: Plan, workdir: Path, log: Log, profile_dir: Path | None = None) -> BenchResult:
    """Every requested cell; one fresh cluster per (transport, batching) pair."""
    result = BenchResult()
    identities = max(plan.clients, plan.open_identities if "open" in plan.modes else 0)
    for kind in plan.transports:
        for batching in plan.batching:
            pbft = {**BATCHING[batching], **dict(plan.extra_pbft)}
            root = workdir / f"{kind}-{'batch' if batching else 'nobatch'}"
            host = MemberCluster if plan.hosted == "daemon" else LocalCluster
            cluster = host(root, kind, pbft, identities, profile_dir, plan.sign_requests)
            log(f"{kind}, batching {'on' if batching else 'off'}: starting 4 replicas")
            with cluster.running():
                for size in plan.sizes:
                    if "closed" in plan.modes:
                        row = run_closed(cluster, batching, size, plan.clients, plan.count,
                                         plan.warmup, plan.client_processes)
                        log(_describe(row))
                        result.rows.append(row)
                    if "open" in plan.modes:
                        result.rows += _sweep(cluster, batching, size, plan, log)
        if plan.view_change:
            cluster = LocalCluster(workdir / f"{kind}-viewchange", kind,
                                   {**BATCHING[True], **VIEW_CHANGE_PBFT}, 8)
            log(f"{kind}: killing the primary")
            with cluster.running():
                row = run_view_change(cluster)
            log(f"{kind}: first commit {row.seconds_to_first_commit:.2f} s after the kill "
                f"(view {row.new_view}, timeout {row.view_change_timeout:g} s)")
            result.view_changes.append(row)
    result.saturation = saturation(result.rows, plan.p99_bound_ms)
    return result


def _sweep(cluster: LocalCluster, batching: bool, size: int, plan: Plan, log: Log) -> list[Row]:
    rows: list[Row] = []
    behind = 0
    for rate in plan.rates:
        row = run_open(cluster, batching, size, rate, plan.seconds, plan.open_identities, 1.0)
        kept = sustains(row, plan.p99_bound_ms)
        log(_describe(row) + ("" if kept else " [not sustained]"))
        rows.append(row)
        behind = 0 if kept else behind + 1
        if len(plan.rates) > 1 and behind >= SWEEP_STOP_AFTER:
            break
    return rows


def _describe(row: Row) -> str:
    load = f"{row.clients} clients" if row.mode == "closed" else (
        f"{row.target_rate:g}/s offered ({row.clients} identities, {row.queued} queued, "
        f"{row.unfinished} unfinished, p50 first/second half {row.p50_first_half_ms}/"
        f"{row.p50_second_half_ms} ms)")
    return (f"{row.transport} {row.mode} batching={'on' if row.batching else 'off'} "
            f"{row.size} B, {load}: {row.requests_per_second:,.0f} req/s, p50 {row.p50_ms} ms, "
            f"p99 {row.p99_ms} ms, mean batch {row.mean_batch}; CPU ms/request: replicas "
            f"{row.cpu_ms_replicas} (busiest {row.cpu_ms_primary}), client {row.cpu_ms_client}")
