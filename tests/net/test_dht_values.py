"""PUT_VALUE / GET_VALUE between real DHTs in one process on 127.0.0.1, with records checked
by `routing.records`: IPNS records and public keys travel, bad or stale ones do not."""

from __future__ import annotations

import time

import pytest
import trio

from blockmesh.data.net import Host, Identity, NetConfig
from blockmesh.data.routing import ipns, pubkey
from blockmesh.data.routing.errors import RecordError
from blockmesh.data.routing.kad.dht import DHT, DHTConfig, DHTError
from blockmesh.errors import NotFound

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))


async def _until(check, limit: float = 20.0) -> None:
    with trio.fail_after(limit):
        while not check():
            await trio.sleep(0.05)


def _record(identity: Identity, seq: int) -> bytes:
    return ipns.create(identity, f"/ipfs/bafkqaddwgevxmmraojswg33smq{seq}".encode(),
                       sequence=seq, eol_ns=ipns.lifetime_eol(time.time()))


async def test_values_are_put_validated_selected_and_got() -> None:
    ids = [Identity.generate() for _ in range(4)]
    hosts = [Host(i, LOOPBACK) for i in ids]
    modes = ("dhtserver", "dhtserver", "dhtclient", "dhtclient")
    dhts = [DHT(h, DHTConfig(mode=m, rpc_timeout=5.0)) for h, m in zip(hosts, modes, strict=True)]
    a, b, c, d = dhts
    with trio.fail_after(60):
        async with (hosts[0].run(), hosts[1].run(), hosts[2].run(), hosts[3].run(),
                    trio.open_nursery() as nursery):
            for dht in dhts:
                await nursery.start(dht.run)
            for host in hosts[1:]:
                await host.connect(hosts[0].addrs()[0])
            await _until(lambda: all(len(x.networks[0].table) >= 1 for x in (a, c, d)))
            await _until(lambda: len(a.networks[0].table) == 1 and len(c.networks[0].table) == 2)

            key = ipns.routing_key(c.self_id)
            first, second = _record(ids[2], 1), _record(ids[2], 2)
            assert await c.put_value(key, first) == 2  # both servers took it
            for server in (a, b):
                assert server.values.get(key, now=trio.current_time(), wall=time.time()) == first
            assert await d.get_value(key) == first
            assert await c.put_value(key, second) == 2
            assert await d.get_value(key) == second
            with pytest.raises(DHTError):  # every server keeps the newer record
                await d.put_value(key, first)

            pk_key = b"/pk/" + c.self_id
            pk_value = pubkey.PublicKey(pubkey.ED25519, ids[2].public_key).serialize()
            assert await d.put_value(pk_key, pk_value) == 2
            assert await c.get_value(pk_key) == pk_value

            with pytest.raises(RecordError):  # refused before anything is sent
                await d.put_value(ipns.routing_key(d.self_id), first)
            with pytest.raises(NotFound):
                await c.get_value(ipns.routing_key(d.self_id))
            with pytest.raises(RecordError):
                await c.get_value(b"/other/key")
            assert a.stats()["values"]["records"] == 2
            nursery.cancel_scope.cancel()
