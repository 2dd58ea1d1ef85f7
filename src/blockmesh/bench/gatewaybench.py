"""The HTTP gateway measured beside Bitswap, in one run (`blockmesh bench gateway`).

Two daemons on 127.0.0.1: A holds the content, B is connected to A and starts without it.

- **Large file (MB/s)**: a random file of `size_mib` MiB fetched whole over HTTP from A's
  gateway (local content), from B's gateway (which pulls every block from A over Bitswap while
  it streams), and made local on B by its `fetch` API route (Bitswap alone, nothing sent on).
  Each B fetch uses its own file, so every one is cold; with `repeat` > 1 the two B rows
  alternate (gateway first, then fetch first), each row is the median, and the gateway's
  ratio to the fetch is the median of the per-pair ratios. B's anonymous resident memory is
  sampled while each B row runs; its peak is reported, and so are B's CPU seconds.
- **1 KiB blocks (requests/s, p50/p99)**: `?format=raw` GETs over `clients` keep-alive
  connections from A's gateway (local) and from B's gateway (each block over Bitswap, cold),
  then the same number of blocks made local on B one `fetch` call at a time (Bitswap plus one
  control-API round trip each; sequential, so its rate is 1/latency).

The HTTP client runs in this process (http.client in threads), so the small-block rates
include its cost; the numbers are for comparing rows, not for comparing with kubo.
"""

from __future__ import annotations

import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from blockmesh.daemon.client import DaemonClient, find_daemon
from blockmesh.daemon.process import DaemonProcess, start_daemon
from blockmesh.data.gateway.address import parse_listen

MiB = 1 << 20
CALL_TIMEOUT = 600
READ = 1 << 20


@dataclass
class LargeRow:
    path: str
    mib: int
    seconds: float
    rss_peak_mib: float | None = None  # the serving daemon's anonymous RSS during the row
    cpu_seconds: float | None = None  # the serving daemon's user + system time in the row

    @property
    def mbps(self) -> float:
        return self.mib * MiB / self.seconds / 1e6


@dataclass
class SmallRow:
    path: str
    requests: int
    clients: int
    per_second: float
    p50_ms: float
    p99_ms: float


@dataclass
class GatewayResult:
    large: list[LargeRow]
    small: list[SmallRow]
    ratio: float  # gateway over Bitswap / Bitswap fetch, MB/s, median of the pairs
    rss_rest_mib: float  # B's anonymous resident memory before its first large-file row

    def as_dict(self) -> dict[str, object]:
        return {"large": [{**asdict(r), "mbps": r.mbps} for r in self.large],
                "small": [asdict(r) for r in self.small], "gateway_to_fetch": self.ratio,
                "rss_rest_mib": self.rss_rest_mib}


@dataclass
class _Daemon:
    repo: Path
    process: DaemonProcess
    client: DaemonClient
    gateway_port: int


def _cli(repo: Path, *args: str) -> str:
    env = dict(os.environ, BLOCKMESH_PATH=str(repo))
    done = subprocess.run([sys.executable, "-m", "blockmesh.cli", *args], env=env,
                          capture_output=True, timeout=CALL_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"blockmesh {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout.decode()


@contextmanager
def _daemon(repo: Path) -> Iterator[_Daemon]:
    _cli(repo, "init")
    process = start_daemon(repo, ["--listen", "/ip4/127.0.0.1/tcp/0",
                                  "--gateway", "/ip4/127.0.0.1/tcp/0"])
    try:
        client = find_daemon(repo)
        if client is None:
            raise RuntimeError(f"daemon on {repo} wrote no API file")
        yield _Daemon(repo, process, client, _gateway_port(process.banner))
    finally:
        process.stop()


def _gateway_port(banner: list[str]) -> int:
    for line in banner:
        if line.startswith("Gateway server listening on "):
            return parse_listen(line.rsplit(" ", 1)[1])[1]
    raise RuntimeError("daemon started without its gateway")


def _random_file(path: Path, mib: int) -> Path:
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MiB))
    return path


