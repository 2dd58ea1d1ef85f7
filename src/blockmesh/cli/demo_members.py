"""The main demo: four member daemons keep a file replicated through a crash.

Four real `blockmesh daemon` processes, each both planes: a file added on one member is pinned
with replication 3 through PBFT, the allocated members fetch it over Bitswap, one holder is
SIGKILLed (the primary when it holds the pin, so the view changes too), and the pin moves to
the fourth member, which fetches and serves the content.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
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
