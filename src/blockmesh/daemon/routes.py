"""The control API: `POST /api/v0/<command>` with a JSON object, answered from the running Node.

Routes that need the network (`fetch`) stream NDJSON progress lines so that a client can bound
its wait by silence rather than by the length of the whole transfer; `cat` and `block/get`
stream bytes from the repo. Expected failures become `{"error": …}` with a status that says
whose fault it was (400 bad input, 404 absent, 409 state, 504 stalled, 502 network).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

from blockmesh import __version__
from blockmesh.daemon.http import HttpError, JsonReply, Reply, Send, StreamReply, error_reply
from blockmesh.daemon.imports import import_options
from blockmesh.data.cid import CID
from blockmesh.data.dag import exporter
from blockmesh.data.net import NetError, parse_peer_addr, parse_peer_id
from blockmesh.data.node import FetchStalled, Node
from blockmesh.errors import BlockmeshError, DecodeError, Forbidden, NotFound, UnsupportedError

logger = logging.getLogger(__name__)

PREFIX = "/api/v0/"
# While a fetch runs, a progress line goes out at least this often (the client's idle bound).
PROGRESS_INTERVAL = 1.0
STREAM_CHUNK = 256 << 10
MAX_STALL_TIMEOUT = 3600.0
MAX_ADD_PATHS = 1024

Route = Callable[[dict[str, Any]], Awaitable[Reply]]


def _status(exc: BlockmeshError) -> int:
    if isinstance(exc, DecodeError):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, FetchStalled):
        return 504
    if isinstance(exc, NetError):
        return 502
    if isinstance(exc, UnsupportedError | exporter.ExportError):
        return 409
    return 500


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise HttpError(400, f"field {key!r} must be a non-empty string")
    return value


def _cid(body: dict[str, Any]) -> CID:
    text = _text(body, "cid")
    assert text is not None
    return CID.parse(text)


def _flag(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise HttpError(400, f"field {key!r} must be true or false")
    return value


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise HttpError(400, f"field {key!r} must be an integer")
    return value


def _stall_timeout(body: dict[str, Any], default: float) -> float:
    value = body.get("stall_timeout", default)
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 0 < value <= MAX_STALL_TIMEOUT):
        raise HttpError(400, f"stall_timeout must be a number of seconds in (0, "
                             f"{MAX_STALL_TIMEOUT:g}]")
    return float(value)


def _absolute(body: dict[str, Any], key: str) -> Path:
    text = _text(body, key)
    assert text is not None
    path = Path(text)
    if not path.is_absolute():
        raise HttpError(400, f"field {key!r} must be an absolute path (the daemon has its own "
                             "working directory)")
    return path


class Api:
    """Every route of the control API over one Node."""

    def __init__(self, node: Node, *, default_stall_timeout: float) -> None:
        self.node = node
        self.default_stall_timeout = default_stall_timeout
        self.routes: dict[str, Route] = {
            "id": self.id,
            "swarm/connect": self.swarm_connect,
            "swarm/peers": self.swarm_peers,
            "swarm/disconnect": self.swarm_disconnect,
            "bitswap/stat": self.bitswap_stat,
            "bitswap/wantlist": self.bitswap_wantlist,
            "bitswap/ledger": self.bitswap_ledger,
            "network/info": self.network_info,
            "add": self.add,
            "fetch": self.fetch,
            "cat": self.cat,
            "get": self.get,
            "ls": self.ls,
            "block/get": self.block_get,
            "block/stat": self.block_stat,
            "pin/ls": self.pin_ls,
        }

    async def handle(self, path: str, body: dict[str, Any]) -> Reply:
        route = self.routes.get(path[len(PREFIX):]) if path.startswith(PREFIX) else None
        if route is None:
            return error_reply(404, f"no API route {path}")
        try:
            return await route(body)
        except BlockmeshError as exc:
            return error_reply(_status(exc), str(exc))
        except OSError as exc:
            return error_reply(500, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))

    # -- identity and peers ----------------------------------------------------------------------
    async def id(self, body: dict[str, Any]) -> Reply:
        return JsonReply({"ID": self.node.peer_id, "Addresses": self.node.addrs(),
                          "AgentVersion": f"blockmesh/{__version__}",
                          "Protocols": sorted(self.node.host.protocols())})

    async def swarm_connect(self, body: dict[str, Any]) -> Reply:
        addr = _text(body, "addr")
        assert addr is not None
        return JsonReply({"Peer": await self.node.connect(addr)})

    async def swarm_peers(self, body: dict[str, Any]) -> Reply:
        return JsonReply({"Peers": [{"Peer": p.id, "Addr": p.address}
                                    for p in self.node.peers()]})

    async def swarm_disconnect(self, body: dict[str, Any]) -> Reply:
        text = _text(body, "peer")
        assert text is not None
        peer = parse_peer_addr(text).peer_id if text.startswith("/") else parse_peer_id(text)
        if peer not in self.node.host.peers():
            raise NotFound(f"not connected to {peer}")
        await self.node.disconnect(peer)
        return JsonReply({"Peer": peer})

    # -- bitswap ---------------------------------------------------------------------------------
    async def bitswap_stat(self, body: dict[str, Any]) -> Reply:
        return JsonReply(self.node.stats())

    async def bitswap_wantlist(self, body: dict[str, Any]) -> Reply:
        peer = _text(body, "peer", required=False)
        return JsonReply({"Keys": self.node.wantlist(None if peer is None else
                                                     parse_peer_id(peer))})

    async def bitswap_ledger(self, body: dict[str, Any]) -> Reply:
        text = _text(body, "peer")
        assert text is not None
        peer = parse_peer_id(text)
        ledger = self.node.ledger(peer)
        if ledger is None:
            raise NotFound(f"no Bitswap ledger for {peer}: no exchange with it yet")
        return JsonReply(ledger)

    async def network_info(self, body: dict[str, Any]) -> Reply:
        return JsonReply(self.node.network_info())

    # -- content ---------------------------------------------------------------------------------
    async def add(self, body: dict[str, Any]) -> Reply:
        paths = body.get("paths")
        if (not isinstance(paths, list) or not 0 < len(paths) <= MAX_ADD_PATHS
                or not all(isinstance(p, str) and os.path.isabs(p) for p in paths)):
            raise HttpError(400, f"paths must be a list of 1 to {MAX_ADD_PATHS} absolute paths")
        opts = import_options(
            self.node.repo.config.imports, cid_version=_optional_int(body, "cid_version"),
            raw_leaves=body.get("raw_leaves") if body.get("raw_leaves") is None
            else _flag(body, "raw_leaves"),
            chunker=_text(body, "chunker", required=False), trickle=_flag(body, "trickle"),
            hash_name=_text(body, "hash", required=False), hidden=_flag(body, "hidden"))
        recursive, pin = _flag(body, "recursive"), _flag(body, "pin", True)
        results = []
        for path in paths:
            for item in self.node.add_path(path, opts, recursive=recursive, pin=pin):
                results.append({"Name": item.path, "Hash": str(item.cid), "Size": item.size})
        return JsonReply(results)

    async def fetch(self, body: dict[str, Any]) -> Reply:
        root = _cid(body)
        stall = _stall_timeout(body, self.default_stall_timeout)

        async def produce(send: Send) -> None:
            outcome: dict[str, Any] = {}
            done = trio.Event()
            start = self.node.stats()["blocks_received"]
            assert isinstance(start, int)

            async def run() -> None:
                try:
                    outcome["Fetched"] = await self.node.fetch(root, stall_timeout=stall)
                except BlockmeshError as exc:
                    outcome["Error"] = " ".join(str(exc).split())
                    outcome["Status"] = _status(exc)
                finally:
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

    async def cat(self, body: dict[str, Any]) -> Reply:
        cid = _cid(body)
        chunks = exporter.read_file(self.node.repo.blocks.get, cid)
        first = next(chunks, b"")  # a missing root or a non-file fails here, before the 200

        async def produce(send: Send) -> None:
            await send(first)
            for chunk in chunks:
                for start in range(0, len(chunk), STREAM_CHUNK):
                    await send(chunk[start:start + STREAM_CHUNK])

        return StreamReply(produce)

    async def get(self, body: dict[str, Any]) -> Reply:
        cid, dest = _cid(body), _absolute(body, "dest")
        final = exporter.write_tree(self.node.repo.blocks.get, cid, dest)
        return JsonReply({"Path": str(final)})

    async def ls(self, body: dict[str, Any]) -> Reply:
        entries = exporter.list_directory(self.node.repo.blocks.get, _cid(body))
        return JsonReply([{"Name": e.name, "Hash": str(e.cid), "Size": e.size, "Type": e.type}
                          for e in entries])

    async def block_get(self, body: dict[str, Any]) -> Reply:
        data = self.node.repo.blocks.get(_cid(body))

        async def produce(send: Send) -> None:
            await send(data)

        return StreamReply(produce)

    async def block_stat(self, body: dict[str, Any]) -> Reply:
        cid = _cid(body)
        return JsonReply({"Key": str(cid), "Size": self.node.repo.blocks.size(cid)})

    async def pin_ls(self, body: dict[str, Any]) -> Reply:
        kind = body.get("type", "all")
        if kind not in ("all", "recursive", "direct"):
            raise HttpError(400, "type must be all, recursive or direct")
        pins = self.node.repo.pins.list(None if kind == "all" else kind)
        return JsonReply({"Keys": {str(cid): {"Type": k} for cid, k in pins}})


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode() + b"\n"
