"""A fetch with no connected holder finds providers through the content routing, connects to
them and completes over real Bitswap between real nodes on 127.0.0.1.

The routing here is tests/routing_double.py: a directory of real nodes' real addresses behind
the ContentRouting interface (the DHT's end-to-end test lives with the daemons)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import trio
from routing_double import DictRouting, Directory

from blockmesh.data.cid import CID, Codec
from blockmesh.data.connectivity.backoff import BackoffPolicy
from blockmesh.data.dag.importer import ImportOptions
from blockmesh.data.net import NetConfig
from blockmesh.data.node import FetchStalled, Node
from blockmesh.data.node.discovery import ProviderConnector
from blockmesh.data.store.config import Config, RoutingConfig
from blockmesh.data.store.repo import Repo

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))
SMALL = ImportOptions(chunk_size=64 * 1024)


def _node(tmp_path: Path, name: str) -> Node:
    """A node whose only routing is the one a test gives it (no DHT of its own)."""
    repo = Repo.init(tmp_path / name, Config(routing=RoutingConfig(type="none")))
    return Node(repo, net_config=LOOPBACK)


def _route(node: Node, directory: Directory) -> DictRouting:
    """Give `node` a routing over `directory`; its addresses are filled in once it listens."""
    routing = DictRouting(directory, node.peer_id, ())
    node.routing = routing
    return routing


def _listening(node: Node, directory: Directory) -> None:
    directory.addrs[node.peer_id] = tuple(f"{a}/p2p/{node.peer_id}" for a in node.addrs())


async def test_cat_with_no_swarm_connect_finds_the_provider(tmp_path: Path) -> None:
    directory = Directory()
    alice, bob = _node(tmp_path, "alice"), _node(tmp_path, "bob")
    _route(alice, directory)
    bob_routing = _route(bob, directory)
    data = os.urandom(600 * 1024)
    with trio.fail_after(60):
        async with alice.run(), bob.run():
            _listening(alice, directory)
            _listening(bob, directory)
            root = alice.add_bytes(data, SMALL)  # add provides its root right away
            while root.multihash not in directory.providers:
                await directory.changed.wait()
            assert bob.peers() == []
            assert await bob.cat(root, stall_timeout=20) == data
            assert alice.peer_id in [p.id for p in bob.peers()]
            assert bob_routing.lookups[0] == root
            assert bob.provider_search is not None
            assert bob.provider_search.stats.connected == 1


async def test_stalled_block_is_looked_up_not_only_the_root(tmp_path: Path) -> None:
    """Bob's only peer, carol, holds the root alone; the children are looked up and found at
    alice, who never announced the root."""
    directory = Directory()
    alice, bob, carol = (_node(tmp_path, n) for n in ("alice", "bob", "carol"))
    bob_routing = _route(bob, directory)
    data = os.urandom(300 * 1024)
    with trio.fail_after(60):
        async with alice.run(), bob.run(), carol.run():
            _listening(alice, directory)
            root = alice.add_bytes(data, SMALL)
            carol.repo.blocks.put(root, alice.repo.blocks.get(root))
            children = [CID.decode(bytes(c)) for c in _child_cids(alice, root)]
            for child in children:  # alice provides the leaves, not the root
                directory.providers.setdefault(child.multihash, []).append(alice.peer_id)
            await bob.connect(carol.addrs()[0])
            while carol.peer_id not in bob.exchange.bitswap_peers():
                await trio.sleep(0.02)
            assert await bob.cat(root, stall_timeout=20) == data
    assert root not in bob_routing.lookups
    assert bob_routing.lookups and bob_routing.lookups[0] in children


def _child_cids(node: Node, root: CID) -> list[bytes]:
    from blockmesh.data.dag.links import links

    found = links(root, node.repo.blocks.get(root))
    assert found and all(c.codec in (Codec.RAW, Codec.DAG_PB) for c in found)
    return [bytes(c) for c in found]


async def test_no_provider_anywhere_stalls_and_says_what_it_tried(tmp_path: Path) -> None:
    directory = Directory()
    bob = _node(tmp_path, "bob")
    _route(bob, directory)
    with trio.fail_after(30):
        async with bob.run():
            with pytest.raises(FetchStalled, match="1 provider lookups found 0 providers"):
                await bob.fetch(CID.of(b"nobody has this"), stall_timeout=1.5)


async def test_dead_provider_address_is_survived(tmp_path: Path) -> None:
    """A provider whose addresses refuse connections costs a failed dial, not the fetch:
    the live provider listed after it still serves."""
    directory = Directory()
    alice, bob = _node(tmp_path, "alice"), _node(tmp_path, "bob")
    _route(bob, directory)
    ghost = _node(tmp_path, "ghost")  # an identity that never listens
    data = os.urandom(100 * 1024)
    with trio.fail_after(60):
        async with alice.run(), bob.run():
            _listening(alice, directory)
            directory.addrs[ghost.peer_id] = (f"/ip4/127.0.0.1/tcp/1/p2p/{ghost.peer_id}",)
            root = alice.add_bytes(data, SMALL)
            directory.providers[root.multihash] = [ghost.peer_id, alice.peer_id]
            assert await bob.cat(root, stall_timeout=20) == data
            assert bob.provider_search is not None
            assert bob.provider_search.stats.failed_dials >= 1


class _Ceiling(random.Random):
    """Full jitter that always draws its upper bound, so the delay is exactly the ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_dead_provider_is_backed_off_between_searches(tmp_path: Path) -> None:
    """A provider none of whose addresses answered is skipped by the next searches until its
    backoff delay has passed, then dialled again."""
    directory = Directory()
    bob, ghost = _node(tmp_path, "bob"), _node(tmp_path, "ghost")  # ghost never listens
    routing = _route(bob, directory)
    cid = CID.of(b"only the ghost has this")
    directory.addrs[ghost.peer_id] = (f"/ip4/127.0.0.1/tcp/1/p2p/{ghost.peer_id}",)
    directory.providers[cid.multihash] = [ghost.peer_id]
    with trio.fail_after(30):
        async with bob.run():
            search = ProviderConnector(bob.host, routing, dial_timeout=5.0,
                                       backoff=BackoffPolicy(base=1.0, cap=1.0),
                                       rng=_Ceiling())
            assert await search.connect_providers(cid) == 0
            assert (search.stats.failed_dials, search.stats.backed_off) == (1, 0)
            assert await search.connect_providers(cid) == 0  # within the delay: no dial
            assert (search.stats.failed_dials, search.stats.backed_off) == (1, 1)
            await trio.sleep(1.1)  # past the delay: the policy's ceiling, 1 s
            assert await search.connect_providers(cid) == 0
            assert (search.stats.failed_dials, search.stats.backed_off) == (2, 1)
