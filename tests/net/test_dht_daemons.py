"""The DHT between real daemons on 127.0.0.1: each new daemon knows only the first one (it
`swarm connect`s to it), yet one finds a provider and a peer it was never told about.

The seeker runs as a DHT client: no server sends it ADD_PROVIDER or lists it in a table, so
the provider it finds can only come from another peer's GET_PROVIDERS answer; before each
search it is disconnected from the peer it looks for.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from daemons import Daemon, as_json, run, start_daemon

from blockmesh.data.net import load_identity
from blockmesh.data.routing import ipns

# The size: 20 daemons took 77 s here with nothing else running (8 took 46 s inside the
# whole suite); BLOCKMESH_DHT_DAEMONS=N runs another size.
N_DAEMONS = int(os.environ.get("BLOCKMESH_DHT_DAEMONS", "20"))


def _peers(daemon: Daemon) -> set[str]:
    return {p["Peer"] for p in as_json(run(daemon.repo, "swarm", "peers", "--json"))["Peers"]}


def _dial_addrs(ident: dict) -> set[str]:
    return {a.split("/p2p/")[0] for a in ident["Addresses"]}


def _start(repo: Path, routing: str = "auto") -> Daemon:
    run(repo, "init")
    if routing != "auto":
        config = repo / "config.toml"
        config.write_text(config.read_text().replace('type = "auto"', f'type = "{routing}"'))
    return start_daemon(repo)


def _disconnect(daemon: Daemon, peer: str) -> None:
    if peer in _peers(daemon):
        run(daemon.repo, "swarm", "disconnect", peer)


@pytest.mark.slow
def test_daemons_form_a_dht_and_find_a_provider_and_a_peer(tmp_path: Path):
    daemons: list[Daemon] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            starting = [pool.submit(_start, tmp_path / f"d{i}") for i in range(N_DAEMONS - 1)]
            starting.append(pool.submit(_start, tmp_path / "seeker", "dhtclient"))
            daemons = [f.result() for f in starting]
        seeker, provider = daemons[-1], daemons[-2]
        idents = [as_json(run(d.repo, "id", "--json")) for d in daemons]
        for daemon in daemons[1:]:
            run(daemon.repo, "swarm", "connect", idents[0]["Addresses"][0])
        data = tmp_path / "file"
        data.write_bytes(os.urandom(3000))
        unknown = run(seeker.repo, "add", "-Q", "--only-hash", str(data)).stdout.decode().strip()
        nobody = run(seeker.repo, "routing", "findprovs", unknown, "--timeout", "10",
                     check=False)
        assert nobody.returncode == 1 and b"no providers" in nobody.stderr
        cid = run(provider.repo, "add", "-Q", str(data)).stdout.decode().strip()
        assert cid == unknown

        provided = as_json(run(provider.repo, "routing", "provide", cid, "--json"))
        assert provided["Peers"] >= 1
        _disconnect(seeker, idents[-2]["ID"])
        found = as_json(run(seeker.repo, "routing", "findprovs", cid, "-n", "1", "--json"))
        assert [p["ID"] for p in found["Providers"]] == [idents[-2]["ID"]]
        assert set(found["Providers"][0]["Addrs"]) & _dial_addrs(idents[-2])

        target = idents[-3]
        _disconnect(seeker, target["ID"])
        addrs = run(seeker.repo, "routing", "findpeer", target["ID"]).stdout.decode().split()
        assert addrs and set(addrs) <= _dial_addrs(target)

        # A signed IPNS record put by the provider is read back by the seeker.
        name = idents[-2]["ID"]
        record = tmp_path / "record"
        record.write_bytes(ipns.create(load_identity(provider.repo), f"/ipfs/{cid}".encode(),
                                       sequence=1, eol_ns=ipns.lifetime_eol(time.time())))
        run(provider.repo, "routing", "put", f"/ipns/{name}", str(record))
        got = run(seeker.repo, "routing", "get", f"/ipns/{name}").stdout
        assert got == record.read_bytes()

        stats = as_json(run(seeker.repo, "stats", "dht", "--json"))
        assert stats["lan"]["mode"] == "client" and stats["providers"]["records"] == 0
        assert {s["kind"] for s in stats["lookups"]} >= {"find_providers", "find_peer",
                                                         "get_value"}
        assert stats["values"]["records"] == 0  # a client stores no values for others
        first = as_json(run(daemons[0].repo, "stats", "dht", "--json"))
        assert first["lan"]["mode"] == "server" and first["wan"]["mode"] == "client"
        # Every server but itself, never the client, and nothing in the WAN table on loopback.
        assert first["lan"]["peers"] == N_DAEMONS - 2 and first["wan"]["peers"] == 0
        assert idents[-1]["ID"] not in first["lan"]["table"]
    finally:
        for daemon in daemons:
            daemon.stop(signal.SIGTERM)
