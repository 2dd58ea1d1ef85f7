"""Hostile Bitswap peers over real streams: the node drops them and keeps serving everyone else."""

import contextlib
import os

import trio

from blockmesh.data.bitswap import PROTOCOL_IDS
from blockmesh.data.net import Host, Identity, NetConfig, NetError
from blockmesh.data.node import Node
from blockmesh.data.store.repo import Repo

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))


async def test_garbage_and_oversize_frames_are_dropped_and_others_still_served(tmp_path):
    server = Node(Repo.init(tmp_path / "server"), net_config=LOOPBACK)
    honest = Node(Repo.init(tmp_path / "honest"), net_config=LOOPBACK)
    attacker = Host(Identity.generate(), LOOPBACK)
    data = os.urandom(1024 * 1024)
    with trio.fail_after(60):
        async with server.run(), honest.run(), attacker.run():
            cid = server.add_bytes(data)
            await attacker.connect(server.addrs()[0])
            for payload in (b"\x05\xff\xff\xff\xff\xff",  # a frame whose body is not protobuf
                            b"\xff\xff\xff\xff\x7f",  # a length prefix far past 4 MiB
                            b"\x80" * 12):  # a varint that never ends
                stream = await attacker.new_stream(server.peer_id, list(PROTOCOL_IDS))
                await stream.write(payload)
                with trio.move_on_after(5), contextlib.suppress(NetError):
                    while await stream.read():  # until the server resets the stream
                        pass
            await honest.connect(server.addrs()[0])
            assert await honest.cat(cid, stall_timeout=20) == data
            # three broken streams are three strikes: the attacker is flagged and disconnected
            with trio.move_on_after(5):
                while attacker.peers():
                    await trio.sleep(0.1)
            assert attacker.peers() == []
            assert attacker.peer_id in server.bitswap.flagged()
