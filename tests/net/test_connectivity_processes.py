"""Staying connected, with real daemons on 127.0.0.1 driven by the CLI: bootstrap at start and
after the peer restarts, filters that keep a peer out both ways, the connection manager trimming
to its low water mark around a protected peer, and peering redialling a dropped peer."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from daemons import Daemon, as_json, one_line_error, run, start_daemon

from blockmesh.data.connectivity import settings

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def init(repo: Path, **sections: dict[str, Any]) -> str:
    """`blockmesh init` plus config settings; returns the repo's peer id."""
    run(repo, "init")

    def change(raw: dict[str, Any]) -> None:
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)

    settings.edit(repo, change)
    return str(as_json(run(repo, "id", "--json"))["ID"])


def start(repo: Path, port: int = 0) -> Daemon:
    return start_daemon(repo, listen=f"/ip4/127.0.0.1/tcp/{port}", log_level="info")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.3)


def peers(daemon: Daemon) -> set[str]:
    return {p["Peer"] for p in as_json(run(daemon.repo, "swarm", "peers", "--json"))["Peers"]}


def status(daemon: Daemon) -> dict[str, Any]:
    return as_json(run(daemon.repo, "status", "--json"))


FAST_BACKOFF = {"backoff_base": 0.2, "backoff_cap": 1.0}


def test_bootstrap_dials_at_start_says_why_it_fails_and_reconnects_after_restart(
        tmp_path, daemons):
    port_a = free_port()
    id_a = init(tmp_path / "a")
    init(tmp_path / "b", bootstrap={"peers": [f"/ip4/127.0.0.1/tcp/{port_a}/p2p/{id_a}"],
                                    **FAST_BACKOFF})
    b = start(tmp_path / "b")
    daemons.append(b)
    # A is not up yet: B has no peer and says which dial fails and how.
    report = wait_for("B to report its failing bootstrap dial", lambda: (
        s := status(b))["groups"].get("bootstrap", {}).get("failing") and s)
    assert report["status"] == "isolated" and report["peers"] == 0
    assert any("bootstrap dial(s) failing; last error:" in r for r in report["reasons"])
    assert report["reachability"] == "loopback"
    assert report["routing_table_size"] == 0  # the DHT runs (routing type auto), table empty

    a = start(tmp_path / "a", port_a)
    daemons.append(a)
    wait_for("B to reach its bootstrap peer A", lambda: id_a in peers(b))
    report = status(b)
    assert report["status"] == "ok" and report["groups"]["bootstrap"]["connected"] == 1

    a.stop()
    wait_for("B to see A gone", lambda: id_a not in peers(b))
    a = start(tmp_path / "a", port_a)
    daemons.append(a)
    wait_for("B to reconnect to the restarted A", lambda: id_a in peers(b))


def test_a_denied_peer_cannot_connect_either_way(tmp_path, daemons):
    id_a, id_b = init(tmp_path / "a"), init(tmp_path / "b")
    a, b = start(tmp_path / "a"), start(tmp_path / "b")
    daemons += [a, b]
    addr_a = as_json(run(a.repo, "id", "--json"))["Addresses"][0]
    addr_b = as_json(run(b.repo, "id", "--json"))["Addresses"][0]

    # By peer id: A refuses to dial B, and closes B's connection right after the handshake.
    out = run(a.repo, "swarm", "filters", "add", f"/p2p/{id_b}").stdout.decode()
    assert out.strip() == f"added /p2p/{id_b}"
    assert "refusing to dial" in one_line_error(run(a.repo, "swarm", "connect", addr_b,
                                                    check=False))
    one_line_error(run(b.repo, "swarm", "connect", addr_a, check=False))
    assert not peers(a) and id_a not in peers(b)

    # By address range: A drops B's connection before the handshake, and dials nothing there.
    run(a.repo, "swarm", "filters", "rm", f"/p2p/{id_b}")
    run(a.repo, "swarm", "filters", "add", "/ip4/127.0.0.1/ipcidr/8")
    assert as_json(run(a.repo, "swarm", "filters", "ls", "--json"))["Strings"] == [
        "/ip4/127.0.0.0/ipcidr/8"]
    assert "refusing to dial" in one_line_error(run(a.repo, "swarm", "connect", addr_b,
                                                    check=False))
    one_line_error(run(b.repo, "swarm", "connect", addr_a, check=False))
    assert not peers(a) and id_a not in peers(b)
    report = status(a)
    assert report["filtered"] >= 4 and any("refused by filters" in r for r in report["reasons"])
    saved = settings.load(a.repo).filters
    assert saved.deny == ["/ip4/127.0.0.0/ipcidr/8"] and saved.allow == []

    # Lifted, B connects; denied again at run time, the live connection is closed.
    run(a.repo, "swarm", "filters", "rm", "--all")
    run(b.repo, "swarm", "connect", addr_a)
    assert id_b in peers(a)
    out = run(a.repo, "swarm", "filters", "add", f"/p2p/{id_b}").stdout.decode()
    assert f"closed {id_b}" in out
    wait_for("B to see A close the connection", lambda: id_a not in peers(b), timeout=10)