def _get_all(port: int, target: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CALL_TIMEOUT)
    try:
        conn.request("GET", target)
        reply = conn.getresponse()
        if reply.status != 200:
            raise RuntimeError(f"GET {target}: {reply.status} {reply.read(200)!r}")
        # into one reused buffer, straight from the socket: the client's own copies would
        # take CPU from the two daemons on the same cores
        buffer = memoryview(bytearray(READ))
        total = 0
        while count := reply.readinto(buffer):
            total += count
        return total
    finally:
        conn.close()


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _rss_mib(pid: int) -> float:
    """Anonymous resident memory (buffers, Python objects): the LMDB repo's mapped pages
    would otherwise count every block the daemon wrote or read."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _watched(pid: int, action: Callable[[], object]) -> tuple[float, float, float]:
    """(seconds `action` took, peak resident MiB of process `pid` meanwhile, sampled every
    20 ms by a thread, and the CPU seconds `pid` used meanwhile)."""
    cpu = _cpu_seconds(pid)
    peak = [_rss_mib(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        seconds = _timed(action)
    finally:
        done.set()
        sampler.join(5)
    return seconds, max(peak[0], _rss_mib(pid)), _cpu_seconds(pid) - cpu


def _blocks(work: Path, repo: Path, name: str, count: int) -> list[str]:
    """`count` random 1 KiB files added as one directory (CIDv1: each file is one raw
    block); their CIDs."""
    folder = work / name
    folder.mkdir()
    for i in range(count):
        (folder / f"{i:06d}").write_bytes(os.urandom(1024))
    lines = _cli(repo, "add", "-r", "--cid-version", "1", str(folder)).splitlines()
    return [line.split()[1] for line in lines if line.startswith("added ")][:count]


def _http_load(port: int, cids: list[str], clients: int) -> tuple[float, list[float]]:
    """(seconds for all, per-request latencies) of raw-block GETs over `clients` connections."""
    latencies: list[float] = []
    lock = threading.Lock()
    shares = [cids[i::clients] for i in range(clients)]
    errors: list[str] = []

    def worker(share: list[str]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CALL_TIMEOUT)
        mine = []
        try:
            for cid in share:
                start = time.perf_counter()
                conn.request("GET", f"/ipfs/{cid}?format=raw")
                reply = conn.getresponse()
                body = reply.read()
                mine.append(time.perf_counter() - start)
                if reply.status != 200 or len(body) != 1024:
                    errors.append(f"{cid}: {reply.status}")
                    return
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CALL_TIMEOUT)
    if errors:
        raise RuntimeError(f"gateway answered {errors[0]}")
    return time.perf_counter() - start, latencies


def _small_row(path: str, seconds: float, latencies: list[float], clients: int) -> SmallRow:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return SmallRow(path, len(ordered), clients, len(ordered) / seconds,
                    statistics.median(ordered) * 1e3, p99 * 1e3)


def run_bench(work: Path, size_mib: int, small: int, clients: int,
              log: Callable[[str], None], repeat: int = 1) -> GatewayResult:
    with _daemon(work / "a") as a, _daemon(work / "b") as b:
        ident = a.client.call("id")
        b.client.call("swarm/connect", addr=ident["Addresses"][0])
        log(f"adding {1 + 2 * repeat} {size_mib} MiB files and {3 * small} 1 KiB blocks to A")
        files = []
        for i in range(1 + 2 * repeat):
            path = _random_file(work / f"{i}.bin", size_mib)
            files.append(_cli(a.repo, "add", "-Q", "--cid-version", "1", str(path)).strip())
            path.unlink()
        local_blocks, gateway_blocks, fetch_blocks = (
            _blocks(work, a.repo, name, small) for name in ("s-local", "s-gateway", "s-fetch"))
        size = size_mib * MiB
        large = []
        log("large file: A's gateway (local)")
        _get_all(a.gateway_port, f"/ipfs/{files[0]}")  # warm the page cache once
        local = [_timed(lambda: _get_all(a.gateway_port, f"/ipfs/{files[0]}")) for _ in range(3)]
        large.append(LargeRow("gateway, local repo", size_mib, statistics.median(local)))
        gateway: list[tuple[float, float, float]] = []
        fetch: list[tuple[float, float, float]] = []
        rest = _rss_mib(b.process.pid)
        for i in range(repeat):
            via_gateway, via_fetch = files[1 + 2 * i], files[2 + 2 * i]

            def over_gateway(cid: str = via_gateway) -> None:
                got = _get_all(b.gateway_port, f"/ipfs/{cid}")
                if got != size:
                    raise RuntimeError(f"B's gateway sent {got} bytes of {size}")

            def over_fetch(cid: str = via_fetch) -> None:
                b.client.fetch(cid)

            order = [(gateway, over_gateway), (fetch, over_fetch)]
            for trials, action in order if i % 2 == 0 else reversed(order):
                log(f"large file {i + 1}/{repeat}: B's "
                    f"{'gateway (over Bitswap from A)' if trials is gateway else 'fetch route'}")
                trials.append(_watched(b.process.pid, action))
        ratio = statistics.median(f[0] / g[0] for g, f in zip(gateway, fetch, strict=True))
        for label, trials in (("gateway, fetched over Bitswap", gateway),
                              ("Bitswap fetch (API)", fetch)):
            large.append(LargeRow(label, size_mib, statistics.median(t[0] for t in trials),
                                  max(t[1] for t in trials),
                                  statistics.median(t[2] for t in trials)))
        rows = []
        log(f"{small} raw 1 KiB blocks from A's gateway")
        rows.append(_small_row("gateway ?format=raw, local repo",
                               *_http_load(a.gateway_port, local_blocks, clients), clients))
        log(f"{small} raw 1 KiB blocks from B's gateway (over Bitswap)")
        rows.append(_small_row("gateway ?format=raw, over Bitswap",
                               *_http_load(b.gateway_port, gateway_blocks, clients), clients))
        log(f"{small} 1 KiB blocks by B's fetch route, one at a time")
        latencies = [_timed(lambda cid=cid: b.client.fetch(cid)) for cid in fetch_blocks]
        rows.append(_small_row("Bitswap fetch (API), sequential", sum(latencies), latencies, 1))
        return GatewayResult(large, rows, ratio, rest)
