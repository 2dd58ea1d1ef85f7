"""The closed-loop load generator split over several processes.

One Python process runs the 32 closed-loop clients on one core. PBFT batches put every
client's request into the same batch, so all replies come back together and the load
generator then works alone while the replicas wait for its next requests: on two cores,
one is idle meanwhile (docs/benchmarks.md, "Session 9: where the idle time goes").
BFT-SMaRt's ThroughputLatency client runs its clients as threads of one JVM, on every core.
Here each process runs a share of the client identities; they meet at a barrier after the
warm-up so their measured windows start together, and their results are merged.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

from blockmesh.control import event_loop
from blockmesh.control.cluster.config import ClusterConfig
from blockmesh.control.cluster.loadgen import LoadResult, run_load
from blockmesh.errors import BlockmeshError


class LoadProcessError(BlockmeshError):
    """A load-generator process failed or did not report."""


@dataclass(frozen=True)
class Share:
    """One process's part of the load: its identities, requests and warm-up."""

    first_identity: int
    clients: int
    count: int
    warmup: int


def shares(clients: int, count: int, warmup: int, processes: int) -> list[Share]:
    """Split identities, requests and warm-up as evenly as they go, in proportion to the
    clients of each part (so the parts finish together). Every part has at least one client."""
    if processes < 1 or clients < processes:
        raise ValueError("need at least one client per load process")
    out = []
    first = 0
    given_count = given_warmup = 0
    for k in range(processes):
        mine = clients // processes + (1 if k < clients % processes else 0)
        upto = first + mine
        share_count = count * upto // clients - given_count
        share_warmup = warmup * upto // clients - given_warmup
        out.append(Share(first, mine, share_count, share_warmup))
        given_count += share_count
        given_warmup += share_warmup
        first = upto
    return out


def merge(results: list[LoadResult]) -> LoadResult:
    """One result for the whole load: counts and latencies summed, the longest window."""
    merged = LoadResult(results[0].transport, sum(r.clients for r in results), results[0].size)
    for r in results:
        merged.committed += r.committed
        merged.failed += r.failed
        merged.seconds = max(merged.seconds, r.seconds)
        merged.latencies += r.latencies
        for reason, n in r.errors.items():
            merged.errors[reason] = merged.errors.get(reason, 0) + n
    return merged


def run_split_load(cluster_path: Path, size: int, transport: str, timeout: float,
                   sign_requests: bool, parts: list[Share]) -> tuple[LoadResult, float]:
    """Run each share in its own process; the merged result and the CPU seconds (user +
    system) the processes spent from dialling the replicas to the end of their load."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(parts))
    answers: Queue[tuple[LoadResult | str, float]] = context.Queue()
    procs = [context.Process(target=_run_share, daemon=True,
                             args=(cluster_path, size, transport, timeout, sign_requests, share,
                                   barrier, answers))
             for share in parts]
    for proc in procs:
        proc.start()
    try:
        got = [answers.get(timeout=timeout + 120) for _ in procs]
    except Exception:  # queue.Empty: a process died before answering
        raise LoadProcessError("a load-generator process did not report") from None
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    errors = [r for r, _ in got if isinstance(r, str)]
    if errors:
        raise LoadProcessError(errors[0])
    return merge([r for r, _ in got if isinstance(r, LoadResult)]), sum(c for _, c in got)


def _run_share(cluster_path: Path, size: int, transport: str, timeout: float,
               sign_requests: bool, share: Share, barrier: Barrier,
               answers: Queue[tuple[LoadResult | str, float]]) -> None:
    cluster = ClusterConfig.load(cluster_path)
    before = os.times()
    try:
        result: LoadResult | str = event_loop.run(run_load(
            cluster, share.count, size, share.clients, transport, share.warmup, timeout,
            sign_requests, share.first_identity, lambda: barrier.wait(timeout=timeout)))
    except Exception as exc:  # reported to the parent, which raises it as LoadProcessError
        barrier.abort()
        result = f"{type(exc).__name__}: {exc}"
    after = os.times()
    answers.put((result, after.user + after.system - before.user - before.system))
