"""mDNS between daemons in network namespaces on one bridge, where multicast stays in the test.

Members 0 and 1 turn mDNS on in their config; they must find each other and one must fetch a
file added on the other with no `swarm connect`. Member 2 keeps the default config (mDNS off):
an iptables counter on its OUTPUT chain for every IPv4 multicast destination must stay at 0
while the same counter on member 0 shows the rule does count what mDNS sends. Needs root and
`ip netns`; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from daemons import Daemon, run, start_daemon
from netns import NetnsLab, namespaces, unavailable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

FIND_TIMEOUT = 30  # kubo queries at 4 s and then less often; ours every `interval`
MDNS_ON = (0, 1)
MDNS_OFF = 2


@pytest.fixture
def lab() -> Iterator[NetnsLab]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    network = NetnsLab(3)
    try:
        yield network.open()
    finally:
        network.close()
        assert namespaces(network.prefix) == [], "namespaces left behind"


def cli(lab: NetnsLab, k: int, repo: Path, *args: str) -> bytes:
    return run(repo, *args, prefix=lab.exec_prefix(k)).stdout


def start(lab: NetnsLab, k: int, repo: Path) -> Daemon:
    return start_daemon(repo, listen=f"/ip4/{lab.address(k)}/tcp/4001",
                        prefix=lab.exec_prefix(k))


def multicast_sent(lab: NetnsLab, k: int) -> int:
    """Packets member k has sent to any IPv4 multicast address since the rule was added."""
    out = subprocess.run([*lab.exec_prefix(k), "iptables", "-L", "OUTPUT", "-v", "-n", "-x"],
                         capture_output=True, text=True, timeout=15, check=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()
               if "224.0.0.0/4" in line and line.split()[0].isdigit())


def peers(lab: NetnsLab, k: int, repo: Path) -> set[str]:
    listed = json.loads(cli(lab, k, repo, "swarm", "peers", "--json"))["Peers"]
    return {p["Peer"] for p in listed}


def test_mdns_finds_peers_on_the_link_and_is_silent_when_off(lab, tmp_path):
    repos = [tmp_path / f"m{k}" for k in range(3)]
    ids = []
    for k, repo in enumerate(repos):
        cli(lab, k, repo, "init")
        ids.append(json.loads(cli(lab, k, repo, "id", "--json"))["ID"])
        subprocess.run([*lab.exec_prefix(k), "iptables", "-A", "OUTPUT", "-d", "224.0.0.0/4",
                        "-j", "ACCEPT"], check=True, timeout=15)
    for k in MDNS_ON:
        config_file = repos[k] / "config.toml"
        config = tomllib.loads(config_file.read_text())
        assert config["discovery"]["mdns"] is False  # the default
        config["discovery"].update(mdns=True, interval=2)
        config_file.write_text(tomli_w.dumps(config))

    daemons = []
    try:
        for k in range(3):
            daemons.append(start(lab, k, repos[k]))
        deadline = time.monotonic() + FIND_TIMEOUT
        while not (ids[1] in peers(lab, 0, repos[0]) and ids[0] in peers(lab, 1, repos[1])):
            assert time.monotonic() < deadline, "the mDNS members never found each other"
            time.sleep(0.5)

        data = os.urandom(300_000)
        (tmp_path / "file.bin").write_bytes(data)
        cid = cli(lab, 0, repos[0], "add", "-Q", str(tmp_path / "file.bin")).decode().strip()
        assert cli(lab, 1, repos[1], "cat", cid) == data

        # Member 2 heard the others' multicast on the bridge (nothing stops it reaching
        # eth0) but opened no mDNS socket: it sent nothing and dialled no one.
        time.sleep(2)  # one more query interval of the others
        assert peers(lab, MDNS_OFF, repos[MDNS_OFF]) == set()
        assert ids[MDNS_OFF] not in peers(lab, 0, repos[0])
        assert multicast_sent(lab, MDNS_OFF) == 0
        assert multicast_sent(lab, 0) > 0 and multicast_sent(lab, 1) > 0
    finally:
        for daemon in daemons:
            daemon.stop()


def iptables(lab: NetnsLab, k: int, *rule: str) -> None:
    subprocess.run([*lab.exec_prefix(k), "iptables", *rule], check=True, timeout=15)


@pytest.mark.kubo
def test_kubo_and_blockmesh_find_each_other_over_mdns_both_ways(lab, tmp_path):
    """Each direction alone: first our dials to kubo are refused, so only kubo can have
    connected, having understood our answer; then kubo's dials to us are refused, so only we
    can have connected, having understood kubo's."""
    from blockmesh.reference.kubo import KuboNode, kubo_unavailable_reason

    reason = kubo_unavailable_reason()
    if reason is not None:
        pytest.skip(f"kubo: {reason}")
    ours, theirs = 0, 1
    kubo_ip = lab.address(theirs)
    to_kubo = ["OUTPUT", "-p", "tcp", "-d", kubo_ip, "--dport", "4001", "--syn", "-j", "REJECT"]
    from_kubo = ["INPUT", "-p", "tcp", "-s", kubo_ip, "--dport", "4001", "--syn", "-j", "REJECT"]
    repo = tmp_path / "bm"
    cli(lab, ours, repo, "init")
    our_id = json.loads(cli(lab, ours, repo, "id", "--json"))["ID"]
    config = tomllib.loads((repo / "config.toml").read_text())
    config["discovery"].update(mdns=True, interval=2)
    (repo / "config.toml").write_text(tomli_w.dumps(config))
    iptables(lab, ours, "-A", *to_kubo)

    kubo = KuboNode(tmp_path / "kubo", port=4001, host=kubo_ip, mdns=True,
                    prefix=lab.exec_prefix(theirs))
    daemon = None
    try:
        daemon = start(lab, ours, repo)
        deadline = time.monotonic() + FIND_TIMEOUT
        while not any(p.endswith(f"/p2p/{our_id}") for p in kubo.peers()):
            assert time.monotonic() < deadline, "kubo never connected to us over mDNS"
            time.sleep(0.5)

        cli(lab, ours, repo, "swarm", "disconnect", kubo.peer_id)
        iptables(lab, ours, "-D", *to_kubo)
        iptables(lab, ours, "-A", *from_kubo)
        deadline = time.monotonic() + FIND_TIMEOUT
        while kubo.peer_id not in peers(lab, ours, repo):
            assert time.monotonic() < deadline, "we never connected to kubo over mDNS"
            time.sleep(0.5)

        data = os.urandom(200_000)
        (tmp_path / "k.bin").write_bytes(data)
        cid = kubo.add(tmp_path / "k.bin")
        assert cli(lab, ours, repo, "cat", cid) == data
    finally:
        if daemon is not None:
            daemon.stop()
        kubo.close()
