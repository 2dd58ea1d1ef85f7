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
    # Exclusions end after 10 s: a member slow enough under load to fail audits is back in
    # time for the steps below to find enough eligible members.
    cluster = LocalMembers.create(tmp_path / "c", pinset=PinsetConfig(
        reallocate_after=4, audit_interval=1, exclusion_period=10))
    with cluster:
        cluster.start_all()
        yield cluster


def agreed(members: LocalMembers, cid: str, nodes: list[str]) -> dict[str, str] | None:
    """The members' states for `cid` if every one of `nodes` reports the same, else None: each
    member executes the log on its own, and one that lags a commit behind answers from before
    it, so a test compares members only once they have caught up (bounded by its wait)."""
    seen = [members.status(node, cid) for node in nodes]
    return seen[0] if all(s == seen[0] for s in seen) else None


def settled(states: dict[str, str] | None) -> list[str]:
    """The holders if exactly three members are allocated and all say pinned, else []."""
    if states is None or sorted(states.values()) != ["pinned"] * 3 + ["remote"]:
        return []
    return sorted(m for m, state in states.items() if state == "pinned")


def audit_failures(members: LocalMembers, target: str, cid: str) -> set[str]:
    """The members whose log says they failed an audit of `target` for `cid`."""
    return {node for node in members.ids
            if f"{node}: audit of {target} for {cid}: FAILED" in
            (members.root / f"{node}.log").read_text(errors="replace")}


# Every wait is on a condition with a bound sized for a loaded 2-core machine (the whole test
# takes about a minute unloaded); their sum exceeds the suite's 300 s default.
@pytest.mark.timeout(900)
def test_pin_replication_reallocation_and_audits(members: LocalMembers, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    (tmp_path / "file.bin").write_bytes(data)
    added = members.json("node0", "cluster", "add", str(tmp_path / "file.bin"),
                         "--replication", "3", "--name", "f")
    cid = added["cid"]
    assert len(added["allocations"]) == 3
    # Every member executed the same log to the same three pinned holders.
    members.wait("every member agrees three members pinned",
                 lambda: bool(settled(agreed(members, cid, members.ids))), 120)
    # Where the pin is now: a member slow enough under load to fail audits is replaced even
    # here, and the steps below need the live holders, not the first choice.
    placed = members.json("node1", "cluster", "alloc", cid)["allocations"]
    assert len(placed) == 3

    # A holder dies (the primary when it holds the pin, so the view changes too).
    victim = "node0" if "node0" in placed else placed[0]
    spare = next(m for m in members.ids if m not in placed)
    members.kill(victim)
    observer = next(m for m in members.ids if m not in (victim, spare))
    members.wait("the spare member pinned the content",
                 lambda: members.status(observer, cid)[spare] == "pinned", 180)
    assert members.cli(spare, "cat", cid).stdout == data

    # The victim returns: it catches up and the pin is trimmed back to three holders.
    members.start(victim)
    members.wait("allocation trimmed to three",
                 lambda: len(members.json(victim, "cluster", "alloc", cid)["allocations"]) == 3
                 and list(members.status(victim, cid).values()).count("pinned") == 3, 180)
    # The liar must be a holder in every member's log: one picked from a lagging member's
    # allocation could be the one being trimmed, and its deletion would prove nothing.
    holders: list[str] = []

    def trimmed_everywhere() -> bool:
        holders[:] = settled(agreed(members, cid, members.ids))
        return bool(holders)

    members.wait("every member agrees on the trimmed allocation", trimmed_everywhere, 120)

    # A holder deletes the root block behind its daemon's back: audits catch it.
    liar = holders[0]
    with Repo.open(members.repo(liar)) as repo:
        repo.blocks.delete(CID.parse(cid))
    members.wait("the liar excluded and replaced",
                 lambda: members.status(observer, cid)[liar] in ("pin_error", "remote")
                 and list(members.status(observer, cid).values()).count("pinned") == 3, 180)
    status = members.json(observer, "cluster", "status", cid)
    entry = next(m for m in status["members"] if m["node"] == liar)
    assert entry["status"] == "remote" or "failed audits" in entry["error"]
    # f+1 = 2 members saw it fail, which is what excludes a member.
    assert len(audit_failures(members, liar, cid) - {liar}) >= 2


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
