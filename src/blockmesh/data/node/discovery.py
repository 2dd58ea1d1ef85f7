"""Finding peers for a fetch: look up a CID's providers and connect to them.

A Bitswap session only asks peers that are connected. When its engine says it needs providers
(`Session.needs_providers`), the node runs one of these searches: ask the content routing,
dial what it returns (a bounded number, each dial bounded, the whole search bounded) and let
the new connections reach the session as ordinary peer events. Nothing here decides when.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from dataclasses import dataclass

import trio

from blockmesh.data.cid import CID
from blockmesh.data.connectivity.backoff import Backoff, BackoffPolicy
from blockmesh.data.net import Host
from blockmesh.data.routing.api import ContentRouting, Provider
from blockmesh.errors import BlockmeshError

logger = logging.getLogger(__name__)

#: boxo asks the routing for this many providers per lookup.
MAX_PROVIDERS = 10
#: A lookup (including its dials) gives up after this long; the session may ask again later.
SEARCH_TIMEOUT = 30.0
DIAL_TIMEOUT = 10.0
#: Addresses tried per provider (a peer record may list many; most are dead ends off-LAN).
MAX_ADDRS = 8
#: A provider no address of which answered is not dialled again before a delay drawn with full
#: jitter below 10 s, doubling per failure up to 5 min (kubo's swarm backs off dials to a peer
#: for up to 5 min too); every CID of a large fetch asks the routing, and the same dead
#: provider is named in each answer.
PROVIDER_BACKOFF = BackoffPolicy(base=10.0, factor=2.0, cap=300.0)
#: Providers whose backoff is remembered (the least recently failed are forgotten first).
MAX_BACKOFF_PEERS = 4096


@dataclass
class SearchStats:
    lookups: int = 0
    providers: int = 0
    connected: int = 0
    failed_dials: int = 0
    #: Providers skipped because a recent dial to them failed.
    backed_off: int = 0


class ProviderConnector:
    def __init__(self, host: Host, routing: ContentRouting, *, max_providers: int = MAX_PROVIDERS,
                 search_timeout: float = SEARCH_TIMEOUT,
                 dial_timeout: float = DIAL_TIMEOUT,
                 backoff: BackoffPolicy = PROVIDER_BACKOFF,
                 rng: random.Random | None = None) -> None:
        self.host = host
        self.routing = routing
        self.max_providers = max_providers
        self.search_timeout = search_timeout
        self.dial_timeout = dial_timeout
        self.stats = SearchStats()
        self._backoff_policy = backoff
        self._rng = rng or random.Random()
        #: peer id -> (its backoff, trio time before which it is not dialled)
        self._failed: OrderedDict[str, tuple[Backoff, float]] = OrderedDict()

    async def connect_providers(self, cid: CID) -> int:
        """Find providers of `cid` and connect to them; how many are connected afterwards.

        Routing and dial failures are logged, never raised: a search that finds nobody just
        leaves the fetch to its stall timeout."""
        self.stats.lookups += 1
        reached: set[str] = set()
        with trio.move_on_after(self.search_timeout):
            async with trio.open_nursery() as dials:
                try:
                    async for provider in self.routing.find_providers(
                            cid, limit=self.max_providers):
                        if provider.peer_id == self.host.peer_id:
                            continue
                        self.stats.providers += 1
                        dials.start_soon(self._dial, provider, reached)
                except BlockmeshError as exc:
                    logger.info("provider lookup for %s failed: %s", cid, exc)
        logger.info("providers of %s: connected to %d", cid, len(reached))
        return len(reached)

    async def _dial(self, provider: Provider, reached: set[str]) -> None:
        peer = provider.peer_id
        if self.host.is_connected(peer):
            reached.add(peer)
            return
        failed = self._failed.get(peer)
        if failed is not None and trio.current_time() < failed[1]:
            self.stats.backed_off += 1
            return
        addrs: tuple[str, ...] = provider.addrs
        try:
            if not addrs:
                with trio.move_on_after(self.dial_timeout):
                    addrs = await self.routing.find_peer(peer) or ()
            for addr in addrs[:MAX_ADDRS]:
                target = addr if "/p2p/" in addr else f"{addr}/p2p/{peer}"
                try:
                    await self.host.connect(target, timeout=self.dial_timeout)
                except BlockmeshError as exc:
                    logger.debug("dial %s failed: %s", target, exc)
                    continue
                self.stats.connected += 1
                reached.add(peer)
                self._failed.pop(peer, None)
                return
        except BlockmeshError as exc:
            logger.info("finding addresses of provider %s failed: %s", peer, exc)
        self.stats.failed_dials += 1
        self._back_off(peer)

    def _back_off(self, peer: str) -> None:
        entry = self._failed.pop(peer, None)
        backoff = entry[0] if entry else Backoff(self._backoff_policy, self._rng)
        if len(self._failed) >= MAX_BACKOFF_PEERS:
            self._failed.popitem(last=False)
        self._failed[peer] = (backoff, trio.current_time() + backoff.next_delay())
