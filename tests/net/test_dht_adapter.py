"""The DHT adapter over real Hosts in one process on 127.0.0.1: admission by identify, the
server's answers, values, and a peer sending garbage or invalid records that changes nothing."""

from __future__ import annotations

import time

import trio

from blockmesh.data import varint
from blockmesh.data.cid import CID, Codec, digest
from blockmesh.data.net import Host, Identity, NetConfig, StreamError
from blockmesh.data.routing import ipns, pubkey
from blockmesh.data.routing.kad.dht import DHT, DHTConfig, peer_bytes
from blockmesh.data.routing.kad.messages import Message, MessageType, Record, frame
from blockmesh.data.routing.kad.table import LAN_PROTOCOL
from blockmesh.errors import BlockmeshError

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))


async def _until(check, limit: float = 20.0) -> None:
    with trio.fail_after(limit):
        while not check():
            await trio.sleep(0.05)


async def test_servers_admit_servers_answer_and_survive_a_bad_peer():
    hosts = [Host(Identity.generate(), LOOPBACK) for _ in range(3)]
    a, b, c = (DHT(h, DHTConfig(mode=m, rpc_timeout=5.0))
               for h, m in zip(hosts, ("auto", "dhtserver", "dhtclient"), strict=True))
    async with hosts[0].run(), hosts[1].run(), hosts[2].run(), trio.open_nursery() as nursery:
        for dht in (a, b, c):
            await nursery.start(dht.run)
        assert a.networks[0].server and not a.networks[1].server  # auto on loopback: LAN only
        assert not any(n.server for n in c.networks)
        await hosts[1].connect(hosts[0].addrs()[0])
        await hosts[2].connect(hosts[0].addrs()[0])
        # c may already have b too: its bootstrap lookup through a names b, and c dials it
        await _until(lambda: len(a.networks[0].table) == 1 and len(c.networks[0].table) >= 1)
        await trio.sleep(0.5)
        assert a.networks[0].table.peers() == [b.self_id]  # the client never enters a table
        assert len(a.networks[1].table) == 0  # loopback peers are not WAN peers

        cid = CID(1, Codec.RAW, digest(b"block"))
        assert await b.announce(cid) >= 1
        found = [p async for p in c.find_providers(cid, limit=5)]
        assert [p.peer_id for p in found] == [hosts[1].peer_id]
        assert found[0].addrs == tuple(x.split("/p2p/")[0] for x in hosts[1].addrs())

        # A signed IPNS record put by one server is stored by the other, found by the client.
        key = ipns.routing_key(b.self_id)
        record = ipns.create(hosts[1].identity, b"/ipfs/" + str(cid).encode(), sequence=1,
                             eol_ns=ipns.lifetime_eol(time.time()))
        assert await b.put_value(key, record) == 1
        assert len(a.values) == 1 and len(c.values) == 0
        assert await c.get_value(key) == record

        # Garbage, an oversized frame, a forged record: each stream is reset, nothing stored.
        forged = ipns.create(hosts[2].identity, b"/ipfs/x", sequence=2,
                             eol_ns=ipns.lifetime_eol(time.time()))
        for payload in (b"\x07garbage", varint.encode(5 << 20),
                        frame(Message(MessageType.PUT_VALUE, key=key,
                                      record=Record(key, forged)))):
            stream = await hosts[2].new_stream(hosts[0].peer_id, [LAN_PROTOCOL])
            await stream.write(payload)
            try:
                with trio.fail_after(10):
                    assert await stream.read() == b""
            except StreamError:
                pass
        assert hosts[0].is_connected(hosts[2].peer_id)
        assert await c.get_value(key) == record
        # A holder with an older record is sent the newer one by whoever reads both.
        newer = ipns.create(hosts[1].identity, b"/ipfs/" + str(cid).encode(), sequence=2,
                            eol_ns=ipns.lifetime_eol(time.time()))
        b.values.put_own(key, newer, now=trio.current_time(), unix_now=time.time())
        assert await c.get_value(key) == newer
        await _until(lambda: a.values.get(key, now=trio.current_time(),
                                          unix_now=time.time()) == newer, 10.0)

        reply = await c._send(c.networks[0], a.self_id,
                              Message(MessageType.FIND_NODE, key=peer_bytes(hosts[1].peer_id)))
        assert reply is not None and [p.id for p in reply.closer_peers] == [b.self_id]
        assert await c.find_peer(hosts[1].peer_id)
        nursery.cancel_scope.cancel()


async def test_one_peer_over_its_quota_is_refused_and_our_own_records_stay():
    """A client pushing more provider records and values than its quota at a server over real
    streams: the excess is refused and counted, the server's own record still answers."""
    hosts = [Host(Identity.generate(), LOOPBACK) for _ in range(2)]
    a = DHT(hosts[0], DHTConfig(mode="dhtserver", rpc_timeout=5.0,
                                provider_records_per_peer=3, values_per_peer=2))
    c = DHT(hosts[1], DHTConfig(mode="dhtclient", rpc_timeout=5.0))
    async with hosts[0].run(), hosts[1].run(), trio.open_nursery() as nursery:
        for dht in (a, c):
            await nursery.start(dht.run)
        assert not c.has_peers()  # the reprovider skips its rounds until this turns true
        await hosts[1].connect(hosts[0].addrs()[0])
        await _until(lambda: len(c.networks[0].table) == 1)
        assert c.has_peers()
        net = c.networks[0]
        me = c._peer_info(c.self_id, net)
        assert me is not None
        cids = [CID(1, Codec.RAW, digest(b"block %d" % i)) for i in range(5)]
        for cid in cids:
            await c._send(net, a.self_id, Message(MessageType.ADD_PROVIDER, key=cid.multihash,
                                                  provider_peers=(me,)), expect_reply=False)
        await _until(lambda: a.stats()["providers"]["refused_peer_quota"] == 2)
        assert len(a.providers) == 3 and a.providers.held_by(c.self_id) == 3

        stored = 0
        for _ in range(3):
            ident = Identity.generate()
            key = b"/pk/" + peer_bytes(ident.peer_id)
            raw = pubkey.PublicKey(pubkey.ED25519, ident.public_key).serialize()
            try:
                await c._send(net, a.self_id, Message(MessageType.PUT_VALUE, key=key,
                                                      record=Record(key, raw)))
                stored += 1
            except BlockmeshError:  # the refused one: the server resets the stream
                pass
        assert stored == 2 and a.stats()["values"] == {
            "records": 2, "own": 0, "refused_full": 0, "refused_peer_quota": 1}

        # The server's own record, added when the store holds the client's, is served first.
        a.providers.add_own(cids[0].multihash, trio.current_time())
        reply = await c._send(net, a.self_id,
                              Message(MessageType.GET_PROVIDERS, key=cids[0].multihash))
        assert reply is not None
        assert [p.id for p in reply.provider_peers] == [a.self_id, c.self_id]
        assert hosts[0].is_connected(hosts[1].peer_id)
        nursery.cancel_scope.cancel()
