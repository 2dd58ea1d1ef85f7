"""Import throughput beside kubo, and blockstore operations per second.

Both sides hash the same files in the same run: blockmesh in this process (timed around the
import call), kubo in its worker process (timed around the AddFile C call, so no IPC is
counted). The ratio column is blockmesh / kubo; above 1.0 blockmesh is faster.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from blockmesh.data.cid import CID
from blockmesh.data.dag.importer import ImportOptions, import_path
from blockmesh.data.store.blockstore import BatchedPut
from blockmesh.data.store.config import Config, DatastoreConfig
from blockmesh.data.store.flatfs import FlatFSBlockstore
from blockmesh.data.store.lmdbstore import LMDBBlockstore
from blockmesh.data.store.repo import Repo
from blockmesh.reference.kubo import KuboNode, kubo_unavailable_reason

MiB = 1024 * 1024
DEFAULT_SIZES = (MiB, 100 * MiB, 1024 * MiB)


@dataclass(frozen=True)
class ImportRow:
    size: int
    mode: str  # "only-hash" or "store"
    blockmesh_mbps: float
    kubo_mbps: float | None

    @property
    def ratio(self) -> float | None:
        return None if not self.kubo_mbps else self.blockmesh_mbps / self.kubo_mbps


@dataclass(frozen=True)
class StoreRow:
    engine: str
    block_size: int
    put_ops: float
    get_ops: float


def make_file(path: Path, size: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with open(path, "wb") as out:
        left = size
        while left:
            step = min(left, 16 * MiB)
            out.write(rng.randbytes(step))
            left -= step


def _median_seconds(run: Callable[[], float], repeat: int) -> float:
    return statistics.median(run() for _ in range(repeat))


def _ours_only_hash(path: Path) -> float:
    start = time.perf_counter()
    list(import_path(path, ImportOptions()))
    return time.perf_counter() - start


def _ours_store(path: Path, workdir: Path) -> float:
    with (tempfile.TemporaryDirectory(dir=workdir) as tmp,
          Repo.init(Path(tmp) / "repo", Config(datastore=DatastoreConfig())) as repo):
        start = time.perf_counter()
        sink = BatchedPut(repo.blocks)
        added = list(import_path(path, ImportOptions(), sink))
        sink.flush()
        repo.pins.add(added[-1].cid)
        return time.perf_counter() - start


def run_import(sizes: tuple[int, ...], workdir: Path, repeat: int,
               log: Callable[[str], None]) -> tuple[list[ImportRow], str | None]:
    reason = kubo_unavailable_reason()
    rows: list[ImportRow] = []
    kubo = KuboNode(workdir / "kubo-repo") if reason is None else None
    try:
        for size in sizes:
            path = workdir / f"input-{size}.bin"
            if not path.exists() or path.stat().st_size != size:
                log(f"writing {size // MiB} MiB test file")
                make_file(path, size)
            if kubo is not None and size == sizes[0]:
                kubo.add_timed(path, only_hash=True, timeout=600)  # its first add warms up
            for mode in ("only-hash", "store"):
                log(f"{size // MiB} MiB {mode}")
                if mode == "only-hash":
                    ours = _median_seconds(lambda p=path: _ours_only_hash(p), repeat)
                else:
                    ours = _median_seconds(lambda p=path: _ours_store(p, workdir), repeat)
                theirs = None
                if kubo is not None:
                    only = mode == "only-hash"
                    theirs = _median_seconds(
                        lambda p=path, o=only: kubo.add_timed(p, only_hash=o, timeout=600).seconds,
                        repeat)
                rows.append(ImportRow(size, mode, size / MiB / ours,
                                      None if theirs is None else size / MiB / theirs))
    finally:
        if kubo is not None:
            kubo.close()
    return rows, reason


def run_store(workdir: Path, count_small: int = 20000, count_large: int = 400) -> list[StoreRow]:
    rows = []
    for block_size, count in ((1024, count_small), (256 * 1024, count_large)):
        blocks = [os.urandom(block_size) for _ in range(count)]
        cids = [CID.of(b) for b in blocks]
        for name, factory in (("lmdb", LMDBBlockstore), ("flatfs", FlatFSBlockstore)):
            with tempfile.TemporaryDirectory(dir=workdir) as tmp:
                store = factory(Path(tmp))
                start = time.perf_counter()
                for cid, data in zip(cids, blocks, strict=True):
                    store.put(cid, data, verify=False)
                put_s = time.perf_counter() - start
                start = time.perf_counter()
                for cid in cids:
                    store.get(cid)
                get_s = time.perf_counter() - start
                store.close()
            rows.append(StoreRow(name, block_size, count / put_s, count / get_s))
    return rows
