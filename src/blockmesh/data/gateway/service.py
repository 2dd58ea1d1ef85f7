"""Starting the gateway inside the daemon: a few lines the daemon's service calls.

The gateway is a convenience beside the node, so an address that is taken (several daemons on
one machine all default to kubo's 8080) does not stop the daemon: it says so in its banner, logs
a warning, and `blockmesh id` reports no gateway. A malformed address is an error, as any bad
config value is (a read-ahead under 1 MiB too).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from blockmesh.data.gateway.address import listen_multiaddr, parse_listen
from blockmesh.data.gateway.handler import Gateway
from blockmesh.data.gateway.server import GatewayServer
from blockmesh.data.store.config import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from blockmesh.data.node import Node
    from blockmesh.data.store.repo import Repo

logger = logging.getLogger(__name__)


async def start_gateway(nursery: trio.Nursery, repo: Repo, node: Node, listen: str,
                        registry: CollectorRegistry | None = None) -> tuple[str | None, str]:
    """(the bound multiaddr or None, the banner line), the server running in `nursery`."""
    if not listen:
        return None, "Gateway server disabled ([gateway] listen is empty)"
    host, port = parse_listen(listen)
    config = repo.config.gateway
    if config.read_ahead_mib < 1:
        raise ConfigError("config gateway.read_ahead_mib must be at least 1")
    server = GatewayServer(Gateway(repo.blocks, node, timeout=config.timeout,
                                   read_ahead=config.read_ahead_mib << 20), registry=registry)
    try:
        bound = await nursery.start(server.serve, host, port)
    except OSError as exc:
        logger.warning("gateway not started on %s: %s", listen, exc)
        return None, f"Gateway server not started on {listen}: {exc.strerror or exc}"
    address = listen_multiaddr(host, bound)
    return address, f"Gateway server listening on {address}"
