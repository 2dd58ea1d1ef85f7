"""`Node`: the Python API of a data-plane node (the seed's BitswapNode, done for real).

A Node owns a repo, a libp2p host and the Bitswap engines. `add` imports into the repo and
announces the new blocks to peers that want them; `fetch`/`cat`/`get` pull a whole DAG over
Bitswap in one session, wanting every child as soon as its parent arrives, so the session's
window of live wants stays full while the walk goes on.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from blockmesh.data.bitswap import DEFAULT_CONFIG, Bitswap, BitswapConfig
from blockmesh.data.bitswap.session import Session
from blockmesh.data.cid import CID
from blockmesh.data.connectivity.service import (
    Connectivity,
    ConnectivitySettings,
    routing_table_size,
)
from blockmesh.data.dag import exporter
from blockmesh.data.dag.importer import Added, ImportOptions, import_bytes, import_path
from blockmesh.data.dag.links import links, walk
from blockmesh.data.net import Host, NetConfig, load_or_create_identity
from blockmesh.data.node.discovery import ProviderConnector
from blockmesh.data.node.exchange import Exchange
from blockmesh.data.node.providing import Providing
from blockmesh.data.routing.api import ContentRouting
from blockmesh.data.routing.kad.dht import DHT, DHTConfig
from blockmesh.data.routing.reprovider import Reprovider
from blockmesh.data.store.blockstore import BatchedPut
from blockmesh.data.store.repo import Repo
from blockmesh.errors import BlockmeshError

DEFAULT_STALL_TIMEOUT = 30.0
#: How often a waiting fetch asks its session whether to look for providers. The question is a
#: few comparisons, and every tenth of a second it is not asked adds to the time to first byte
#: of content found through the DHT (at 0.5 s it was most of a 0.86 s first byte: docs/
#: benchmarks.md, "DHT: time to first byte").
PROVIDER_CHECK_INTERVAL = 0.05


class FetchStalled(BlockmeshError):
    """No block of a fetch arrived for too long (no connected peer has it, or peers stalled)."""


@dataclass(frozen=True)
class PeerInfo:
    id: str
    address: str


class Node:
    def __init__(self, repo: Repo, *, net_config: NetConfig | None = None,
                 bitswap_config: BitswapConfig = DEFAULT_CONFIG) -> None:
        self.repo = repo
        self.identity = load_or_create_identity(repo.path)
        self.host = Host(self.identity, net_config or NetConfig())
        self.bitswap = Bitswap(repo.blocks, bitswap_config)
        self.exchange = Exchange(self.host, self.bitswap)
        routing_type = repo.config.routing.type
        self.dht: DHT | None = (None if routing_type == "none" else
                                DHT(self.host, DHTConfig(mode=routing_type)))
        #: What fetches and announcements use: the DHT unless something else implementing
        #: the interface is set before `run`; None: fetches ask connected peers only and
        #: nothing is announced.
        self.routing: ContentRouting | None = self.dht
        self.providing: Providing | None = None
        self.provider_search: ProviderConnector | None = None
        self.connectivity = Connectivity(
            self.host, self.bitswap, ConnectivitySettings.from_config(repo.config),
            routing_size=lambda: routing_table_size(self.dht))
        if self.dht is not None:
            self.dht.peer_answered = self.connectivity.active

    @property
    def peer_id(self) -> str:
        return self.host.peer_id

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Node]:
        """Listen and serve Bitswap until the block exits."""
        async with self.host.run(), trio.open_nursery() as nursery:
            await nursery.start(self.exchange.run)
            if self.dht is not None:
                await nursery.start(self.dht.run)
            await self._start_routing(nursery)
            await nursery.start(self.connectivity.run)
            try:
                yield self
            finally:
                nursery.cancel_scope.cancel()

    async def _start_routing(self, nursery: trio.Nursery) -> None:
        """With a routing: search providers for stalled fetches and run the reprovider."""
        if self.routing is None:
            return
        self.provider_search = ProviderConnector(self.host, self.routing)
        config = self.repo.config.reprovider
        engine = Reprovider(config.strategy, float(config.interval), start=trio.current_time())
        self.providing = Providing(self.routing, self.repo, engine)
        await nursery.start(self.providing.run)

    def provide_roots(self, roots: list[CID]) -> None:
        """Announce new roots (added or pinned) to the content routing now, if there is one."""
        if self.providing is not None:
            self.providing.provide_roots(roots)

    # -- peers -----------------------------------------------------------------------------------
    def addrs(self) -> list[str]:
        return self.host.addrs()

    async def connect(self, addr: str, *, timeout: float | None = None) -> str:
        return await self.host.connect(addr, timeout=timeout)

    async def disconnect(self, peer_id: str) -> None:
        await self.host.disconnect(peer_id)

    def peers(self) -> list[PeerInfo]:
        return [PeerInfo(peer, (self.host.remote_addrs(peer) or [""])[0])
                for peer in self.host.peers()]

    # -- content ---------------------------------------------------------------------------------
    def add(self, source: bytes | str | os.PathLike[str], opts: ImportOptions | None = None, *,
            recursive: bool = False, pin: bool = True) -> CID:
        """Import bytes, a file or (recursive) a directory; returns the root CID."""
        if isinstance(source, bytes):
            return self.add_bytes(source, opts, pin=pin)
        return self.add_path(source, opts, recursive=recursive, pin=pin)[-1].cid

    def add_bytes(self, data: bytes, opts: ImportOptions | None = None, *, pin: bool = True) -> CID:
        sink = BatchedPut(self.repo.blocks)
        with self.repo.gc_lock(), sink:
            entry = import_bytes(data, opts or ImportOptions(), sink)
            sink.flush()
            if pin:
                self.repo.pins.add(entry.cid)
        self.announce(sink.cids)
        self.provide_roots([entry.cid])
        return entry.cid

    def add_path(self, path: str | os.PathLike[str], opts: ImportOptions | None = None, *,
                 recursive: bool = False, pin: bool = True) -> list[Added]:
        sink = BatchedPut(self.repo.blocks)
        with self.repo.gc_lock(), sink:
            added = list(import_path(path, opts or ImportOptions(), sink, recursive=recursive))
            sink.flush()
            if pin:
                self.repo.pins.add(added[-1].cid)
        self.announce(sink.cids)
        self.provide_roots([added[-1].cid])
        return added

    def provide(self, cid: CID) -> int:
        """Offer a local DAG to every connected peer that wants any of its blocks."""
        cids = [block_cid for block_cid, _ in walk(self.repo.blocks.get, cid)]
        self.announce(cids)
        return len(cids)

    def announce(self, cids: list[CID]) -> None:
        """Tell peers that want any of `cids` (blocks just stored) that this node has them."""
        self.bitswap.server.blocks_added(cids)
        self.exchange.pump()

    async def fetch(self, root: CID, *, stall_timeout: float = DEFAULT_STALL_TIMEOUT) -> int:
        """Make the whole DAG under `root` local; returns how many blocks came from peers.

        With a routing, blocks no connected peer has are looked up there and their providers
        connected (see `Session.needs_providers`), so no prior `swarm connect` is needed."""
        session = self.bitswap.new_session()
        fetched = 0
        failure: BlockmeshError | None = None
        async with trio.open_nursery() as searches:
            try:
                fetched = await self._fetch_dag(root, session, searches, stall_timeout)
            except BlockmeshError as exc:  # raised outside the nursery, not in a group
                failure = exc
            finally:
                searches.cancel_scope.cancel()
                session.close()
                self.exchange.pump()
        if failure is not None:
            raise failure
        return fetched

    async def _fetch_dag(self, root: CID, session: Session, searches: trio.Nursery,
                         stall_timeout: float) -> int:
        fetched = 0
        missing: set[bytes] = set()
        frontier = [root]
        while frontier or missing:
            wanted = []
            for cid in frontier:
                if cid.multihash in missing:
                    continue
                if self.repo.blocks.has(cid):
                    frontier.extend(links(cid, self.repo.blocks.get(cid)))
                else:
                    missing.add(cid.multihash)
                    wanted.append(cid)
            frontier = []
            if wanted:
                session.want(wanted, trio.current_time())
                self.exchange.pump()
            arrived = session.take()
            if not arrived and missing:
                if not await self._wait_blocks(session, searches, stall_timeout):
                    raise FetchStalled(
                        f"no block of {root} arrived for {stall_timeout:g} s "
                        f"({len(missing)} missing, {len(self.exchange.bitswap_peers())} "
                        f"Bitswap peers connected{self._search_note()})")
                continue
            for cid, data in arrived:
                if cid.multihash in missing:
                    missing.discard(cid.multihash)
                    fetched += 1
                    frontier.extend(links(cid, data))
        return fetched

    async def _wait_blocks(self, session: Session, searches: trio.Nursery,
                           stall_timeout: float) -> bool:
        """Wait for progress up to `stall_timeout`, starting provider searches the session
        asks for meanwhile; False if nothing happened in time."""
        deadline = trio.current_time() + stall_timeout
        while True:
            # one search in flight per fetch: the session would name a new CID every check
            if self.provider_search is not None and not searches.child_tasks:
                for cid in session.needs_providers(trio.current_time()):
                    searches.start_soon(self.provider_search.connect_providers, cid)
            left = deadline - trio.current_time()
            if left <= 0:
                return False
            if await self.exchange.wait_progress(min(left, PROVIDER_CHECK_INTERVAL)):
                return True

    def _search_note(self) -> str:
        if self.provider_search is None:
            return "; no content routing to find others"
        stats = self.provider_search.stats
        return (f"; {stats.lookups} provider lookups found {stats.providers} providers, "
                f"{stats.connected} connected")

    async def sample(self, root: CID, peer: str, choose: Callable[[list[CID]], CID | None], *,
                     max_blocks: int, timeout: float) -> int:
        """Ask `peer` alone for `root`, then for one child after another down the DAG as
        `choose` picks them, each block verified by its hash; returns how many blocks came.

        This is how a cluster member audits another: local copies do not count, and a block
        the peer does not send within `timeout` (for the whole walk) fails the sample."""
        session = self.bitswap.new_session(only=frozenset({peer}), keep=False)
        served = 0
        try:
            with trio.fail_after(timeout):
                cid: CID | None = root
                while cid is not None and served < max_blocks:
                    session.want([cid], trio.current_time())
                    self.exchange.pump()
                    arrived = session.take()
                    while not arrived:
                        await self.exchange.wait_progress(timeout)
                        arrived = session.take()
                    served += 1
                    cid = choose(links(cid, arrived[0][1]))
        except trio.TooSlowError:
            raise FetchStalled(f"{peer} served {served} block(s) of {root} "
                               f"within {timeout:g} s, then nothing") from None
        finally:
            session.close()
            self.exchange.pump()
        return served

    async def cat(self, cid: CID, *, stall_timeout: float = DEFAULT_STALL_TIMEOUT) -> bytes:
        """The whole file at `cid`, fetched from peers where it is not local."""
        await self.fetch(cid, stall_timeout=stall_timeout)
        return b"".join(exporter.read_file(self.repo.blocks.get, cid))

    async def get(self, cid: CID, dest: str | os.PathLike[str], *,
                  stall_timeout: float = DEFAULT_STALL_TIMEOUT) -> Path:
        """Fetch the DAG at `cid`, then write it as `exporter.write_tree` does; where it went."""
        await self.fetch(cid, stall_timeout=stall_timeout)
        return exporter.write_tree(self.repo.blocks.get, cid, dest)

    # -- reporting -------------------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        """The seed's BitswapStats, with kubo's `bitswap stat` counters."""
        stat = self.bitswap.stat()
        return {
            "peer_id": self.peer_id,
            "connected_peers": len(self.host.peers()),
            "bitswap_peers": len(self.exchange.bitswap_peers()),
            "blocks_sent": stat.blocks_sent,
            "blocks_received": stat.blocks_received,
            "data_sent": stat.data_sent,
            "data_received": stat.data_received,
            "dup_blocks_received": stat.dup_blks_received,
            "dup_data_received": stat.dup_data_received,
            "messages_received": stat.messages_received,
            "wantlist_size": len(stat.wantlist),
            "wantlist": [str(cid) for cid in stat.wantlist],
            "addresses": self.addrs(),
        }

    def network_info(self) -> dict[str, object]:
        """The seed's NetworkInfo: who we are, where we listen, whom we are connected to."""
        return {
            "local_peer_id": self.peer_id,
            "listen_addrs": self.addrs(),
            "connected_peers": [{"id": p.id, "address": p.address, "connected": True}
                                for p in self.peers()],
        }

    def health(self) -> dict[str, object]:
        """The last periodic health check as plain data (status, peers, DHT table size,
        reachability, and why a node without peers has none): `blockmesh status`, metrics."""
        return self.connectivity.health()

    def wantlist(self, peer: str | None = None) -> list[str]:
        if peer is None:
            return [str(cid) for cid in self.bitswap.stat().wantlist]
        return [str(want.cid) for want in self.bitswap.peer_wantlist(peer)]

    def ledger(self, peer: str) -> dict[str, object] | None:
        snapshot = self.bitswap.ledger(peer)
        return None if snapshot is None else {"peer": peer, **asdict(snapshot)}


