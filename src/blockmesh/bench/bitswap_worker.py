"""One side of a Bitswap benchmark in its own process (so each side has its own core and GIL).

    python -m blockmesh.bench.bitswap_worker serve REPO PATH [--chunk-size N] [--cid-version V]
        imports PATH, prints {"addr", "cid"} as one JSON line, serves until stdin closes
    python -m blockmesh.bench.bitswap_worker fetch REPO ADDR CID
        connects, fetches the whole DAG, prints {"seconds", "cpu_seconds", "blocks", "max_rss"}
        (cpu_seconds: this process's CPU, user and system, over the fetch alone)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import trio

from blockmesh.data.cid import CID
from blockmesh.data.dag.importer import ImportOptions
from blockmesh.data.net import NetConfig
from blockmesh.data.node import Node
from blockmesh.data.store.repo import Repo

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))


def _say(value: dict[str, object]) -> None:
    print(json.dumps(value), flush=True)


async def serve(repo: Path, path: Path, chunk_size: int, cid_version: int) -> None:
    node = Node(Repo.init(repo), net_config=LOOPBACK)
    async with node.run():
        opts = ImportOptions(cid_version=cid_version, chunk_size=chunk_size)
        root = node.add_path(path, opts, recursive=path.is_dir())[-1].cid
        _say({"addr": node.addrs()[0], "cid": str(root), "peer": node.peer_id})
        await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)


async def fetch(repo: Path, addr: str, cid: str, stall: float) -> None:
    node = Node(Repo.init(repo), net_config=LOOPBACK)
    async with node.run():
        await node.connect(addr)
        start, cpu_start = time.perf_counter(), time.process_time()
        blocks = await node.fetch(CID.parse(cid), stall_timeout=stall)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    _say({"seconds": seconds, "cpu_seconds": cpu, "blocks": blocks,
          "max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


def main() -> None:
    parser = argparse.ArgumentParser(prog="bitswap_worker")
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("repo", type=Path)
    s.add_argument("path", type=Path)
    s.add_argument("--chunk-size", type=int, default=262144)
    s.add_argument("--cid-version", type=int, default=0)
    f = sub.add_parser("fetch")
    f.add_argument("repo", type=Path)
    f.add_argument("addr")
    f.add_argument("cid")
    f.add_argument("--stall", type=float, default=60.0)
    args = parser.parse_args()
    if args.mode == "serve":
        trio.run(serve, args.repo, args.path, args.chunk_size, args.cid_version)
    else:
        trio.run(fetch, args.repo, args.addr, args.cid, args.stall)


if __name__ == "__main__":
    main()
