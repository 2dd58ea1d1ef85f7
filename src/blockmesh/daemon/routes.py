"""The daemon's control API: `POST /api/v0/<command>` with a JSON object, answered from the
running Node.

The routes that need only the repo (add, cat, get, ls, block, dag, pin, repo) are defined once
in `repo_routes.py`, which the CLI also runs in-process when no daemon runs; here they are
served on the node's repo, with their new blocks announced to peers. The routes below need the
network. `fetch` streams NDJSON progress lines so that a client can bound its wait by silence
rather than by the length of the whole transfer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import trio

from blockmesh import __version__
from blockmesh.daemon import fields
from blockmesh.daemon.dispatch import Routes, base_status
from blockmesh.daemon.http import HttpError, JsonReply, Reply, Send, StreamReply
from blockmesh.daemon.repo_routes import RepoApi
from blockmesh.data.net import NetError, parse_peer_addr, parse_peer_id
from blockmesh.data.node import FetchStalled, Node
from blockmesh.errors import BlockmeshError, NotFound, UnsupportedError

logger = logging.getLogger(__name__)

# While a fetch runs, a progress line goes out at least this often (the client's idle bound).
PROGRESS_INTERVAL = 1.0
MAX_STALL_TIMEOUT = 3600.0


def _status(exc: BlockmeshError) -> int:
    if isinstance(exc, FetchStalled):
        return 504
    if isinstance(exc, NetError):
        return 502
    return base_status(exc)


def _stall_timeout(body: dict[str, Any], default: float) -> float:
    value = body.get("stall_timeout", default)
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 0 < value <= MAX_STALL_TIMEOUT):
        raise HttpError(400, f"stall_timeout must be a number of seconds in (0, "
                             f"{MAX_STALL_TIMEOUT:g}]")
    return float(value)


class Api(Routes):
    """Every route of the control API over one Node: the repo's routes and the network's."""

    def __init__(self, node: Node, *, default_stall_timeout: float) -> None:
        super().__init__()
        self.node = node
        self.default_stall_timeout = default_stall_timeout
        self.gateway: str | None = None  # the HTTP gateway's multiaddr once it listens
        self._fetches = 0  # running fetches, whose blocks are not pinned yet
        self._repo_api = RepoApi(node.repo, announce=node.announce,
                                 provide=node.provide_roots, gc_waits=False)
        self.routes.update(self._repo_api.routes)
        self.routes.update({
            "id": self.id,
            "swarm/connect": self.swarm_connect,
            "swarm/peers": self.swarm_peers,
            "swarm/disconnect": self.swarm_disconnect,
            "bitswap/stat": self.bitswap_stat,
            "bitswap/wantlist": self.bitswap_wantlist,
            "bitswap/ledger": self.bitswap_ledger,
            "network/info": self.network_info,
            "fetch": self.fetch,
            "repo/gc": self.repo_gc,
        })

    def status(self, exc: BlockmeshError) -> int:
        return _status(exc)

    # -- identity and peers ----------------------------------------------------------------------
    async def id(self, body: dict[str, Any]) -> Reply:
        return JsonReply({"ID": self.node.peer_id, "Addresses": self.node.addrs(),
                          "Gateway": self.gateway, "AgentVersion": f"blockmesh/{__version__}",
                          "Protocols": sorted(self.node.host.protocols())})

    async def swarm_connect(self, body: dict[str, Any]) -> Reply:
        addr = fields.required_text(body, "addr")
        return JsonReply({"Peer": await self.node.connect(addr)})

    async def swarm_peers(self, body: dict[str, Any]) -> Reply:
        return JsonReply({"Peers": [{"Peer": p.id, "Addr": p.address}
                                    for p in self.node.peers()]})

    async def swarm_disconnect(self, body: dict[str, Any]) -> Reply:
        text = fields.required_text(body, "peer")
        peer = parse_peer_addr(text).peer_id if text.startswith("/") else parse_peer_id(text)
        if peer not in self.node.host.peers():
            raise NotFound(f"not connected to {peer}")
        await self.node.disconnect(peer)
        return JsonReply({"Peer": peer})

    # -- bitswap ---------------------------------------------------------------------------------
    async def bitswap_stat(self, body: dict[str, Any]) -> Reply:
        return JsonReply(self.node.stats())

    async def bitswap_wantlist(self, body: dict[str, Any]) -> Reply:
        peer = fields.text(body, "peer", required=False)
        return JsonReply({"Keys": self.node.wantlist(None if peer is None else
                                                     parse_peer_id(peer))})

    async def bitswap_ledger(self, body: dict[str, Any]) -> Reply:
        text = fields.required_text(body, "peer")
        peer = parse_peer_id(text)
        ledger = self.node.ledger(peer)
        if ledger is None:
            raise NotFound(f"no Bitswap ledger for {peer}: no exchange with it yet")
        return JsonReply(ledger)

    async def network_info(self, body: dict[str, Any]) -> Reply:
        return JsonReply(self.node.network_info())

    # -- content ------------------------------------------------------------------------------
    async def fetch(self, body: dict[str, Any]) -> Reply:
        root = fields.cid(body)
        stall = _stall_timeout(body, self.default_stall_timeout)

        async def produce(send: Send) -> None:
            outcome: dict[str, Any] = {}
            done = trio.Event()
            start = self.node.stats()["blocks_received"]
            assert isinstance(start, int)

            async def run() -> None:
                self._fetches += 1
                try:
                    outcome["Fetched"] = await self.node.fetch(root, stall_timeout=stall)
                except BlockmeshError as exc:
                    outcome["Error"] = " ".join(str(exc).split())
                    outcome["Status"] = _status(exc)
                finally:
                    self._fetches -= 1
                    done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(run)
                while not done.is_set():
                    with trio.move_on_after(PROGRESS_INTERVAL):
                        await done.wait()
                    if not done.is_set():
                        now = self.node.stats()["blocks_received"]
                        assert isinstance(now, int)
                        await send(_line({"Progress": now - start}))
            await send(_line(outcome))

        return StreamReply(produce, "application/x-ndjson")

    async def repo_gc(self, body: dict[str, Any]) -> Reply:
        """The repo's GC, refused while a fetch runs: what it has fetched is not pinned yet."""
        if self._fetches:
            raise UnsupportedError("the daemon is fetching; run `repo gc` again when it is done")
        return await self._repo_api.repo_gc(body)


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode() + b"\n"
