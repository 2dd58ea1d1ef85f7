"""The control-plane part of `blockmesh demo`: four PBFT replicas as real processes on
loopback order a few hundred requests, lose their primary to SIGKILL, elect a new one and go
on committing. Every number printed is read back from the replicas."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from blockmesh.control import event_loop
from blockmesh.control.cluster.client import ClusterClient
from blockmesh.control.cluster.config import (
    ClusterConfig,
    free_base_port,
    init_cluster,
)
from blockmesh.control.cluster.loadgen import run_load
from blockmesh.control.consensus.app import decode_result, encode_get, encode_set
from blockmesh.errors import BlockmeshError

#: A crashed primary is suspected after one second of silence (the default is four).
DEMO_PBFT = {"view_change_timeout": 1.0, "retransmit_interval": 0.5}
WAIT = 60.0
NODES = 4


@contextlib.contextmanager
def _replicas(root: Path, kind: str) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`blockmesh cluster start` per replica; every process is gone when this exits."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for k in range(NODES):
            log = open(root / f"node{k}.log", "wb")  # noqa: SIM115 - the child owns it
            procs[f"node{k}"] = subprocess.Popen(
                [sys.executable, "-m", "blockmesh.cli", "cluster", "start", "--config",
                 str(root / f"node{k}.toml"), "--transport", kind],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _status(config: ClusterConfig) -> list[dict[str, Any]]:
    async def ask() -> list[dict[str, Any]]:
        async with ClusterClient(config) as cc:
            return await cc.status()

    return event_loop.run(ask())


def _wait(config: ClusterConfig, what: str,
          check: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        rows = _status(config)
        if check(rows):
            return rows
        time.sleep(0.3)
    raise BlockmeshError(f"cluster demo: timed out waiting until {what}")


def _show(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if "error" in r:
            click.echo(f"   {r['node']:<6} {r['error']}")
        else:
            click.echo(f"   {r['node']:<6} view {r['view']}  primary {r['primary']:<6} "
                       f"height {r['height']:<5} head {r['head_hash'][:16]}  "
                       f"stable checkpoint {r['stable_checkpoint']:<4} "
                       f"peers {','.join(r['peers']) or '-'}")


def _agree(rows: list[dict[str, Any]]) -> bool:
    live = [r for r in rows if "error" not in r]
    return len(live) >= 3 and len({(r["height"], r["head_hash"]) for r in live}) == 1


def _execute(config: ClusterConfig, operation: bytes, client: int) -> bytes:
    async def run() -> bytes:
        async with ClusterClient(config) as cc:
            return await cc.session(client).execute(operation, WAIT)

    return event_loop.run(run())


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BlockmeshError(f"cluster demo check failed: {what}")
    click.echo(f"  ok  {what}")


def run(work: Path, kind: str = "grpc", requests: int = 300, clients: int = 16) -> None:
    """Start, load, kill the primary, show the new view and more commits, stop."""
    root = work / "pbft-cluster"
    base = free_base_port()
    init_cluster(root, NODES, "127.0.0.1", base, 10, clients=clients, transport=kind,
                 pbft=DEMO_PBFT)
    config = ClusterConfig.load(root / "cluster.toml")
    click.echo(f"\nPBFT cluster: {NODES} replicas (f=1) over {kind} on 127.0.0.1:{base}-"
               f"{base + NODES - 1}, one process each, checkpoint every 10 sequences")
    with _replicas(root, kind) as procs:
        _wait(config, "the replicas are meshed",
              lambda rows: all(len(r.get("peers", ())) == NODES - 1 for r in rows))
        click.echo("1. Meshed over mutual TLS, every connection authenticated by the "
                   "replicas' Ed25519 keys:")
        _show(_status(config))

        result = event_loop.run(run_load(config, requests, 32, clients, timeout=WAIT))
        click.echo(f"2. Ordered {result.committed} requests from {clients} closed-loop clients "
                   f"(each waits for f+1 = 2 matching signed replies): {result.rate:,.0f} req/s, "
                   f"p50 {result.percentile(0.5) * 1000:.1f} ms")
        _check(result.committed == requests, f"{requests} requests committed")
        _check(decode_result(_execute(config, encode_set(b"demo", b"before"), 0)).ok,
               "set demo=before")
        before = _wait(config, "all four agree", lambda rows: _agree(rows) and all(
            "error" not in r for r in rows))
        _show(before)
        primary = before[0]["primary"]

        click.echo(f"3. SIGKILL the primary, {primary} (pid {procs[primary].pid})")
        os.kill(procs[primary].pid, signal.SIGKILL)
        procs[primary].wait(timeout=10)
        began = time.monotonic()
        value = decode_result(_execute(config, encode_get(b"demo"), 1)).value
        click.echo(f"   first request after the crash answered in {time.monotonic() - began:.1f} s")
        _check(value == b"before", "get demo returns what the old primary's view committed")
        more = event_loop.run(run_load(config, requests // 3, 32, clients, timeout=WAIT))
        _check(more.committed == requests // 3,
               f"{more.committed} more requests committed without {primary}")
        after = _wait(config, "the survivors agree in a new view",
                      lambda rows: _agree(rows) and all(r["view"] >= 1 and r["primary"] != primary
                                                        for r in rows if "error" not in r))
        click.echo("4. After the view change:")
        _show(after)
        new_primary = next(r["primary"] for r in after if "error" not in r)
        height_before = before[0]["height"]
        height_after = next(r["height"] for r in after if "error" not in r)
        _check(new_primary != primary and height_after > height_before,
               f"{new_primary} leads view {next(r['view'] for r in after if 'error' not in r)} "
               f"and the log grew from {height_before} to {height_after}")
    click.echo("5. Replicas stopped (SIGTERM).")
