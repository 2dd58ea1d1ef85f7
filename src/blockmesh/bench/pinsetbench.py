"""The replicated pinset measured on four member daemons (`blockmesh bench pinset`).

- **Pin operations committed per second**, no data moved: C writer identities in this process
  each pin one CID after another (closed loop, f+1 matching replies each). The CIDs use the
  identity hash, whose block is the CID itself, so the members' trackers pin them without any
  transfer; their status reports (pinning, pinned) are ordered too, as in real use.
- **Time to three pinned copies**: `cluster add --replication 3` of a random file on one
  member, until the committed pinset shows three members pinned.
- **Member memory**: resident set size of each member daemon at rest and its peak while the
  file is pinned (sampled every 50 ms).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from blockmesh.control import event_loop
from blockmesh.control.cluster.client import ClusterClient
from blockmesh.control.pinset.config import PinsetConfig
from blockmesh.control.proto import pinset_pb2 as pb
from blockmesh.daemon.local_cluster import LocalMembers
from blockmesh.data.cid import CID, Codec, HashCode, Multihash
from blockmesh.errors import BlockmeshError


@dataclass
class PinsetResult:
    pins: int
    clients: int
    pins_per_second: float
    p50_ms: float
    p99_ms: float
    file_mib: int
    seconds_to_three_pinned: float
    rss_rest_mib: float
    rss_peak_mib: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def identity_cid(k: int) -> CID:
    """A CID whose block is its own digest: pinning it moves no data."""
    digest = f"blockmesh-bench-pin-{k}".encode()
    return CID.v1(Codec.RAW, Multihash(HashCode.IDENTITY, digest).encode())


async def _pin_load(members: LocalMembers, pins: int, clients: int) -> list[float]:
    cluster = members.config
    latencies: list[float] = []
    async with ClusterClient(cluster) as cc:
        sessions = [cc.session(cluster.writer_identity(i)) for i in range(clients)]
        counter = iter(range(pins))

        async def worker(i: int) -> None:
            for k in counter:
                op = pb.Operation(pin_add=pb.PinAdd(cid=bytes(identity_cid(k)),
                                                    replication_min=1, replication_max=3))
                start = time.perf_counter()
                answer = pb.Result.FromString(await sessions[i].execute(op.SerializeToString()))
                if answer.code != pb.Result.OK:
                    raise BlockmeshError(f"pin {k} refused: {answer.message}")
                latencies.append(time.perf_counter() - start)

        await asyncio.gather(*(worker(i) for i in range(clients)))
    return latencies


class _RssSampler:
    def __init__(self, pids: list[int]) -> None:
        self._procs = [psutil.Process(pid) for pid in pids]
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return max(p.memory_info().rss for p in self._procs)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def run_bench(work: Path, pins: int, clients: int, file_mib: int,
              log: object = print) -> PinsetResult:
    members = LocalMembers.create(work / "cluster", clients=clients, pinset=PinsetConfig(
        reallocate_after=60, audit_interval=3600))
    with members:
        members.start_all()
        members.wait("members meshed", lambda: all(
            m["connected"] for m in members.json("node0", "cluster", "peers", "ls")["members"]),
            60)
        time.sleep(2)
        pids = [p.pid for p in members.procs.values()]
        rss_rest = _RssSampler(pids).rss()
        log(f"pinning {pins} CIDs with {clients} clients")  # type: ignore[operator]
        began = time.perf_counter()
        latencies = event_loop.run(_pin_load(members, pins, clients))
        seconds = time.perf_counter() - began
        path = work / "file.bin"
        path.write_bytes(os.urandom(file_mib << 20))
        log(f"cluster add of {file_mib} MiB, replication 3")  # type: ignore[operator]
        with _RssSampler(pids) as sampler:
            start = time.perf_counter()
            cid = members.json("node0", "cluster", "add", str(path), "--replication", "3",
                               "--name", "bench")["cid"]
            members.wait("three pinned", lambda: list(
                members.status("node0", cid).values()).count("pinned") == 3, 600)
            to_three = time.perf_counter() - start
        ordered = sorted(latencies)
        return PinsetResult(
            pins, clients, pins / seconds, ordered[len(ordered) // 2] * 1000,
            ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, file_mib,
            to_three, rss_rest / 2**20, max(sampler.peak, rss_rest) / 2**20)
