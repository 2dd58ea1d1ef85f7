"""Bitswap interop with the real kubo, both directions, CIDv0 and CIDv1 content."""

import os

import pytest
import trio

from blockmesh.data.cid import CID
from blockmesh.data.dag.importer import ImportOptions
from blockmesh.data.net import NetConfig
from blockmesh.data.node import Node
from blockmesh.data.store.repo import Repo
from blockmesh.reference.kubo import KuboNode, kubo_unavailable_reason

pytestmark = [pytest.mark.kubo,
              pytest.mark.skipif(kubo_unavailable_reason() is not None,
                                 reason=str(kubo_unavailable_reason()))]

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))


@pytest.fixture
def kubo(tmp_path):
    with KuboNode(tmp_path / "kubo") as node:
        yield node


async def test_blockmesh_fetches_what_kubo_added(kubo, tmp_path):
    source = tmp_path / "from-kubo.bin"
    source.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    cid = CID.parse(await trio.to_thread.run_sync(lambda: kubo.add(source)))
    node = Node(Repo.init(tmp_path / "bm"), net_config=LOOPBACK)
    with trio.fail_after(120):
        async with node.run():
            await node.connect(kubo.addrs()[0])
            assert await node.cat(cid, stall_timeout=30) == source.read_bytes()
            assert node.stats()["blocks_received"] >= 21
    assert node.repo.verify().corrupt == []


@pytest.mark.parametrize("cid_version", [0, 1])
async def test_kubo_fetches_what_blockmesh_added(kubo, tmp_path, cid_version):
    data = os.urandom(4 * 1024 * 1024 + 321)
    node = Node(Repo.init(tmp_path / "bm"), net_config=LOOPBACK)
    dest = tmp_path / "downloaded.bin"
    with trio.fail_after(120):
        async with node.run():
            cid = node.add_bytes(data, ImportOptions(cid_version=cid_version))
            ours = node.addrs()[0]
            await trio.to_thread.run_sync(lambda: kubo.connect(ours))
            await trio.to_thread.run_sync(lambda: kubo.download(str(cid), dest, timeout=60))
            assert node.stats()["blocks_sent"] >= 17
    assert dest.read_bytes() == data
