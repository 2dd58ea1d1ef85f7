"""The routing routes, in kubo's shape: `routing/findprovs`, `routing/findpeer`,
`routing/provide` and `stats/dht`, answered by the node's DHT.

A search is bounded by `timeout` seconds (kubo bounds its commands by the request's context);
what was found by then is the answer, and finding nothing is a 404.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import trio

from blockmesh.daemon import fields
from blockmesh.daemon.dispatch import Routes
from blockmesh.daemon.http import HttpError, JsonReply, Reply
from blockmesh.data.net import parse_peer_id
from blockmesh.data.node import Node
from blockmesh.data.routing import records
from blockmesh.data.routing.errors import RecordError
from blockmesh.data.routing.kad.dht import DHT, DHTError, peer_bytes
from blockmesh.errors import NotFound, UnsupportedError

DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 600.0
MAX_PROVIDERS = 1000


def _timeout(body: dict[str, Any]) -> float:
    value = body.get("timeout", DEFAULT_TIMEOUT)
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 0 < value <= MAX_TIMEOUT):
        raise HttpError(400, f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
    return float(value)


class RoutingApi(Routes):
    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.routes.update({
            "routing/findprovs": self.findprovs,
            "routing/findpeer": self.findpeer,
            "routing/provide": self.provide,
            "routing/get": self.get,
            "routing/put": self.put,
            "stats/dht": self.stats_dht,
        })

    def _dht(self) -> DHT:
        if self.node.dht is None:
            raise UnsupportedError("routing is off ([routing] type = \"none\" in the config)")
        return self.node.dht

    async def findprovs(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body)
        limit = fields.optional_int(body, "num")
        limit = 20 if limit is None else limit
        if not 0 < limit <= MAX_PROVIDERS:
            raise HttpError(400, f"num must be between 1 and {MAX_PROVIDERS}")
        dht = self._dht()
        found = []
        with trio.move_on_after(_timeout(body)):
            async for provider in dht.find_providers(cid, limit=limit):
                found.append({"ID": provider.peer_id, "Addrs": list(provider.addrs)})
        if not found:
            raise NotFound(f"no providers of {cid} found")
        return JsonReply({"Providers": found})

    async def findpeer(self, body: dict[str, Any]) -> Reply:
        peer = parse_peer_id(fields.required_text(body, "peer"))
        dht = self._dht()
        addrs = None
        with trio.move_on_after(_timeout(body)):
            addrs = await dht.find_peer(peer)
        if not addrs:
            raise NotFound(f"peer {peer} not found in the DHT")
        return JsonReply({"ID": peer, "Addrs": list(addrs)})

    async def provide(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body)
        if not self.node.repo.blocks.has(cid):
            raise NotFound(f"block {cid} is not in the local repo; add it before providing")
        dht = self._dht()
        limit = _timeout(body)
        told = None
        with trio.move_on_after(limit):
            told = await dht.announce(cid)
        if told is None:
            raise DHTError(f"providing {cid} took longer than {limit:g} s")
        return JsonReply({"CID": str(cid), "Peers": told})

    async def get(self, body: dict[str, Any]) -> Reply:
        key = _record_key(fields.required_text(body, "key"))
        dht = self._dht()
        value = None
        with trio.move_on_after(_timeout(body)):
            value = await dht.get_value(key)
        if value is None:
            raise DHTError(f"no value for {body['key']} within the timeout")
        return JsonReply({"Key": body["key"], "Value": base64.b64encode(value).decode()})

    async def put(self, body: dict[str, Any]) -> Reply:
        key = _record_key(fields.required_text(body, "key"))
        text = body.get("value")
        if not isinstance(text, str) or not 0 < len(text) <= 2 * records.MAX_VALUE_SIZE:
            raise HttpError(400, f"value must be base64 of 1 to {records.MAX_VALUE_SIZE} bytes")
        try:
            value = base64.b64decode(text, validate=True)
        except binascii.Error:
            raise HttpError(400, "value must be base64") from None
        dht = self._dht()
        told = None
        try:
            with trio.move_on_after(_timeout(body)):
                told = await dht.put_value(key, value)
        except RecordError as exc:
            raise HttpError(400, str(exc)) from None
        if told is None:
            raise DHTError(f"putting {body['key']} took longer than the timeout")
        return JsonReply({"Key": body["key"], "Peers": told})

    async def stats_dht(self, body: dict[str, Any]) -> Reply:
        return JsonReply(self._dht().stats())


def _record_key(text: str) -> bytes:
    """kubo's key form: "/pk/<peer id>" or "/ipns/<peer id>" with the peer id in base58 or as
    a libp2p-key CID (`k51…`); the binary id goes on the wire."""
    parts = text.split("/")
    if len(parts) != 3 or parts[0] or parts[1] not in ("pk", "ipns"):
        raise HttpError(400, "key must be /pk/<peer id> or /ipns/<peer id>")
    return f"/{parts[1]}/".encode() + peer_bytes(parts[2])
