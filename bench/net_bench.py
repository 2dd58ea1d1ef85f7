"""Loopback benchmark of the host adapter between two processes (not a test; run by hand).

    python bench/net_bench.py [--mib 128] [--rounds 3] [--profile FILE]

Measures connect latency (TCP + Noise + Yamux, to a peer in another process) and one-stream
throughput both ways with 1 MiB and 64 KiB writes, with the CPU time each side spent per MB:
on a shared machine the MB/s reflect whoever else is running, the CPU cost per MB does not, and
1000 / (the larger cost in ms) is the rate one free core per side would allow. `--profile`
writes a cProfile of this (the sending/receiving parent) process.
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import time

import psutil
import trio

from blockmesh.bench.net_peer import SINK, SOURCE, start_peer, stop_peer
from blockmesh.data.net import Host, Identity, NetConfig

MIB = 1 << 20


async def upload(host: Host, peer: str, total: int, write_size: int) -> float:
    block = bytes(write_size)
    stream = await host.new_stream(peer, [SINK])
    start = time.perf_counter()
    async with stream:
        sent = 0
        while sent < total:
            await stream.write(block)
            sent += write_size
        await stream.close_write()
        assert int.from_bytes(await stream.read_exactly(8), "big") == sent
    return total / (time.perf_counter() - start) / 1e6


async def download(host: Host, peer: str, total: int, write_size: int) -> float:
    stream = await host.new_stream(peer, [SOURCE])
    start = time.perf_counter()
    async with stream:
        await stream.write(total.to_bytes(8, "big") + write_size.to_bytes(4, "big"))
        got = 0
        while data := await stream.read():
            got += len(data)
    assert got == total
    return total / (time.perf_counter() - start) / 1e6


async def bench(mib: int, rounds: int, profile: str | None) -> None:
    child = start_peer()
    try:
        host = Host(Identity.generate(), NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",)))
        async with host.run():
            connects = []
            for _ in range(10):
                start = time.perf_counter()
                await host.connect(child.addrs[0])
                connects.append(time.perf_counter() - start)
                await host.disconnect(child.peer_id)
            await host.connect(child.addrs[0])
            print(
                f"connect: median {statistics.median(connects) * 1e3:.1f} ms, "
                f"min {min(connects) * 1e3:.1f} ms over {len(connects)}"
            )
            profiler = cProfile.Profile() if profile else None
            child_process = psutil.Process(child.proc.pid)
            for name, run in (("upload", upload), ("download", download)):
                for write_size in (MIB, 64 << 10):
                    if profiler:
                        profiler.enable()
                    wall, cpu, child_cpu = _clocks(child_process)
                    rates = [
                        await run(host, child.peer_id, mib * MIB, write_size) for _ in range(rounds)
                    ]
                    wall2, cpu2, child_cpu2 = _clocks(child_process)
                    if profiler:
                        profiler.disable()
                    megabytes = rounds * mib * MIB / 1e6
                    ours = (cpu2 - cpu) / megabytes * 1e3
                    theirs = (child_cpu2 - child_cpu) / megabytes * 1e3
                    print(
                        f"{name} {mib} MiB in {write_size >> 10} KiB writes: "
                        f"median {statistics.median(rates):.1f} MB/s "
                        f"({', '.join(f'{r:.1f}' for r in rates)}); CPU per MB: "
                        f"this process {ours:.1f} ms, peer {theirs:.1f} ms "
                        f"(one free core each: ~{1e3 / max(ours, theirs):.0f} MB/s); "
                        f"{(wall2 - wall):.1f} s wall"
                    )
            if profiler and profile:
                profiler.dump_stats(profile)
    finally:
        stop_peer(child.proc)


def _clocks(child: psutil.Process) -> tuple[float, float, float]:
    times = child.cpu_times()
    return time.perf_counter(), time.process_time(), times.user + times.system


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile")
    args = parser.parse_args()
    trio.run(bench, args.mib, args.rounds, args.profile)
