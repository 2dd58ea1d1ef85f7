"""A real, in-process ContentRouting for tests: a shared directory of who provides what.

It is a test double of the routing *interface* only: the peers it names and their addresses
are real running nodes, and whatever a test fetches through it travels over real Bitswap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import trio

from blockmesh.data.cid import CID
from blockmesh.data.routing.api import Provider, RoutingError


@dataclass
class Directory:
    """What every DictRouting sharing it knows: providers by multihash, addresses by peer."""

    providers: dict[bytes, list[str]] = field(default_factory=dict)
    addrs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    changed: trio.Event = field(default_factory=trio.Event)

    def wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


class DictRouting:
    """The routing of one node (`peer_id`, `addrs`) over a shared Directory."""

    def __init__(self, directory: Directory, peer_id: str, addrs: tuple[str, ...],
                 *, fail_provide: bool = False) -> None:
        self.directory = directory
        self.peer_id = peer_id
        self.fail_provide = fail_provide
        self.provided: list[CID] = []
        self.lookups: list[CID] = []
        directory.addrs[peer_id] = addrs

    def has_peers(self) -> bool:
        return any(peer != self.peer_id for peer in self.directory.addrs)

    async def provide(self, cid: CID) -> None:
        await trio.lowlevel.checkpoint()
        if self.fail_provide:
            raise RoutingError("no peers took the record")
        self.provided.append(cid)
        peers = self.directory.providers.setdefault(cid.multihash, [])
        if self.peer_id not in peers:
            peers.append(self.peer_id)
        self.directory.wake()

    async def find_providers(self, cid: CID, *, limit: int = 20) -> AsyncIterator[Provider]:
        self.lookups.append(cid)
        for peer in self.directory.providers.get(cid.multihash, [])[:limit]:
            await trio.lowlevel.checkpoint()
            yield Provider(peer, self.directory.addrs.get(peer, ()))

    async def find_peer(self, peer_id: str) -> tuple[str, ...] | None:
        await trio.lowlevel.checkpoint()
        return self.directory.addrs.get(peer_id)
