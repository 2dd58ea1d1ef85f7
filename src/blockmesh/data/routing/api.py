"""The content-routing interface the node and daemon depend on.

Kept deliberately small: providing a CID, finding who provides one, and finding a peer's
addresses. The DHT (``routing/kad``) implements it; tests may implement it over a dict of real
peers. Nothing in the data plane imports a concrete router.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from blockmesh.data.cid import CID
from blockmesh.data.routing.errors import RoutingError

__all__ = ["ContentRouting", "Provider", "RoutingError"]


@dataclass(frozen=True, slots=True)
class Provider:
    """A peer that says it has some content, with the addresses we know for it (may be empty)."""

    peer_id: str
    addrs: tuple[str, ...] = ()


@runtime_checkable
class ContentRouting(Protocol):
    """Announce and find content and peers."""

    def has_peers(self) -> bool:
        """Whether anyone could take an announcement now (a DHT with an empty table cannot),
        so callers skip whole rounds instead of failing once per CID."""
        ...

    async def provide(self, cid: CID) -> None:
        """Announce that this node can serve ``cid``; raises RoutingError if nobody took it."""
        ...

    def find_providers(self, cid: CID, *, limit: int = 20) -> AsyncIterator[Provider]:
        """Yield up to ``limit`` distinct providers of ``cid`` as they are found."""
        ...

    async def find_peer(self, peer_id: str) -> tuple[str, ...] | None:
        """Return the known multiaddrs of ``peer_id`` (base58 string), or None if not found."""
        ...
