"""Bitswap transfer beside kubo and Helia: every direction between blockmesh and kubo, and the
large file between blockmesh and Helia and Helia -> Helia, two processes each.

blockmesh sides run in `bitswap_worker` child processes; kubo sides are `KuboNode` workers. The
fetcher's time runs from its first want to the last block stored (blockmesh) or around the
kubo call: `Download` by default, which also reads the whole file into memory and writes it out
(for a directory: every file, after walking the HAMT), or with `kubo_pin` a recursive pin, which
fetches the DAG into kubo's blockstore and nothing more, the same work as blockmesh's fetch.
Peak RSS is the fetching process's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from blockmesh.bench.importbench import MiB, make_file
from blockmesh.reference.helia import HeliaNode, helia_unavailable_reason
from blockmesh.reference.kubo import KuboNode, kubo_unavailable_reason

WORKER = [sys.executable, "-m", "blockmesh.bench.bitswap_worker"]


@dataclass(frozen=True)
class TransferRow:
    scenario: str  # "bm->bm", "kubo->bm", ...
    payload: str
    bytes: int
    blocks: int | None
    seconds: float
    max_rss: int | None

    @property
    def mbps(self) -> float:
        return self.bytes / MiB / self.seconds


class _Server:
    """A blockmesh node serving one file or directory from a child process."""

    def __init__(self, workdir: Path, name: str, path: Path, chunk_size: int = 262144) -> None:
        self.proc = subprocess.Popen(
            [*WORKER, "serve", str(workdir / name), str(path), "--chunk-size", str(chunk_size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            self.close()
            raise RuntimeError("blockmesh bench server did not start")
        info = json.loads(line)
        self.addr: str = info["addr"]
        self.cid: str = info["cid"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _bm_fetch(workdir: Path, name: str, addr: str, cid: str) -> dict[str, float]:
    out = subprocess.run([*WORKER, "fetch", str(workdir / name), addr, cid], check=True,
                         capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_rss(pid: int, run: Callable[[], None]) -> int:
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        proc = psutil.Process(pid)
        while not done.is_set():
            try:
                peak = max(peak, proc.memory_info().rss)
            except psutil.Error:
                return
            done.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return peak


def _kubo_fetch(workdir: Path, name: str, addr: str, cid: str,
                pin: bool = False) -> tuple[float, int]:
    with KuboNode(workdir / name) as kubo:
        kubo.connect(addr)
        start = time.perf_counter()
        if pin:
            rss = _peak_rss(kubo.pid, lambda: kubo.pin(cid, timeout=900))
        else:
            rss = _peak_rss(kubo.pid,
                            lambda: kubo.download(cid, workdir / f"{name}.out", timeout=900))
        return time.perf_counter() - start, rss


def _helia_fetch(workdir: Path, name: str, addr: str, cid: str) -> tuple[float, int]:
    with HeliaNode() as helia:
        helia.connect(addr)
        start = time.perf_counter()
        rss = _peak_rss(helia.pid, lambda: helia.fetch(cid, workdir / f"{name}.out", timeout=900))
        return time.perf_counter() - start, rss


def run_helia_transfers(path: Path, nbytes: int, workdir: Path,
                        log: Callable[[str], None]) -> list[TransferRow]:
    """The large file between Helia and blockmesh and Helia -> Helia (no rows when Helia is
    not installed). Each side imports with its own defaults: Helia's DAG has 1 MiB raw leaves,
    blockmesh's 256 KiB dag-pb leaves."""
    if helia_unavailable_reason() is not None:
        return []
    rows: list[TransferRow] = []
    payload = f"{nbytes // MiB} MiB file"
    server = _Server(workdir, f"bm-serve-helia-{len(rows)}", path)
    try:
        log(f"blockmesh -> helia, {payload}")
        seconds, rss = _helia_fetch(workdir, "helia-fetch-bm", server.addr, server.cid)
        rows.append(TransferRow("bm->helia", payload, nbytes, None, seconds, rss))
    finally:
        server.close()
    with HeliaNode() as source:
        cid = source.add(path, timeout=600)
        addr = source.addrs[0]
        log(f"helia -> blockmesh, {payload}")
        result = _bm_fetch(workdir, "bm-fetch-helia", addr, cid)
        rows.append(TransferRow("helia->bm", payload, nbytes, int(result["blocks"]),
                                result["seconds"], int(result["max_rss"])))
        log(f"helia -> helia, {payload}")
        seconds, rss = _helia_fetch(workdir, "helia-fetch-helia", addr, cid)
        rows.append(TransferRow("helia->helia", payload, nbytes, None, seconds, rss))
    return rows


