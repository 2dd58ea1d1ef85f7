"""Four member daemons (both planes in each process) on loopback: the replicated pinset at work.

A file added on one member is pinned with replication 3 through PBFT and fetched by the
allocated members over Bitswap; a killed holder's pin moves to the fourth member and comes back
trimmed when it returns; a member that drops a pinned block behind its daemon's back is caught
by the other members' audits and replaced.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from blockmesh.control.pinset.config import PinsetConfig
from blockmesh.daemon.local_cluster import LocalMembers
from blockmesh.data.cid import CID
from blockmesh.data.store.repo import Repo

pytestmark = pytest.mark.slow


@pytest.fixture
def members(tmp_path: Path) -> Iterator[LocalMembers]:
    cluster = LocalMembers.create(tmp_path / "c", pinset=PinsetConfig(reallocate_after=4,
                                                                      audit_interval=1))
    with cluster:
        cluster.start_all()
        yield cluster


def test_pin_replication_reallocation_and_audits(members: LocalMembers, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    (tmp_path / "file.bin").write_bytes(data)
    added = members.json("node0", "cluster", "add", str(tmp_path / "file.bin"),
                         "--replication", "3", "--name", "f")
    cid = added["cid"]
    placed = added["allocations"]
    assert len(placed) == 3
    members.wait("three members pinned", lambda: list(members.status("node1", cid).values())
                 .count("pinned") == 3, 60)
    assert members.status("node2", cid) == members.status("node3", cid)

    # A holder dies (the primary when it holds the pin, so the view changes too).
    victim = "node0" if "node0" in placed else placed[0]
    spare = next(m for m in members.ids if m not in placed)
    members.kill(victim)
    observer = next(m for m in members.ids if m not in (victim, spare))
    members.wait("the spare member pinned the content",
                 lambda: members.status(observer, cid)[spare] == "pinned", 90)
    assert members.cli(spare, "cat", cid).stdout == data

    # The victim returns: it catches up and the pin is trimmed back to three holders.
    members.start(victim)
    members.wait("allocation trimmed to three",
                 lambda: len(members.json(victim, "cluster", "alloc", cid)["allocations"]) == 3
                 and list(members.status(victim, cid).values()).count("pinned") == 3, 90)

    # A holder deletes the root block behind its daemon's back: audits catch it.
    liar = members.json(observer, "cluster", "alloc", cid)["allocations"][0]
    with Repo.open(members.repo(liar)) as repo:
        repo.blocks.delete(CID.parse(cid))
    members.wait("the liar excluded and replaced",
                 lambda: members.status(observer, cid)[liar] in ("pin_error", "remote")
                 and list(members.status(observer, cid).values()).count("pinned") == 3, 90)
    status = members.json(observer, "cluster", "status", cid)
    entry = next(m for m in status["members"] if m["node"] == liar)
    assert entry["status"] == "remote" or "failed audits" in entry["error"]


def test_pin_commands_and_refusals(members: LocalMembers) -> None:
    cid = str(CID.of(b"nobody has this block"))
    pinned = members.json("node1", "cluster", "pin", "add", cid, "--replication-min", "1",
                          "--replication-max", "2", "--name", "absent")
    assert len(pinned["allocations"]) == 2
    listed = members.json("node2", "cluster", "pin", "ls", "--verified")
    assert [p["cid"] for p in listed] == [cid] and listed[0]["name"] == "absent"
    bad = members.cli("node1", "cluster", "pin", "add", cid, "--replication-min", "5",
                      check=False)
    assert bad.returncode == 1 and bad.stderr.decode().count("\n") == 1
    assert "more than the 4 members" in bad.stderr.decode()
    members.json("node3", "cluster", "pin", "rm", cid)
    assert members.json("node0", "cluster", "pin", "ls") == []
    gone = members.cli("node0", "cluster", "status", cid, check=False)
    assert gone.returncode == 1 and "not pinned" in gone.stderr.decode()
    peers = members.json("node0", "cluster", "peers", "ls")
    assert [m["node"] for m in peers["members"]] == members.ids
    assert all(m["connected"] for m in peers["members"])


def test_pinning_through_a_primary_crash(members: LocalMembers, tmp_path: Path) -> None:
    """The primary dies as a file is added: the pin is ordered in the next view and reaches
    three live holders."""
    primary = members.json("node1", "cluster", "peers", "ls")["primary"]
    adder = next(m for m in members.ids if m != primary)
    (tmp_path / "f.bin").write_bytes(os.urandom(1 << 20))
    members.kill(primary, signal.SIGKILL)
    cid = members.json(adder, "cluster", "add", str(tmp_path / "f.bin"), "--replication",
                       "3")["cid"]
    members.wait("three live members pinned", lambda: sorted(
        m for m, state in members.status(adder, cid).items() if state == "pinned")
        == sorted(m for m in members.ids if m != primary), 120)
    assert members.json(adder, "cluster", "peers", "ls")["view"] >= 1
