"""Bandwidth limits and counters between real daemons on 127.0.0.1.

Daemon A limits what it sends to peer B alone (a per-peer override in its config) to 1 MiB/s;
B and then C fetch the same 4 MiB, which A added. B's transfer must run at the limit (within 10 %:
the limiter's correctness, and 1 MiB/s is far below what loopback does on a loaded machine),
C's must not be held to it, and both ends' counters must agree on the bytes that moved.
"""

from __future__ import annotations

import os
import time
import tomllib
from collections.abc import Iterator

import pytest
import tomli_w
from daemons import Daemon, as_json, run, start_daemon

from blockmesh.daemon.client import find_daemon

pytestmark = pytest.mark.slow

LIMIT = 1 << 20
SIZE = 4 << 20
BITSWAP = "/ipfs/bitswap/1.2.0"


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon, Daemon]]:
    tmp_path = tmp_path_factory.mktemp("bw")
    for name in "abc":
        run(tmp_path / name, "init")
    b_id = as_json(run(tmp_path / "b", "id", "--json"))["ID"]
    for name in "abc":
        config_file = tmp_path / name / "config.toml"
        config = tomllib.loads(config_file.read_text())
        # No DHT: its background traffic would keep the counters moving, and it would
        # connect B and C to each other.
        config["routing"]["type"] = "none"
        if name == "a":
            config["bandwidth"]["peers"] = {b_id: {"rate_out": LIMIT}}
        config_file.write_text(tomli_w.dumps(config))
    started: list[Daemon] = []
    try:
        for name in "abc":
            started.append(start_daemon(tmp_path / name))
        yield started[0], started[1], started[2]
    finally:
        for daemon in started:
            daemon.stop()


def fetch_seconds(daemon: Daemon, cid: str) -> float:
    client = find_daemon(daemon.repo)
    assert client is not None
    start = time.monotonic()
    assert client.fetch(cid) > 0
    return time.monotonic() - start


def bw(daemon: Daemon, *args: str) -> dict:
    return as_json(run(daemon.repo, "stats", "bw", "--json", *args))


def test_a_per_peer_limit_holds_for_that_peer_only_and_counters_agree(daemons, tmp_path):
    a, b, c = daemons
    a_ident = as_json(run(a.repo, "id", "--json"))
    b_id = as_json(run(b.repo, "id", "--json"))["ID"]
    c_id = as_json(run(c.repo, "id", "--json"))["ID"]
    (tmp_path / "file.bin").write_bytes(os.urandom(SIZE))
    cid = run(a.repo, "add", "-Q", str(tmp_path / "file.bin")).stdout.decode().strip()
    for other in (b, c):
        run(other.repo, "swarm", "connect", a_ident["Addresses"][0])

    # B first: until it has the file only A holds it.
    limited = fetch_seconds(b, cid)
    unlimited = fetch_seconds(c, cid)
    rate = SIZE / limited
    assert 0.9 * LIMIT <= rate <= 1.1 * LIMIT, f"{rate / LIMIT:.3f} of the limit"
    assert SIZE / unlimited > 1.5 * LIMIT, "C was held to B's limit"

    # Counters: what A sent each peer is what that peer read from A.
    for peer_daemon, peer_id in ((b, b_id), (c, c_id)):
        deadline = time.monotonic() + 10
        while True:
            sent = bw(a, "--peer", peer_id)["TotalOut"]
            received = bw(peer_daemon, "--peer", a_ident["ID"])["TotalIn"]
            if sent == received or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sent == received
        assert SIZE <= sent <= SIZE * 1.05  # all of the file and its framing
    total = bw(a)
    assert total["TotalOut"] >= 2 * SIZE
    assert bw(a, "--proto", BITSWAP)["TotalOut"] >= 2 * SIZE
    assert bw(a, "--proto", "/no/such/1.0.0") == {
        "TotalIn": 0, "TotalOut": 0, "RateIn": 0.0, "RateOut": 0.0}
    text = run(a.repo, "stats", "bw").stdout.decode().splitlines()
    assert text[0] == "Bandwidth" and text[2].startswith("TotalOut: 8.")


def test_stats_bw_refuses_a_peer_and_a_protocol_together(daemons):
    a, _, _ = daemons
    proc = run(a.repo, "stats", "bw", "--peer", "x", "--proto", "y", check=False)
    assert proc.returncode != 0 and b"not both" in proc.stderr
    proc = run(a.repo, "stats", "bw", "--peer", "not-a-peer", check=False)
    assert proc.returncode != 0 and proc.stderr.decode().startswith("Error")
