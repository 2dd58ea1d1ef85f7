"""The Kademlia DHT over the node's libp2p Host: kubo's dual DHT, LAN and WAN, as thin I/O
around the engines in `table`, `lookup` and `providers`.

Two DHTs run side by side as in kubo (go-libp2p-kad-dht `dual`): the LAN one speaks
`/ipfs/lan/kad/1.0.0` and admits peers reached at private addresses, the WAN one speaks
`/ipfs/kad/1.0.0` and admits peers with public addresses; a peer enters a table only if its
identify lists that protocol, i.e. it serves the DHT. Closer peers a reply names are kept only
with addresses that fit the DHT (go's query filters) and that this node can dial (TCP over IP).

Mode (kubo's `Routing.Type`): `dhtserver` serves both protocols, `dhtclient` serves neither
(it asks, never answers, and no table lists it), `auto` serves the LAN DHT when a listen
address is private or unspecified and the WAN DHT when one is public (kubo asks AutoNAT; a node
that listens on a public address is taken at its word here), and `none` runs no DHT.

Bounds: every RPC has a deadline (`rpc_timeout`), a dial for a query has its own, at most
`max_outbound_per_peer` requests run to one peer, an inbound stream that stays silent for
`inbound_idle_timeout` is closed, and the Host already caps inbound streams per peer. A peer
that sends garbage has its stream reset and nothing else changes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import base58
import multiaddr
import trio

from blockmesh.data.cid import CID
from blockmesh.data.net import Host, NotConnected, Stream, parse_peer_id
from blockmesh.data.routing import records
from blockmesh.data.routing.api import Provider, RoutingError
from blockmesh.data.routing.errors import RecordError
from blockmesh.data.routing.kad.lookup import Lookup
from blockmesh.data.routing.kad.messages import (
    FrameReader,
    KadDecodeError,
    Message,
    MessageType,
    PeerInfo,
    Record,
    frame,
)
from blockmesh.data.routing.kad.providers import MAX_PER_PEER as PROVIDERS_PER_PEER
from blockmesh.data.routing.kad.providers import ProviderStore
from blockmesh.data.routing.kad.rpc import read_message, request
from blockmesh.data.routing.kad.table import (
    LAN,
    WAN,
    Admission,
    K,
    RoutingTable,
    is_private_addr,
    is_public_addr,
    key_of,
)
from blockmesh.data.routing.kad.values import MAX_PER_PEER as VALUES_PER_PEER
from blockmesh.data.routing.kad.values import ValueStore
from blockmesh.errors import BlockmeshError, NotFound, UnsupportedError

logger = logging.getLogger(__name__)

MODES = ("auto", "dhtclient", "dhtserver", "none")
MAX_PROVIDER_KEY = 80  # go-libp2p-kad-dht refuses longer GET_PROVIDERS / ADD_PROVIDER keys
MAX_ADDRS_KEPT = 8
DEFAULT_FIND_PROVIDERS = 20  # kubo `routing findprovs --num-providers`
GET_VALUE_QUORUM = 16  # go-libp2p-kad-dht: valid answers a GET_VALUE lookup waits for


class DHTError(RoutingError):
    """A DHT operation could not be carried out (no peers to ask, every peer failed)."""


@dataclass(frozen=True)
class DHTConfig:
    mode: str = "auto"
    rpc_timeout: float = 10.0
    dial_timeout: float = 5.0
    max_outbound_per_peer: int = 8
    inbound_idle_timeout: float = 60.0
    max_identifies: int = 16  # identify exchanges in flight for table admission
    address_book_size: int = 10_000
    maintenance_interval: float = 60.0
    provider_gc_interval: float = 3600.0  # go-libp2p-kad-dht defaultCleanupInterval (1 h)
    provider_records_per_peer: int = PROVIDERS_PER_PEER  # kubo: no per-peer limit
    values_per_peer: int = VALUES_PER_PEER


@dataclass
class LookupStat:
    kind: str
    network: str
    hops: int
    messages: int
    finish: str


@dataclass
class Network:
    """One of the two DHTs."""

    name: str
    admission: Admission
    table: RoutingTable
    server: bool
    bootstrapped: bool = False

    @property
    def protocol(self) -> str:
        return self.admission.protocol


def server_modes(mode: str, listen_addrs: tuple[str, ...] | list[str]) -> tuple[bool, bool]:
    """(LAN server, WAN server) for a routing mode and the node's listen addresses."""
    if mode not in MODES:
        raise UnsupportedError(f"routing type {mode!r}: use one of {', '.join(MODES)}")
    if mode == "dhtserver":
        return True, True
    if mode != "auto":
        return False, False
    unspecified = any(a.startswith(("/ip4/0.0.0.0/", "/ip6/::/")) for a in listen_addrs)
    lan = unspecified or any(is_private_addr(a) for a in listen_addrs)
    return lan, any(is_public_addr(a) for a in listen_addrs)