def test_connection_manager_trims_to_low_water_keeps_protected_and_peering_redials(
        tmp_path, daemons):
    init(tmp_path / "x", connmgr={"low_water": 2, "high_water": 4, "grace_period": 0.0},
         bootstrap=FAST_BACKOFF)
    x = start(tmp_path / "x")
    daemons.append(x)
    addr_x = as_json(run(x.repo, "id", "--json"))["Addresses"][0]
    helper = subprocess.Popen([sys.executable, str(HERE / "connectivity_peers.py"), "5"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert helper.stdin is not None and helper.stdout is not None
        hosts = json.loads(helper.stdout.readline())
        ids = [h["id"] for h in hosts]
        # host 0 is a peering peer of X: X dials it and protects it.
        out = run(x.repo, "swarm", "peering", "add", hosts[0]["addr"]).stdout.decode()
        assert out.strip() == f"add {ids[0]} success"
        wait_for("X to reach its peering peer", lambda: ids[0] in peers(x))
        helper.stdin.write(f"dial {addr_x} 1 4\n")
        helper.stdin.flush()
        assert helper.stdout.readline().strip() == "dialled 4"
        # Five peers, over the high water mark of 4: trimmed to 2, host 0 among them.
        kept = wait_for("X to trim to its low water mark",
                        lambda: p if len(p := peers(x)) == 2 else None)
        assert ids[0] in kept
        time.sleep(2)
        assert peers(x) == kept  # and it stays there
        report = status(x)
        assert report["connmgr"]["trimmed"] == 3 and ids[0] in report["connmgr"]["protected"]

        # A dropped peering peer is redialled.
        run(x.repo, "swarm", "disconnect", ids[0])
        wait_for("X to redial its peering peer", lambda: ids[0] in peers(x), timeout=15)
        ls = as_json(run(x.repo, "swarm", "peering", "ls", "--json"))["Peers"]
        assert [(p["ID"], p["Connected"]) for p in ls] == [(ids[0], True)]
        assert settings.load(x.repo).peering.peers == [hosts[0]["addr"]]
    finally:
        if helper.stdin is not None:
            helper.stdin.close()
        try:
            helper.wait(15)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait(15)
        if helper.stdout is not None:
            helper.stdout.close()


def test_filters_add_that_cannot_be_saved_leaves_no_live_rule(tmp_path, daemons):
    """A config write that fails (its temporary file's name taken by a directory) takes the
    batch's live rules back: the daemon never enforces rules its config does not hold."""
    init(tmp_path / "a")
    a = start(tmp_path / "a")
    daemons.append(a)
    blocker = a.repo / f".{settings.CONFIG_FILE}.{a.proc.pid}.tmp"
    blocker.mkdir()
    rules = ["/ip4/10.0.0.0/ipcidr/8", "/ip4/192.168.0.0/ipcidr/16"]
    assert run(a.repo, "swarm", "filters", "add", *rules, check=False).returncode != 0
    assert as_json(run(a.repo, "swarm", "filters", "ls", "--json"))["Strings"] == []
    assert settings.load(a.repo).filters.deny == []
    blocker.rmdir()
    run(a.repo, "swarm", "filters", "add", *rules)
    assert as_json(run(a.repo, "swarm", "filters", "ls", "--json"))["Strings"] == rules
    assert settings.load(a.repo).filters.deny == rules
