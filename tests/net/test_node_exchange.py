"""Two blockmesh nodes exchange DAGs over real Bitswap on 127.0.0.1."""

import os

import pytest
import trio

from blockmesh.data.cid import CID
from blockmesh.data.dag.importer import ImportOptions
from blockmesh.data.net import NetConfig
from blockmesh.data.node import FetchStalled, Node
from blockmesh.data.store.repo import Repo

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))


def _node(tmp_path, name):
    return Node(Repo.init(tmp_path / name), net_config=LOOPBACK)


async def test_fetch_file_and_directory_between_two_nodes(tmp_path):
    alice, bob = _node(tmp_path, "alice"), _node(tmp_path, "bob")
    data = os.urandom(3 * 1024 * 1024 + 17)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x.bin").write_bytes(os.urandom(300000))
    (tree / "hello.txt").write_bytes(b"Hello from Alice!")
    with trio.fail_after(60):
        async with alice.run(), bob.run():
            v0 = alice.add_bytes(data)
            v1 = alice.add_bytes(data, ImportOptions(cid_version=1))
            root = alice.add_path(tree, recursive=True)[-1].cid
            await bob.connect(alice.addrs()[0])
            assert await bob.cat(v0) == data
            assert await bob.cat(v1) == data
            await bob.get(root, tmp_path / "out")
            assert (tmp_path / "out" / "sub" / "x.bin").read_bytes() == (
                tree / "sub" / "x.bin").read_bytes()
            stats = bob.stats()
            assert stats["blocks_received"] > 10 and stats["wantlist_size"] == 0
            assert alice.stats()["blocks_sent"] == stats["blocks_received"]
            assert bob.ledger(alice.peer_id)["blocks_received"] == stats["blocks_received"]
            assert bob.repo.verify().corrupt == []


async def test_block_added_after_the_want_still_arrives(tmp_path):
    alice, bob = _node(tmp_path, "alice"), _node(tmp_path, "bob")
    data = b"Hello from Alice!"
    cid = CID.parse("QmXvoaS2yQFQ1xdKSYP13GpCFH7sLhrTBfkbcBhjYMpi8y")
    with trio.fail_after(60):
        async with alice.run(), bob.run():
            await bob.connect(alice.addrs()[0])
            async with trio.open_nursery() as nursery:
                result = {}

                async def fetch():
                    result["data"] = await bob.cat(cid, stall_timeout=20)

                nursery.start_soon(fetch)
                await trio.sleep(0.5)
                assert str(cid) in bob.wantlist()
                assert alice.add_bytes(data) == cid
            assert result["data"] == data


async def test_fetch_with_no_provider_stalls_with_a_clear_error(tmp_path):
    alice, bob = _node(tmp_path, "alice"), _node(tmp_path, "bob")
    absent = CID.of(b"nobody has this")
    with trio.fail_after(30):
        async with alice.run(), bob.run():
            await bob.connect(alice.addrs()[0])
            with pytest.raises(FetchStalled):
                await bob.fetch(absent, stall_timeout=1.5)


async def test_python_api_from_the_package_root(tmp_path):
    import blockmesh

    alice = blockmesh.Node(Repo.init(tmp_path / "a"), net_config=LOOPBACK)
    bob = blockmesh.Node(Repo.init(tmp_path / "b"), net_config=LOOPBACK)
    (tmp_path / "f.txt").write_bytes(b"file via the API")
    with trio.fail_after(30):
        async with alice.run(), bob.run():
            from_bytes = alice.add(b"bytes via the API")
            from_path = alice.add(tmp_path / "f.txt")
            await bob.connect(alice.addrs()[0])
            assert await bob.cat(from_bytes) == b"bytes via the API"
            await bob.get(from_path, tmp_path / "copy.txt")
            assert (tmp_path / "copy.txt").read_bytes() == b"file via the API"
            assert bob.provide(from_path) == 1
            info = bob.network_info()
            assert info["connected_peers"][0]["id"] == alice.peer_id


async def test_replies_spread_over_several_streams_and_all_arrive(tmp_path):
    """A fetch of many 256 KiB blocks keeps more replies queued than one stream's window
    carries, so the server opens further reply streams (up to REPLY_STREAMS); the fetcher
    reads blocks from every one of them."""
    from blockmesh.data.node.exchange import REPLY_STREAMS

    alice, bob = _node(tmp_path, "alice"), _node(tmp_path, "bob")
    data = os.urandom(8 * 1024 * 1024)
    with trio.fail_after(60):
        async with alice.run(), bob.run():
            cid = alice.add_bytes(data)
            await bob.connect(alice.addrs()[0])
            assert await bob.cat(cid) == data
            streams = alice.exchange._peers[bob.peer_id].streams
            assert 1 < streams <= REPLY_STREAMS
            # and they were opened, not only attempted: bob holds its own stream plus alice's
            _, open_streams = bob.host.connection_counts()
            bitswap = sum(n for protocol, n in open_streams.items() if "bitswap" in protocol)
            assert bitswap == 1 + streams
            assert bob.repo.verify().corrupt == []


async def test_small_replies_stay_in_order_on_the_first_stream(tmp_path):
    """Replies of small blocks never take the extra reply streams: spread, they reach the peer
    out of order, which stalled kubo's recursive pin (docs/benchmarks.md)."""
    alice, bob = _node(tmp_path, "alice"), _node(tmp_path, "bob")
    tree = tmp_path / "small"
    tree.mkdir()
    files = {f"{i:04d}": os.urandom(1024) for i in range(600)}
    for name, data in files.items():
        (tree / name).write_bytes(data)
    with trio.fail_after(60):
        async with alice.run(), bob.run():
            root = alice.add_path(tree, recursive=True)[-1].cid
            await bob.connect(alice.addrs()[0])
            await bob.get(root, tmp_path / "out")
            assert alice.exchange._peers[bob.peer_id].streams == 1
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data