#: Peer ids converted between text and bytes, remembered: every request a peer sends names it
#: (kubo's recursive pin of 10,000 blocks sent this node ~1,800 DHT requests, and the base58
#: round trips were a quarter of their cost). Failures are not cached.
_PEER_ID_CACHE = 4096


@functools.lru_cache(maxsize=_PEER_ID_CACHE)
def peer_bytes(peer_id: str) -> bytes:
    return bytes(base58.b58decode(parse_peer_id(peer_id)))


@functools.lru_cache(maxsize=_PEER_ID_CACHE)
def peer_text(raw: bytes) -> str:
    return parse_peer_id(base58.b58encode(raw).decode())


def _dialable(addr: str, admission: Admission) -> bool:
    parts = addr.split("/")
    return (len(parts) >= 5 and parts[1] in ("ip4", "ip6") and parts[3] == "tcp"
            and admission.usable_addr(addr))


def _transport(addr: str) -> str:
    return addr.split("/p2p/")[0]


class DHT:
    """The node's DHT. `run` it in a nursery after the Host is running."""

    def __init__(self, host: Host, config: DHTConfig | None = None) -> None:
        self.host = host
        self.config = config or DHTConfig()
        if self.config.mode == "none":
            raise UnsupportedError("routing type 'none' runs no DHT")
        self.self_id = peer_bytes(host.peer_id)
        self.providers = ProviderStore(max_per_peer=self.config.provider_records_per_peer,
                                       self_id=self.self_id)
        self.values = ValueStore(max_per_peer=self.config.values_per_peer)
        lan_server, wan_server = server_modes(self.config.mode, host.config.listen_addrs)
        self.networks = [
            Network("lan", LAN, RoutingTable(self.self_id), lan_server),
            Network("wan", WAN, RoutingTable(self.self_id), wan_server),
        ]
        self._by_protocol = {n.protocol: n for n in self.networks}
        self._book: OrderedDict[bytes, tuple[str, ...]] = OrderedDict()
        self._outbound: dict[str, int] = {}
        self._identifying: set[str] = set()
        self._identify_slots = trio.Semaphore(self.config.max_identifies)
        self._nursery: trio.Nursery | None = None
        self._bootstrap = trio.Event()
        self.lookups: deque[LookupStat] = deque(maxlen=100)
        #: Told the peer id of every good reply, so that the node's connection manager keeps
        #: the peers the DHT is using (the Node sets it; the DHT itself knows no manager).
        self.peer_answered: Callable[[str], None] = lambda peer: None
        for net in self.networks:
            if net.server:
                host.set_stream_handler([net.protocol], self._serve)

    # -- lifecycle -------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            events = self.host.subscribe()
            nursery.start_soon(self._watch, events)
            nursery.start_soon(self._maintain)
            for peer in self.host.peers():
                self._consider_soon(peer)
            task_status.started()

    def _now(self) -> float:
        return trio.current_time()

    async def _watch(self, events: trio.MemoryReceiveChannel[Any]) -> None:
        while True:
            async with events:
                async for event in events:
                    if event.kind == "connected":
                        self._consider_soon(event.peer_id)
            # Fell behind (the host closed our channel) or the host stopped: reconcile.
            try:
                events = self.host.subscribe()
            except BlockmeshError:
                return
            for peer in self.host.peers():
                self._consider_soon(peer)

    def _consider_soon(self, peer: str) -> None:
        """One task per connected peer not being identified already (so at most one per
        connection the Host allows); `max_identifies` of them talk at a time."""
        if self._nursery is None or peer in self._identifying:
            return
        self._identifying.add(peer)
        self._nursery.start_soon(self._consider, peer)

    async def _consider(self, peer: str) -> None:
        """Identify a newly connected peer and admit it to the tables whose rules it meets."""
        try:
            async with self._identify_slots:
                info = await self.host.identify(peer, timeout=self.config.rpc_timeout)
        except BlockmeshError as exc:
            logger.debug("identify of %s failed: %s", peer, exc)
            return
        finally:
            self._identifying.discard(peer)
        raw = peer_bytes(peer)
        listen = [_transport(a) for a in info.listen_addrs]
        seen = list(listen)
        with contextlib.suppress(BlockmeshError):
            seen += self.host.remote_addrs(peer)
        for net in self.networks:
            if net.admission.admits(info.protocols, seen):
                self._remember(raw, [a for a in listen if _dialable(a, net.admission)])
                was_empty = len(net.table) == 0
                if net.table.add(raw, self._now()) and was_empty:
                    self._bootstrap.set()

    async def _maintain(self) -> None:
        """Bootstrap a table once it has its first peer (a lookup of our own id fills it, as
        go's first refresh does), refresh stale buckets, expire provider records."""
        last_gc = self._now()
        while True:
            with trio.move_on_after(self.config.maintenance_interval):
                await self._bootstrap.wait()
            self._bootstrap = trio.Event()
            now = self._now()
            for net in self.networks:
                if not len(net.table):
                    continue
                if not net.bootstrapped:
                    net.bootstrapped = True
                    await self._closest_peers(net, self.self_id, kind="bootstrap")
                    for cpl in net.table.due_refreshes(now):
                        net.table.refreshed(cpl, now)
                    continue
                for cpl in net.table.due_refreshes(now):
                    await self._closest_peers(net, net.table.random_key_in_bucket(cpl),
                                              kind="refresh")
                    net.table.refreshed(cpl, self._now())
            if now - last_gc >= self.config.provider_gc_interval:
                self.providers.gc(now)
                self.values.gc(now)
                last_gc = now

    # -- addresses -------------------------------------------------------------------------------
    def _remember(self, peer: bytes, addrs: list[str]) -> None:
        if not addrs:
            return
        self._book[peer] = tuple(dict.fromkeys(addrs))[:MAX_ADDRS_KEPT]
        self._book.move_to_end(peer)
        while len(self._book) > self.config.address_book_size:
            self._book.popitem(last=False)

    def _addrs_for(self, peer: bytes, net: Network) -> list[str]:
        if peer == self.self_id:
            return self._own_addrs(net)
        return [a for a in self._book.get(peer, ()) if _dialable(a, net.admission)]

    def _own_addrs(self, net: Network) -> list[str]:
        return [a for a in map(_transport, self.host.addrs()) if _dialable(a, net.admission)]

    def _peer_info(self, peer: bytes, net: Network) -> PeerInfo | None:
        addrs = self._addrs_for(peer, net)
        if not addrs:
            return None
        return PeerInfo(peer, tuple(multiaddr.Multiaddr(a).to_bytes() for a in addrs))

    def _accept_peer(self, info: PeerInfo, net: Network) -> bool:
        """Take a peer named in a reply: keep its usable addresses; True when it can be asked."""
        if info.id == self.self_id:
            return False
        try:
            peer = peer_text(info.id)
        except BlockmeshError:
            return False
        addrs: list[str] = []
        for raw in info.addrs:
            try:
                text = _transport(str(multiaddr.Multiaddr(raw)))
            except Exception:  # the multiaddr library raises many types for bad bytes
                continue
            if _dialable(text, net.admission):
                addrs.append(text)
        self._remember(info.id, addrs)
        return bool(addrs) or self.host.is_connected(peer)

    # -- client ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _slot(self, peer: str) -> Iterator[None]:
        if self._outbound.get(peer, 0) >= self.config.max_outbound_per_peer:
            raise DHTError(f"too many DHT requests in flight to {peer}")
        self._outbound[peer] = self._outbound.get(peer, 0) + 1
        try:
            yield
        finally:
            left = self._outbound[peer] - 1
            if left:
                self._outbound[peer] = left
            else:
                del self._outbound[peer]

    async def _ensure_connected(self, peer: str, raw: bytes, net: Network) -> None:
        if self.host.is_connected(peer):
            return
        addrs = self._addrs_for(raw, net)
        for addr in addrs[:3]:
            try:
                await self.host.connect(f"{addr}/p2p/{peer}", timeout=self.config.dial_timeout)
                return
            except BlockmeshError as exc:
                logger.debug("DHT dial of %s at %s failed: %s", peer, addr, exc)
        raise NotConnected(f"cannot reach DHT peer {peer} ({len(addrs)} addresses)")

    async def _send(self, net: Network, raw: bytes, msg: Message, *,
                    expect_reply: bool = True) -> Message | None:
        """One RPC to a peer; failures count against it in the table and are re-raised."""
        peer = peer_text(raw)
        try:
            with self._slot(peer):
                await self._ensure_connected(peer, raw, net)
                stream = await self.host.new_stream(peer, [net.protocol],
                                                    timeout=self.config.rpc_timeout)
                try:
                    reply = await request(stream, msg, expect_reply=expect_reply,
                                          timeout=self.config.rpc_timeout)
                finally:
                    await stream.close()
        except BlockmeshError:
            net.table.mark_failed(raw)
            raise
        if reply is not None and reply.type != msg.type:
            net.table.mark_failed(raw)
            raise KadDecodeError(f"{peer} answered {msg.type.name} with {reply.type.name}")
        net.table.mark_alive(raw)
        self.peer_answered(peer)
        return reply

    async def _lookup(self, net: Network, key: bytes, msg: Message, kind: str,
                      on_reply: Callable[[bytes, Message, Lookup], None] | None = None,
                      ) -> Lookup:
        """Drive one iterative lookup toward sha256(`key`), sending `msg` to each peer."""
        target = key_of(key)
        lookup = Lookup(target, net.table.nearest(target, K), self_id=self.self_id,
                        timeout=self.config.rpc_timeout + self.config.dial_timeout)
        send, receive = trio.open_memory_channel[tuple[bytes, Message | None]](lookup.alpha)

        async def ask(peer: bytes) -> None:
            try:
                reply = await self._send(net, peer, msg)
            except BlockmeshError as exc:
                logger.debug("DHT %s to %s failed: %s", msg.type.name, peer_text(peer), exc)
                reply = None
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send.send((peer, reply))

        async with trio.open_nursery() as nursery:
            while not lookup.done:
                now = self._now()
                lookup.expire(now)
                for peer in lookup.next_queries(now):
                    nursery.start_soon(ask, peer)
                deadline = lookup.next_deadline()
                if lookup.done or deadline is None:
                    break
                with trio.move_on_at(deadline):
                    peer, reply = await receive.receive()
                    if reply is None:
                        lookup.on_failure(peer)
                        continue
                    closer = [p.id for p in reply.closer_peers if self._accept_peer(p, net)]
                    lookup.on_response(peer, closer)
                    if on_reply is not None:
                        on_reply(peer, reply, lookup)
            nursery.cancel_scope.cancel()
        receive.close()
        self.lookups.append(LookupStat(kind, net.name, lookup.hops, lookup.messages,
                                       lookup.finish_reason or "cancelled"))
        return lookup

    async def _closest_peers(self, net: Network, key: bytes, *, kind: str) -> list[bytes]:
        lookup = await self._lookup(net, key, Message(MessageType.FIND_NODE, key=key), kind)
        return lookup.result()

    def _active(self) -> list[Network]:
        return [net for net in self.networks if len(net.table)]

    # -- content routing -------------------------------------------------------------------------
    def has_peers(self) -> bool:
        """`ContentRouting.has_peers`: some DHT has a peer in its table."""
        return bool(self._active())

    async def provide(self, cid: CID) -> None:
        """`ContentRouting.provide`: see `announce`."""
        await self.announce(cid)

    async def announce(self, cid: CID) -> int:
        """Announce that this node has `cid`: store our own record, then ADD_PROVIDER to the k
        closest peers of each DHT. Returns how many peers took the record."""
        key = cid.multihash
        self.providers.add_own(key, self._now())
        active = self._active()
        if not active:
            raise DHTError("cannot provide: no DHT peers known yet (connect to a DHT server)")
        told = 0
        for net in active:
            closest = await self._closest_peers(net, key, kind="provide")
            me = self._peer_info(self.self_id, net)
            if me is None:
                continue  # no address of ours a peer on this network could dial
            msg = Message(MessageType.ADD_PROVIDER, key=key, provider_peers=(me,))

            async def tell(peer: bytes, msg: Message = msg, net: Network = net) -> None:
                nonlocal told
                try:
                    await self._send(net, peer, msg, expect_reply=False)
                    told += 1
                except BlockmeshError as exc:
                    logger.debug("ADD_PROVIDER to %s failed: %s", peer_text(peer), exc)

            async with trio.open_nursery() as nursery:
                for peer in closest:
                    nursery.start_soon(tell, peer)
        if not told:
            raise DHTError(f"no DHT peer accepted the provider record for {cid}")
        return told

    async def find_providers(self, cid: CID, *, limit: int = DEFAULT_FIND_PROVIDERS,
                             ) -> AsyncIterator[Provider]:
        """(peer id, dialable addresses) of providers of `cid` as they are found, at most
        `limit`: this node's own records first, then a GET_PROVIDERS lookup in each DHT."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if self._nursery is None:
            raise DHTError("the DHT is not running")
        send, receive = trio.open_memory_channel[Provider](limit)
        self._nursery.start_soon(self._providers_into, cid, limit, send)
        async with receive:
            async for found in receive:
                yield found

    async def _providers_into(self, cid: CID, limit: int,
                              send: trio.MemorySendChannel[Provider]) -> None:
        key = cid.multihash
        seen: set[bytes] = set()
        async with send:
            try:
                for peer, _ in self.providers.get(key, self._now()):
                    seen.add(peer)
                    addrs = (self._own_addrs(self.networks[0]) + self._own_addrs(self.networks[1])
                             if peer == self.self_id else list(self._book.get(peer, ())))
                    await send.send(Provider(peer_text(peer), tuple(addrs)))
                    if len(seen) >= limit:
                        return
                for net in self._active():
                    found: list[Provider] = []

                    def on_reply(_from: bytes, reply: Message, lookup: Lookup,
                                 net: Network = net, found: list = found) -> None:
                        for info in reply.provider_peers:
                            if info.id in seen or len(seen) >= limit:
                                continue
                            if self._accept_peer(info, net) or info.id == self.self_id:
                                seen.add(info.id)
                                found.append(Provider(peer_text(info.id),
                                                      tuple(self._addrs_for(info.id, net))))
                        if len(seen) >= limit:
                            lookup.stop()

                    msg = Message(MessageType.GET_PROVIDERS, key=key)
                    await self._lookup(net, key, msg, "find_providers", on_reply)
                    for item in found:
                        await send.send(item)
                    if len(seen) >= limit:
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the caller stopped listening

    async def find_peer(self, peer_id: str) -> tuple[str, ...] | None:
        """Dialable addresses of `peer_id`: known ones if connected, else a FIND_NODE lookup in
        each DHT until a reply names the peer with addresses. None when nobody knows it."""
        raw = peer_bytes(peer_id)
        if raw == self.self_id:
            return tuple(self._own_addrs(self.networks[0]) + self._own_addrs(self.networks[1]))
        if self.host.is_connected(peer_id) and raw in self._book:
            return self._book[raw]
        for net in self._active():
            hit: list[str] = []

            def on_reply(_from: bytes, reply: Message, lookup: Lookup,
                         net: Network = net, hit: list[str] = hit) -> None:
                for info in reply.closer_peers:
                    if info.id == raw and self._addrs_for(raw, net):
                        hit.extend(self._addrs_for(raw, net))
                        lookup.stop()
                        return

            await self._lookup(net, raw, Message(MessageType.FIND_NODE, key=raw), "find_peer",
                               on_reply)
            if hit:
                return tuple(dict.fromkeys(hit))
        return None

    async def put_value(self, key: bytes, value: bytes) -> int:
        """Validate and keep `value` under `key`, then PUT_VALUE it to the k closest peers of
        each DHT; returns how many stored it (each echoes the record back, as go does)."""
        self.values.put_own(key, value, now=self._now(), unix_now=time.time())
        active = self._active()
        if not active:
            raise DHTError("cannot put a value: no DHT peers known yet")
        told = 0
        msg = Message(MessageType.PUT_VALUE, key=key, record=Record(key, value))
        for net in active:
            closest = await self._closest_peers(net, key, kind="put_value")

            async def tell(peer: bytes, net: Network = net) -> None:
                nonlocal told
                try:
                    reply = await self._send(net, peer, msg)
                except BlockmeshError as exc:
                    logger.debug("PUT_VALUE to %s failed: %s", peer_text(peer), exc)
                    return
                if reply is not None and reply.record is not None and reply.record.value == value:
                    told += 1

            async with trio.open_nursery() as nursery:
                for peer in closest:
                    nursery.start_soon(tell, peer)
        if not told:
            raise DHTError("no DHT peer stored the value")
        return told

    async def get_value(self, key: bytes) -> bytes:
        """The best valid value for `key` (`records.select`) among this node's own and those
        a GET_VALUE lookup in each DHT returns, up to 16 valid answers. Peers that answered
        with a worse record are sent the best one in the background, and an older local copy
        is replaced, as go-libp2p-kad-dht does, so that a record republished to only some
        holders converges."""
        records.split_key(key)
        found: list[bytes] = []
        answers: list[tuple[Network, bytes, bytes]] = []  # (network, peer, valid value)
        local = self.values.get(key, now=self._now(), unix_now=time.time())
        if local is not None:
            found.append(local)

        for net in self._active():
            def on_reply(peer: bytes, reply: Message, lookup: Lookup, net: Network = net) -> None:
                record = reply.record
                if record is None or record.key not in (key, b""):
                    return
                try:
                    records.validate(key, record.value, time.time())
                except RecordError as exc:
                    logger.info("invalid value for %r from %s: %s", key, peer_text(peer), exc)
                    return
                found.append(record.value)
                answers.append((net, peer, record.value))
                if len(found) >= GET_VALUE_QUORUM:
                    lookup.stop()

            await self._lookup(net, key, Message(MessageType.GET_VALUE, key=key), "get_value",
                               on_reply)
        if not found:
            raise NotFound(f"no value for {key!r} in the DHT")
        best = found[records.select(key, found)]
        if local is not None and local != best:
            source = next(peer for _, peer, value in answers if value == best)
            with contextlib.suppress(RecordError):
                self.values.put(key, best, sender=source, now=self._now(),
                                unix_now=time.time())
        stale = [(net, peer) for net, peer, value in answers if value != best]
        if stale and self._nursery is not None:
            self._nursery.start_soon(self._correct, key, best, stale)
        return best

    async def _correct(self, key: bytes, best: bytes,
                       peers: list[tuple[Network, bytes]]) -> None:
        """PUT_VALUE `best` to peers that answered a GET_VALUE with a worse record; each RPC
        is bounded by the usual timeouts and a refusal only logs."""
        msg = Message(MessageType.PUT_VALUE, key=key, record=Record(key, best))

        async def tell(net: Network, peer: bytes) -> None:
            try:
                await self._send(net, peer, msg)
            except BlockmeshError as exc:
                logger.debug("correcting %s failed: %s", peer_text(peer), exc)

        unique = {(net.name, peer): (net, peer) for net, peer in peers}
        async with trio.open_nursery() as nursery:
            for net, peer in unique.values():
                nursery.start_soon(tell, net, peer)

    # -- server ----------------------------------------------------------------------------------
    async def _serve(self, stream: Stream) -> None:
        net = self._by_protocol.get(stream.protocol)
        if net is None:
            await stream.reset()
            return
        reader = FrameReader()
        try:
            while True:
                msg = None
                with trio.move_on_after(self.config.inbound_idle_timeout):
                    msg = await read_message(stream, reader)
                if msg is None:
                    return
                reply = self.handle(net, stream.peer_id, msg)
                if reply is None:
                    continue
                with trio.move_on_after(self.config.rpc_timeout) as scope:
                    await stream.write(frame(reply))
                if scope.cancelled_caught:
                    await stream.reset()
                    return
        except BlockmeshError as exc:
            logger.info("DHT stream from %s dropped: %s", stream.peer_id, exc)
            await stream.reset()

    def handle(self, net: Network, sender: str, msg: Message) -> Message | None:
        """Answer one request from `sender` (no I/O: tables and stores only)."""
        now = self._now()
        sender_raw = peer_bytes(sender)
        if msg.type is MessageType.PING:
            return Message(MessageType.PING)
        if msg.type is MessageType.PUT_VALUE:
            record = msg.record
            if record is None or record.key != msg.key:
                raise KadDecodeError("PUT_VALUE without a record for its key")
            self.values.put(msg.key, record.value, sender=sender_raw, now=now,
                            unix_now=time.time())
            return Message(MessageType.PUT_VALUE, key=msg.key, record=record)
        if (msg.type in (MessageType.GET_PROVIDERS, MessageType.ADD_PROVIDER)
                and not 0 < len(msg.key) <= MAX_PROVIDER_KEY):
            raise KadDecodeError(f"provider key of {len(msg.key)} bytes")
        if msg.type is MessageType.ADD_PROVIDER:
            for info in msg.provider_peers:
                if info.id == sender_raw:  # a peer may only announce itself (as go checks)
                    self._accept_peer(info, net)
                    if not self.providers.add(msg.key, info.id, (), now):
                        logger.debug("provider record from %s refused (store or quota full)",
                                     sender)
            return None
        closer = self._closer(net, msg.key, sender_raw)
        if msg.type is MessageType.GET_PROVIDERS:
            providers = [p for peer, _ in self.providers.get(msg.key, now)
                         if (p := self._peer_info(peer, net)) is not None]
            return Message(MessageType.GET_PROVIDERS, key=msg.key, closer_peers=closer,
                           provider_peers=tuple(providers[:K]))
        if msg.type is MessageType.GET_VALUE:
            value = self.values.get(msg.key, now=now, unix_now=time.time())
            return Message(MessageType.GET_VALUE, key=msg.key, closer_peers=closer,
                           record=None if value is None else Record(msg.key, value))
        return Message(msg.type, key=msg.key, closer_peers=closer)  # FIND_NODE

    def _closer(self, net: Network, key: bytes, requester: bytes) -> tuple[PeerInfo, ...]:
        if key == self.self_id:
            me = self._peer_info(self.self_id, net)
            return (me,) if me is not None else ()
        peers = [p for p in net.table.nearest(key_of(key), K + 1) if p != requester][:K]
        # A connected peer that was looked up by id is named even outside the table (a client).
        if key in self._book and key not in peers and key != requester:
            with contextlib.suppress(BlockmeshError):
                if self.host.is_connected(peer_text(key)):
                    peers.insert(0, key)
        infos = [info for p in peers if (info := self._peer_info(p, net)) is not None]
        return tuple(infos[:K])

    # -- reporting -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for net in self.networks:
            out[net.name] = {
                "protocol": net.protocol,
                "mode": "server" if net.server else "client",
                "peers": len(net.table),
                "buckets": {str(cpl): size for cpl, size in net.table.bucket_sizes().items()},
                "table": sorted(peer_text(p) for p in net.table.peers()),
            }
        out["providers"] = {"records": len(self.providers), "own": self.providers.own(),
                            "keys": self.providers.keys(),
                            "refused_full": self.providers.refused_full,
                            "refused_peer_quota": self.providers.refused_peer_quota}
        out["values"] = {"records": len(self.values), "own": self.values.own(),
                         "refused_full": self.values.refused_full,
                         "refused_peer_quota": self.values.refused_peer_quota}
        out["lookups"] = [stat.__dict__ for stat in self.lookups]
        return out