def make_small_files(root: Path, count: int, size: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"{i:05d}").write_bytes(os.urandom(size))
    return root


def run_transfers(size: int, small_blocks: int, workdir: Path, log: Callable[[str], None],
                  kubo_pin: bool = False,
                  helia: bool = True) -> tuple[list[TransferRow], str | None]:
    """Every direction between blockmesh and kubo for the large file and the small files (then
    the Helia rows unless `helia` is False). With `kubo_pin` kubo fetches by pinning; its rows
    then carry the DAG's block count when kubo's import gave the same root CID."""
    reason = kubo_unavailable_reason()
    rows: list[TransferRow] = []
    big = workdir / "big.bin"
    make_file(big, size, seed=7)
    label = f"{size // MiB} MiB file"
    small = make_small_files(workdir / "small", small_blocks, 1024)
    small_label = f"{small_blocks} x 1 KiB files"

    for payload, path, nbytes in ((label, big, size), (small_label, small, small_blocks * 1024)):
        log(f"blockmesh -> blockmesh, {payload}")
        server = _Server(workdir, f"bm-serve-{len(rows)}", path)
        try:
            result = _bm_fetch(workdir, f"bm-fetch-{len(rows)}", server.addr, server.cid)
            blocks = int(result["blocks"])
            rows.append(TransferRow("bm->bm", payload, nbytes, blocks,
                                    result["seconds"], int(result["max_rss"])))
            if reason is None:
                log(f"blockmesh -> kubo, {payload}")
                seconds, rss = _kubo_fetch(workdir, f"kubo-fetch-{len(rows)}", server.addr,
                                           server.cid, kubo_pin)
                rows.append(TransferRow("bm->kubo", payload, nbytes,
                                        blocks if kubo_pin else None, seconds, rss))
        finally:
            server.close()
        if reason is not None:
            continue
        with KuboNode(workdir / f"kubo-serve-{len(rows)}") as source:
            cid = source.add(path, timeout=600)
            addr = source.addrs()[0]
            log(f"kubo -> blockmesh, {payload}")
            result = _bm_fetch(workdir, f"bm-fetch-{len(rows)}", addr, cid)
            rows.append(TransferRow("kubo->bm", payload, nbytes, int(result["blocks"]),
                                    result["seconds"], int(result["max_rss"])))
            log(f"kubo -> kubo, {payload}")
            seconds, rss = _kubo_fetch(workdir, f"kubo-fetch-{len(rows)}", addr, cid, kubo_pin)
            same_dag = kubo_pin and cid == server.cid
            rows.append(TransferRow("kubo->kubo", payload, nbytes,
                                    int(result["blocks"]) if same_dag else None, seconds, rss))
    if helia:
        rows.extend(run_helia_transfers(big, size, workdir, log))
    return rows, reason


def run_block_sizes(workdir: Path, log: Callable[[str], None],
                    sizes: tuple[int, ...] = (1024, 65536, 1048576)) -> list[TransferRow]:
    """The seed's block-size benchmark: one file chunked at each size, blockmesh to blockmesh."""
    rows = []
    for block_size in sizes:
        total = 8 * MiB if block_size == 1024 else 64 * MiB
        path = workdir / f"blocks-{block_size}.bin"
        make_file(path, total, seed=block_size)
        log(f"block size {block_size}")
        server = _Server(workdir, f"bs-serve-{block_size}", path, chunk_size=block_size)
        try:
            result = _bm_fetch(workdir, f"bs-fetch-{block_size}", server.addr, server.cid)
        finally:
            server.close()
        rows.append(TransferRow("bm->bm", f"{block_size} B blocks", total, int(result["blocks"]),
                                result["seconds"], int(result["max_rss"])))
    return rows
