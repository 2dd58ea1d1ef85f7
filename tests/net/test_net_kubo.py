"""Interop with the real kubo (v0.22, go-libp2p v0.29) on 127.0.0.1: dial both ways, identify,
ping, and an idle connection that outlives go-yamux's 30 s keep-alive interval."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trio

from blockmesh.data.net import Host, Identity, NetConfig, PeerEvent
from blockmesh.data.net.config import KUBO_YAMUX_KEEPALIVE_S
from blockmesh.reference.kubo import KuboNode, kubo_unavailable_reason

UNAVAILABLE = kubo_unavailable_reason()
pytestmark = [
    pytest.mark.kubo,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"kubo: {UNAVAILABLE}"),
]
LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))
WAIT = 15
KUBO_PROTOCOLS = {
    "/ipfs/bitswap",
    "/ipfs/bitswap/1.0.0",
    "/ipfs/bitswap/1.1.0",
    "/ipfs/bitswap/1.2.0",
    "/ipfs/id/1.0.0",
    "/ipfs/ping/1.0.0",
}


@pytest.fixture(scope="module")
def kubo() -> Iterator[KuboNode]:
    node = KuboNode()
    try:
        yield node
    finally:
        node.close()


async def kubo_peer_ids(kubo: KuboNode) -> set[str]:
    peers = await trio.to_thread.run_sync(kubo.peers)
    return {p.rsplit("/p2p/", 1)[1] for p in peers}


async def wait_for(condition, what: str) -> None:
    with trio.move_on_after(WAIT):
        while not await condition():
            await trio.sleep(0.1)
        return
    pytest.fail(f"timed out after {WAIT} s waiting for {what}")


async def test_blockmesh_dials_kubo_and_identifies_it(kubo):
    host = Host(Identity.generate(), LOOPBACK)
    async with host.run():
        with trio.fail_after(WAIT):
            assert await host.connect(kubo.addrs()[0]) == kubo.peer_id
        assert host.peers() == [kubo.peer_id]

        async def kubo_sees_us() -> bool:
            return host.peer_id in await kubo_peer_ids(kubo)

        await wait_for(kubo_sees_us, "kubo to list us")
        info = await host.identify(kubo.peer_id)
        assert set(info.protocols) >= KUBO_PROTOCOLS
        assert info.agent_version.startswith("kubo/0.22.0")
        assert await host.ping(kubo.peer_id) > 0

        await host.disconnect(kubo.peer_id)

        async def kubo_lost_us() -> bool:
            return host.peer_id not in await kubo_peer_ids(kubo)

        await wait_for(kubo_lost_us, "kubo to notice the disconnect")


async def test_kubo_dials_blockmesh_and_the_idle_connection_survives_keepalive(kubo):
    host = Host(Identity.generate(), LOOPBACK)
    async with host.run():
        events = host.subscribe()
        await trio.to_thread.run_sync(lambda: kubo.connect(host.addrs()[0], timeout=WAIT))
        with trio.fail_after(WAIT):
            assert await events.receive() == PeerEvent("connected", kubo.peer_id)
        assert host.peers() == [kubo.peer_id]
        assert host.peer_id in await kubo_peer_ids(kubo)
        assert await host.ping(kubo.peer_id) > 0

        # Leave the connection idle past go-yamux's keep-alive interval; it must neither drop
        # nor be replaced by a new one (no event at all).
        with trio.move_on_after(KUBO_YAMUX_KEEPALIVE_S + 5):
            event = await events.receive()
            pytest.fail(f"unexpected {event} while idle")
        assert host.peers() == [kubo.peer_id]
        assert host.peer_id in await kubo_peer_ids(kubo)
        assert await host.ping(kubo.peer_id) > 0
        assert set(host.peer_protocols(kubo.peer_id)) >= KUBO_PROTOCOLS
