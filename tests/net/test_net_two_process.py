"""A blockmesh host in a child process: connect, identify, ping and streams both ways."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import trio

from blockmesh.bench.net_peer import (
    DIALBACK,
    ECHO,
    SINK,
    SOURCE,
    WAIT,
    Peer,
    echo,
    start_peer,
    stop_peer,
)
from blockmesh.data.net import Host, Identity, NetConfig


@pytest.fixture
def peer() -> Iterator[Peer]:
    child = start_peer()
    try:
        yield child
    finally:
        stop_peer(child.proc)


async def test_two_processes_connect_identify_ping_and_stream_both_ways(peer):
    host = Host(Identity.generate(), NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",)))
    host.set_stream_handler([ECHO], echo)
    async with host.run():
        with trio.fail_after(WAIT):
            assert await host.connect(peer.addrs[0]) == peer.peer_id
            info = await host.identify(peer.peer_id)
            assert {ECHO, SINK, SOURCE, DIALBACK, "/ipfs/ping/1.0.0"} <= set(info.protocols)
            assert await host.ping(peer.peer_id) > 0

            payload = os.urandom(300_000)
            # Us -> child: the child counts what we send.
            async with await host.new_stream(peer.peer_id, [SINK]) as stream:
                await stream.write(payload)
                await stream.close_write()
                assert int.from_bytes(await stream.read_exactly(8), "big") == len(payload)
            # Child -> us: the child opens a stream to our echo handler.
            async with await host.new_stream(peer.peer_id, [DIALBACK]) as stream:
                await stream.write(payload[:5000])
                await stream.close_write()
                echoed = bytearray()
                while data := await stream.read():
                    echoed += data
            assert bytes(echoed) == payload[:5000]


async def test_restarted_peer_keeps_its_peer_id(tmp_path):
    ids = []
    for _ in range(2):
        child = start_peer("--repo", str(tmp_path / "repo"))
        try:
            ids.append(child.peer_id)
            host = Host(Identity.generate(), NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",)))
            async with host.run():
                with trio.fail_after(WAIT):
                    await host.connect(child.addrs[0])
                    assert (await host.identify(child.peer_id)).peer_id == child.peer_id
        finally:
            stop_peer(child.proc)
    assert ids[0] == ids[1]
