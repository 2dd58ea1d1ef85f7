"""The main demo: four member daemons keep a file replicated through a crash.

Four real `blockmesh daemon` processes, each both planes: a file added on one member is pinned
with replication 3 through PBFT, the allocated members fetch it over Bitswap, one holder is
SIGKILLed (the primary when it holds the pin, so the view changes too), and the pin moves to
the fourth member, which fetches and serves the content.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path

import click

from blockmesh.control.pinset.config import PinsetConfig
from blockmesh.daemon.local_cluster import LocalMembers
from blockmesh.errors import BlockmeshError

REALLOCATE_AFTER = 5.0
FILE_BYTES = 4 << 20


def _show(members: LocalMembers, node: str, *args: str) -> None:
    click.echo(f"$ BLOCKMESH_PATH={members.repo(node)} blockmesh {' '.join(args)}")
    for line in members.cli(node, *args).stdout.decode().rstrip().splitlines():
        click.echo(f"  {line}")


def run(work: Path) -> None:
    click.echo("== a Byzantine-fault-tolerant pinset: 4 member daemons, both planes each ==")
    members = LocalMembers.create(work / "cluster", pinset=PinsetConfig(
        reallocate_after=REALLOCATE_AFTER, audit_interval=10))
    click.echo(f"cluster init: {members.root} (n=4, f=1, re-allocation after "
               f"{REALLOCATE_AFTER:g} s of silence)")
    with members:
        members.start_all()
        _show(members, "node0", "cluster", "peers", "ls")

        data = os.urandom(FILE_BYTES)
        path = work / "report.bin"
        path.write_bytes(data)
        added = members.json("node0", "cluster", "add", str(path), "--replication", "3",
                             "--name", "report")
        cid, placed = added["cid"], added["allocations"]
        click.echo(f"\nnode0 added {FILE_BYTES >> 20} MiB as {cid}; PBFT allocated it to "
                   f"{', '.join(placed)}")
        start = time.monotonic()
        members.wait("three members pinned", lambda: list(
            members.status("node1", cid).values()).count("pinned") == 3, 60)
        click.echo(f"pinned on three members after {time.monotonic() - start:.1f} s:")
        _show(members, "node1", "cluster", "status", cid)

        primary = members.json("node1", "cluster", "peers", "ls")["primary"]
        victim = primary if primary in placed else placed[0]
        spare = next(m for m in members.ids if m not in placed)
        observer = next(m for m in members.ids if m not in (victim, spare))
        role = " (the primary, so the view changes too)" if victim == primary else ""
        click.echo(f"\nSIGKILL {victim}{role}, which holds the pin")
        members.kill(victim, signal.SIGKILL)
        start = time.monotonic()
        members.wait(f"{spare} pinned", lambda: members.status(observer, cid)[spare] == "pinned",
                     90)
        click.echo(f"{victim} silent for {REALLOCATE_AFTER:g} s on the cluster clock: the pin "
                   f"moved to {spare}, pinned {time.monotonic() - start:.1f} s after the kill")
        _show(members, observer, "cluster", "status", cid)
        _show(members, observer, "cluster", "peers", "ls")

        served = members.cli(spare, "cat", cid).stdout
        if hashlib.sha256(served).digest() != hashlib.sha256(data).digest():
            raise BlockmeshError("demo check failed: the new holder serves other bytes")
        click.echo(f"  ok  {spare} serves all {len(served)} bytes of {cid}, sha256 equal")
        _see(members, observer, spare, cid, data)


def _see(members: LocalMembers, observer: str, holder: str, cid: str, data: bytes) -> None:
    """Where to look: the holder's HTTP gateway (fetched here, and checked), the observer's
    dashboard and `top`. From a terminal the cluster then stays up until Enter, so the printed
    URLs can be opened; otherwise (tests, CI) the demo ends here."""
    gateway = members.json(holder, "id", "--json")["Gateway"]
    parts = gateway.split("/")  # /ip4/HOST/tcp/PORT
    url = f"http://{parts[2]}:{parts[4]}/ipfs/{cid}"
    with urllib.request.urlopen(url, timeout=60) as reply:
        body = reply.read()
    if hashlib.sha256(body).digest() != hashlib.sha256(data).digest():
        raise BlockmeshError("demo check failed: the gateway serves other bytes")
    click.echo(f"\nHTTP gateway of {holder}: {url}\n  ok  {len(body)} bytes, sha256 equal")
    _show(members, observer, "top", "--once")
    dashboard = members.json(observer, "dashboard", "--json")["url"]
    click.echo(f"\nweb dashboard of {observer} (one-time login link): {dashboard}")
    if sys.stdin.isatty():
        click.echo("The cluster keeps running so that you can open them; press Enter to stop it.")
        with contextlib.suppress(EOFError, KeyboardInterrupt):
            input()
