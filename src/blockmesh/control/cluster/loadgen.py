"""Closed-loop load generator: C client identities, each with one request in flight.

Each client waits for f+1 matching replies before sending its next request, so the offered
load adapts to what the cluster sustains and latency is measured end to end (sign, send to
every replica, order, execute, reply, check f+1 signatures). Requests are KV SETs whose value
has the requested size, so every one of them changes the replicated state.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from blockmesh.control.cluster.client import ClusterClient, ClusterUnreachable, RequestFailed
from blockmesh.control.cluster.config import ClusterConfig, ClusterConfigError
from blockmesh.control.consensus.app import encode_set
from blockmesh.gc_tuning import settled


@dataclass
class LoadResult:
    transport: str
    clients: int
    size: int
    committed: int = 0
    failed: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.committed / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, object]:
        return {"transport": self.transport, "clients": self.clients, "size": self.size,
                "committed": self.committed, "failed": self.failed,
                "seconds": round(self.seconds, 3), "requests_per_second": round(self.rate, 1),
                "p50_ms": round(self.percentile(0.50) * 1000, 2),
                "p99_ms": round(self.percentile(0.99) * 1000, 2), "errors": self.errors}


async def run_load(cluster: ClusterConfig, count: int, size: int, clients: int,
                   transport: str | None = None, warmup: int = 0,
                   timeout: float = 60.0, sign_requests: bool = True, first_identity: int = 0,
                   before_measure: Callable[[], object] | None = None) -> LoadResult:
    """Commit `count` requests (after `warmup` unmeasured ones) with `clients` in parallel,
    signing as the cluster's writers from `first_identity` on (their key files under its
    directory; `sign_requests` False: authenticated by MACs only). `before_measure` runs
    between warm-up and measurement (load generators in several processes meet there, so
    their measured windows start together).
    Raises ClusterUnreachable as soon as too few replicas can be dialled for any to commit."""
    if clients < 1 or count < 1:
        raise ClusterConfigError("need at least one client and one request")
    writers = len(cluster.writers())
    if first_identity < 0 or first_identity + clients > writers:
        raise ClusterConfigError(
            f"clients {first_identity}..{first_identity + clients - 1} asked, the cluster file "
            f"lists {writers} writer identities (cluster init --clients)")
    identities = [cluster.writer_identity(first_identity + i) for i in range(clients)]
    async with ClusterClient(cluster, transport, sign_requests=sign_requests) as cc:
        result = LoadResult(cc.transport, clients, size)
        sessions = [cc.session(identity) for identity in identities]
        values = [os.urandom(size) for _ in range(clients)]
        left = [warmup]
        unreachable: list[ClusterUnreachable] = []

        async def worker(i: int, measured: bool) -> None:
            session = sessions[i]
            key = f"load/{session.client_id}".encode()
            while left[0] > 0:
                left[0] -= 1
                start = time.perf_counter()
                try:
                    await session.execute(encode_set(key, values[i]), timeout)
                except ClusterUnreachable as exc:  # no request can succeed: stop every worker
                    unreachable.append(exc)
                    left[0] = 0
                    return
                except RequestFailed as exc:
                    if measured:
                        result.failed += 1
                        reason = str(exc).split(":")[0]
                        result.errors[reason] = result.errors.get(reason, 0) + 1
                    continue
                if measured:
                    result.committed += 1
                    result.latencies.append(time.perf_counter() - start)

        with settled():
            if warmup:
                await asyncio.gather(*(worker(i, False) for i in range(clients)))
            if before_measure is not None:
                before_measure()
            left[0] = 0 if unreachable else count
            began = time.perf_counter()
            await asyncio.gather(*(worker(i, True) for i in range(clients)))
            result.seconds = time.perf_counter() - began
        if unreachable:
            raise unreachable[0]
        return result
