"""End to end over the real DHT: three daemons on 127.0.0.1, B and C each connected only to A.
C adds a file (which announces its root); B, never told about C, cats it: its fetch finds C
through the DHT, connects and completes over Bitswap. B's HTTP gateway does the same for a
second file. Then an IPNS record put through B is got through C, and a record put under a name
it was not signed for is refused."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from daemons import Daemon, as_json, one_line_error, run, start_daemon

from blockmesh.data.net.identity import Identity
from blockmesh.data.routing import ipns

WAIT = 30.0


def _peers(daemon: Daemon) -> set[str]:
    return {p["Peer"] for p in as_json(run(daemon.repo, "swarm", "peers", "--json"))["Peers"]}


def _wait_announced(server: Daemon, cid: str, provider: str) -> None:
    """Until `server` (the only DHT server the provider knows) holds its provider record."""
    deadline = time.monotonic() + WAIT
    while True:
        found = run(server.repo, "routing", "findprovs", cid, "-n", "1", "--timeout", "5",
                    "--json", check=False)
        if found.returncode == 0 and [p["ID"] for p in as_json(found)["Providers"]] == [provider]:
            return
        assert time.monotonic() < deadline, f"the add of {cid} never announced its root"
        time.sleep(0.2)


def _cut(b: Daemon, c_id: str) -> None:
    if c_id in _peers(b):  # a DHT query may have met C: start from none
        run(b.repo, "swarm", "disconnect", c_id)
    assert c_id not in _peers(b)


@pytest.mark.slow
def test_cat_finds_content_through_the_dht_with_no_swarm_connect(tmp_path: Path) -> None:
    daemons: list[Daemon] = []
    try:
        a, b, c = (start_daemon(tmp_path / name) for name in ("a", "b", "c"))
        daemons = [a, b, c]
        ids = {d.repo.name: as_json(run(d.repo, "id", "--json")) for d in daemons}
        for daemon in (b, c):
            run(daemon.repo, "swarm", "connect", ids["a"]["Addresses"][0])
        data = tmp_path / "file"
        data.write_bytes(os.urandom(700 * 1024))
        cid = run(c.repo, "add", "-Q", str(data)).stdout.decode().strip()
        # `add` announced the root through C's DHT: A, the only server C knows, holds it.
        _wait_announced(a, cid, ids["c"]["ID"])
        _cut(b, ids["c"]["ID"])
        got = run(b.repo, "cat", "--stall-timeout", "20", cid)
        assert got.stdout == data.read_bytes()
        assert ids["c"]["ID"] in _peers(b)

        # B's gateway: a second file of C's, B cut off from C again, fetched by an HTTP GET.
        data.write_bytes(os.urandom(300 * 1024))
        second = run(c.repo, "add", "-Q", str(data)).stdout.decode().strip()
        _wait_announced(a, second, ids["c"]["ID"])
        _cut(b, ids["c"]["ID"])
        gateway = as_json(run(b.repo, "id", "--json"))["Gateway"].split("/")  # /ip4/H/tcp/P
        with urllib.request.urlopen(f"http://{gateway[2]}:{gateway[4]}/ipfs/{second}",
                                    timeout=60) as reply:
            assert reply.read() == data.read_bytes()

        # routing put/get: a signed IPNS record put through B is got through C.
        name = Identity.generate()
        record = tmp_path / "record"
        record.write_bytes(ipns.create(name, f"/ipfs/{cid}".encode(), sequence=1,
                                       eol_ns=ipns.lifetime_eol(time.time())))
        key = f"/ipns/{name.peer_id}"
        assert b"stored" in run(b.repo, "routing", "put", key, str(record)).stdout
        assert run(c.repo, "routing", "get", key).stdout == record.read_bytes()
        forged = tmp_path / "forged"  # the record under another name: refused, one line
        forged.write_bytes(record.read_bytes())
        bad = run(b.repo, "routing", "put", f"/ipns/{ids['a']['ID']}", str(forged), check=False)
        assert "signature" in one_line_error(bad)
    finally:
        for daemon in daemons:
            daemon.stop(signal.SIGTERM)
