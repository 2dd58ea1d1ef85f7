"""The libp2p host of the data plane: the one place blockmesh touches py-libp2p (0.8.1, trio).

What it speaks: TCP; Noise only (py-libp2p's default would also offer plaintext, secio and TLS,
so the security options are passed explicitly); Yamux, with mplex as the fallback muxer;
identify (`/ipfs/id/1.0.0`, advertising every protocol with a handler here) and ping
(`/ipfs/ping/1.0.0`) answered by py-libp2p's own handlers. Peer ids, protocols and addresses
cross this boundary as plain strings, so no other module imports py-libp2p.

Workarounds for py-libp2p 0.8.1, found by reading its source and measured on loopback:

* `BasicHost.connect` → `Swarm.dial_peer` starts each address's dial and then waits a fixed
  250 ms "happy eyeballs" delay before looking at the result, even when the dial succeeded
  long before: every connect took ~254 ms. `connect` calls `Swarm.dial_addr` directly
  (~10-20 ms on loopback, Noise and Yamux included). `dial_peer` also blacklists a peer for
  60 s after one failed dial (its "negative cache"); `dial_addr` does not.
* Each failed dial is retried 3 times with 0.1/0.2/0.4 s backoff inside the swarm, so a refused
  connection took 0.7 s to report. Retries are switched off (`RetryConfig(max_retries=0)`):
  the caller owns retry policy and its deadline.
* The swarm's auto-connector redials every peer in its peerstore while the node has fewer than
  50 connections (every 10 s, and after every disconnect once a 60 s back-off expires): two
  bare py-libp2p hosts were connected again 69 s after `disconnect`. It is replaced by one that
  never dials, so a disconnect stays a disconnect.
* `BasicHost.new_stream` to a peer without a connection silently dials it. `new_stream` here
  raises `NotConnected` instead: a Bitswap reply must not resurrect a connection.
* A stream handler that raises propagates into the connection's nursery, and a handler that
  returns leaves the stream open. Handlers here are wrapped: an exception resets the stream
  and is logged, and the stream is closed when the handler returns.
* The swarm may report "disconnected" for a connection it never reported as connected (one
  refused at registration over the connection cap). Connection events are therefore counted per
  connection object: `connected` fires on a peer's first live connection, `disconnected` when
  its last one closes. A closing connection sleeps 100 ms before the swarm reports it.
* Yamux is our own (`data/net/yamux/`: an engine without I/O and a trio adapter), in place of
  py-libp2p's, whose per-frame locks and reads, 10 ms polling of a shut send window, one window
  update per read and over-credited windows (17 MiB against the 16 MiB maximum, which broke
  100 MiB fetches from Helia) cost both CPU and round trips. py-libp2p's muxer negotiation
  constructs the class it imported for `/yamux/1.0.0` whatever the muxer options say, so the
  name is replaced in that module.
* Stopping py-libp2p's host cancels its swarm service without closing the connections this
  node dialled: their sockets stayed open in the process and the peer saw a stopped node as
  still connected. `run` closes the swarm's connections itself before leaving.
* Filters (`data/connectivity/filters.py`) are enforced here: a dial is refused before any
  packet leaves; an accepted connection from a denied address is closed by py-libp2p's
  connection gate, which this host replaces, before the security handshake; a denied peer id
  fails the Noise upgrade in either direction (`_GatedNoise`), so it is never registered.
* The swarm announces every stream opened and closed to each registered notifee, each call in
  a task of its own (six tasks per stream with the three notifees here). None of them acts on
  stream events (py-libp2p's tag store and identify notifees return at once, and so does
  ours), and boxo's server opens a stream for every reply it sends, so a 100 MiB fetch from
  kubo spawned ~2,500 tasks for nothing: stream events are not fanned out (connection and
  listen events are; the swarm's own resource accounting on a stream's close still runs).
* Inbound protocol negotiation on our Yamux streams is `multistream.Listener` (one read of
  what is buffered, one write of the whole answer) in place of py-libp2p's listener, which read
  every message a varint byte at a time through three layers and wrote its header and its
  answer apart; boxo opens a stream per reply, so this ran ~400 times per 100 MiB fetched
  from kubo. Mplex streams keep py-libp2p's listener.
* py-libp2p cuts its loggers off from the logging tree at import; they are reattached so the
  application's logging configuration applies to them (it logs ordinary closes at ERROR).

Bounds (all in `NetConfig`): dial, stream-open, negotiation, ping, identify and close timeouts;
per-read size; identify reply size; inbound streams per peer; connections in total and per peer;
queued connection events per subscriber.
"""

from __future__ import annotations

import errno
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import (
    IHost,
    IMultiselectCommunicator,
    INetConn,
    INetStream,
    INetwork,
    INotifee,
    IRawConnection,
    ISecureConn,
)
from libp2p.crypto.keys import KeyPair, PrivateKey
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import StreamHandlerFn, TProtocol
from libp2p.host.ping import ID as LIBP2P_PING_ID
from libp2p.network.auto_connector import AutoConnector
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.connection_gate import ConnectionGate
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError
from libp2p.protocol_muxer.exceptions import MultiselectError
from libp2p.protocol_muxer.multiselect import DEFAULT_NEGOTIATE_TIMEOUT, Multiselect
from libp2p.security.exceptions import HandshakeFailure
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer import muxer_multistream as libp2p_muxer_multistream
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID

from blockmesh.data.connectivity.filters import Filters
from blockmesh.data.net.addrs import parse_multiaddr, parse_peer_addr, to_libp2p_id
from blockmesh.data.net.bandwidth import Bandwidth
from blockmesh.data.net.config import DEFAULT_NET_CONFIG, NetConfig
from blockmesh.data.net.errors import (
    DialError,
    DialFiltered,
    DialTimeout,
    NetError,
    NotConnected,
    PingTimeout,
    ProtocolViolation,
    StreamError,
    StreamOpenError,
)
from blockmesh.data.net.identify import IDENTIFY_PROTOCOL, IdentifyInfo, decode_identify
from blockmesh.data.net.identity import Identity
from blockmesh.data.net.multistream import MAX_MESSAGE, Listener, MultistreamError
from blockmesh.data.net.stream import Stream
from blockmesh.data.net.yamux.trio_muxer import TrioYamuxStream, YamuxConnection

logger = logging.getLogger(__name__)

# py-libp2p's muxer negotiation builds this name for /yamux/1.0.0 (see the module docstring).
libp2p_muxer_multistream.Yamux = YamuxConnection  # type: ignore[misc]

# py-libp2p detaches its loggers from the tree on import (propagate off, no handler), so its
# warnings bypass whatever logging the application configured; reattach them.
logging.getLogger("libp2p").propagate = True

PING_PROTOCOL = str(LIBP2P_PING_ID)
PING_SIZE = 32

StreamHandler = Callable[[Stream], Awaitable[None]]


@dataclass(frozen=True)
class PeerEvent:
    """A peer's first connection opened (`connected`) or its last one closed."""

    kind: Literal["connected", "disconnected"]
    peer_id: str


class _InertAutoConnector(AutoConnector):
    """The swarm's auto-connector with dialing removed (see the module docstring)."""

    async def maybe_connect(self) -> None:
        return None


class _FilterGate(ConnectionGate):
    """py-libp2p's connection gate, asked with the remote address of every accepted connection
    before its security handshake: answers from the host's filters instead of its own lists."""

    def __init__(self, host: Host) -> None:
        super().__init__()
        self._host = host

    async def is_allowed(self, remote_addr: multiaddr.Multiaddr) -> bool:
        reason = self._host.filters.addr_denied(str(remote_addr))
        if reason is not None:
            self._host._note_filtered(f"inbound from {remote_addr}: {reason}")
        return reason is None

    def is_in_allow_list(self, remote_addr: multiaddr.Multiaddr) -> bool:
        return False  # nothing is exempt from py-libp2p's own pruning at max_connections


class _GatedNoise(NoiseTransport):
    """Noise that refuses a peer the filters deny as soon as the handshake proves its id,
    before any muxer runs over the connection."""

    def __init__(self, host: Host, key_pair: KeyPair, noise_privkey: PrivateKey) -> None:
        super().__init__(key_pair, noise_privkey=noise_privkey)
        self._host = host

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        return await self._admit(await super().secure_inbound(conn), "inbound")

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        return await self._admit(await super().secure_outbound(conn, peer_id), "outbound")

    async def _admit(self, secured: ISecureConn, direction: str) -> ISecureConn:
        peer = secured.get_remote_peer().to_base58()
        reason = self._host.filters.peer_denied(peer)
        if reason is None:
            return secured
        self._host._note_filtered(f"{direction}: {reason}")
        with trio.CancelScope(shield=True), trio.move_on_after(self._host.config.close_timeout):
            await secured.close()
        raise HandshakeFailure(reason)


class _ConnectionWatcher(INotifee):
    """Turns the swarm's per-connection notifications into per-peer events."""

    def __init__(self, host: Host) -> None:
        self._host = host

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._host._connection_opened(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._host._connection_closed(conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class Host:
    """A running libp2p node: listen, dial, serve protocols, open streams.

    Register handlers with `set_stream_handler` before `run()` where possible: identify tells
    peers what we serve when they connect, and a handler added later reaches already-connected
    peers only through an identify push.
    """

    def __init__(self, identity: Identity, config: NetConfig = DEFAULT_NET_CONFIG) -> None:
        self.identity = identity
        self.config = config
        self.peer_id = identity.peer_id
        # Counts (and, where configured, limits) the bytes of every Stream made here.
        self.bandwidth = Bandwidth(config.bandwidth)
        self._handlers: dict[str, StreamHandler] = {}
        self._libp2p: IHost | None = None
        self._nursery: trio.Nursery | None = None
        self._live: dict[str, set[int]] = {}  # peer -> ids of its announced connections
        self._inbound_streams: dict[str, int] = {}
        self._dialing: dict[str, trio.Event] = {}
        self._subscribers: list[trio.MemorySendChannel[PeerEvent]] = []
        #: Allow/deny rules, consulted on every dial and accepted connection; replace or edit
        #: them at any time (`close_filtered` then drops connections they now deny).
        self.filters = Filters()
        self.filtered = 0  # connections and dials refused by the filters
        self.last_filtered: str | None = None

    # --- lifecycle -------------------------------------------------------------------------

    @asynccontextmanager
    async def run(self) -> AsyncIterator[Host]:
        """Listen on the configured addresses until the block exits, then close everything.

        py-libp2p nests several nurseries here; an exception leaving the block alone is
        re-raised as itself rather than wrapped in exception groups.
        """
        if self._libp2p is not None:
            raise NetError("this host is already running")
        listen = [parse_multiaddr(a) for a in self.config.listen_addrs]
        for addr in listen:
            _check_port_free(addr)
        libp2p_host = self._build(listen)
        self._libp2p = libp2p_host
        listening = False
        try:
            async with libp2p_host.run(listen):
                # py-libp2p logs a failed bind and carries on; refuse to run half-listening.
                listening = len(libp2p_host.get_transport_addrs()) >= len(listen)
                if listening:
                    try:
                        async with trio.open_nursery() as nursery:
                            self._nursery = nursery
                            try:
                                yield self
                            finally:
                                nursery.cancel_scope.cancel()
                    finally:
                        await self._close_connections(libp2p_host)
        except BaseExceptionGroup as group:
            leaf = _sole_exception(group)
            if leaf is None:
                raise
            raise leaf from None
        finally:
            self._nursery = None
            self._libp2p = None
            for channel in self._subscribers:
                channel.close()
            self._subscribers.clear()
            self._live.clear()
            self._inbound_streams.clear()
        if not listening:
            raise NetError(f"could not listen on {', '.join(self.config.listen_addrs)}")

    async def _close_connections(self, libp2p_host: IHost) -> None:
        """Close every connection before py-libp2p's swarm service is cancelled: cancelling
        it alone left the sockets of connections we dialled open, so the peer kept counting a
        stopped node as connected (Helia went on asking it for blocks)."""
        with trio.CancelScope(shield=True), trio.move_on_after(self.config.close_timeout):
            await libp2p_host.get_network().close()

    def _build(self, listen: list[multiaddr.Multiaddr]) -> IHost:
        key_pair = self.identity.key_pair()
        noise = _GatedNoise(self, key_pair, noise_privkey=create_x25519_key_pair().private_key)
        connection_config = ConnectionConfig(
            max_connections=self.config.max_connections,
            min_connections=0,
            low_watermark=self.config.max_connections,
            high_watermark=self.config.max_connections,
            max_connections_per_peer=self.config.max_connections_per_peer,
            dial_timeout=self.config.dial_timeout,
            inbound_upgrade_timeout=self.config.dial_timeout,
            outbound_upgrade_timeout=self.config.dial_timeout,
            outbound_stream_protocol_negotiation_timeout=self.config.stream_open_timeout,
            inbound_stream_protocol_negotiation_timeout=self.config.inbound_negotiate_timeout,
        )
        libp2p_host = new_host(
            key_pair=key_pair,
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_opt={
                TProtocol(YAMUX_PROTOCOL_ID): YamuxConnection,
                TProtocol(MPLEX_PROTOCOL_ID): Mplex,
            },
            listen_addrs=listen,
            connection_config=connection_config,
            negotiate_timeout=max(1, int(self.config.inbound_negotiate_timeout)),
        )
        swarm = libp2p_host.get_network()
        if not isinstance(swarm, Swarm):
            raise NetError(f"py-libp2p built a {type(swarm).__name__}, not the Swarm it patches")
        swarm.retry_config = RetryConfig(max_retries=0)
        swarm.auto_connector = _InertAutoConnector(swarm, connection_config.auto_connect_interval)
        swarm.connection_gate = _FilterGate(self)
        swarm.register_notifee(_ConnectionWatcher(self))
        _skip_stream_notifications(swarm)
        libp2p_host.multiselect = _BufferedMultiselect(libp2p_host.multiselect.handlers)
        for protocol, handler in self._handlers.items():
            libp2p_host.set_stream_handler(TProtocol(protocol), self._wrap(handler))
        return libp2p_host

    def _running(self) -> IHost:
        if self._libp2p is None:
            raise NetError("the host is not running (use `async with host.run():`)")
        return self._libp2p

    # --- addresses and peers ----------------------------------------------------------------

    def addrs(self) -> list[str]:
        """Our listen addresses with the real ports, each ending in `/p2p/<our peer id>`."""
        return [str(a) for a in self._running().get_addrs()]

    def peers(self) -> list[str]:
        """Peers with at least one open connection."""
        swarm = self._running().get_network()
        return sorted(p.to_base58() for p, conns in swarm.connections.items() if conns)

    def is_connected(self, peer_id: str) -> bool:
        return bool(self._running().get_network().get_connections(to_libp2p_id(peer_id)))

    def remote_addrs(self, peer_id: str) -> list[str]:
        """The transport addresses of our connections to `peer_id`."""
        out: list[str] = []
        for conn in self._running().get_network().get_connections(to_libp2p_id(peer_id)):
            addrs = getattr(conn, "get_transport_addresses", None)
            out.extend(str(a) for a in (addrs() if callable(addrs) else []))
        return out

    def connection_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Open connections by direction and open streams by protocol, counted now (for the
        metrics, which read them at scrape time instead of counting in the stream paths)."""
        connections: dict[str, int] = {}
        streams: dict[str, int] = {}
        for conns in list(self._running().get_network().connections.values()):
            for conn in list(conns):
                name = str(getattr(getattr(conn, "direction", None), "name", "unknown")).lower()
                connections[name] = connections.get(name, 0) + 1
                for stream in list(getattr(conn, "streams", ())):
                    protocol = str(stream.get_protocol() or "negotiating")
                    streams[protocol] = streams.get(protocol, 0) + 1
        return connections, streams

    def peer_protocols(self, peer_id: str) -> list[str]:
        """Protocols the peer listed in its last identify (py-libp2p identifies every new
        connection in the background); empty until that has finished."""
        peerstore = self._running().get_peerstore()
        try:
            return list(peerstore.get_protocols(to_libp2p_id(peer_id)))
        except PeerStoreError:  # a peer it has never heard of
            return []

    # --- connection management --------------------------------------------------------------

    async def connect(self, addr: str, *, timeout: float | None = None) -> str:
        """Dial `/…/p2p/<peer id>` unless already connected; returns the peer id.

        The Noise handshake proves the peer holds the key behind the id in the address, so a
        wrong id fails the dial. Raises DialTimeout or DialError.
        """
        target = parse_peer_addr(addr)
        if target.peer_id == self.peer_id:
            raise DialError("refusing to dial ourselves")
        libp2p_host = self._running()
        if self.is_connected(target.peer_id):
            return target.peer_id
        reason = (self.filters.peer_denied(target.peer_id)
                  or self.filters.addr_denied(target.transport))
        if reason is not None:
            self._note_filtered(f"dial {addr}: {reason}")
            raise DialFiltered(f"refusing to dial {addr}: {reason}")
        limit = self.config.dial_timeout if timeout is None else timeout
        with trio.move_on_after(limit) as scope:
            while (pending := self._dialing.get(target.peer_id)) is not None:
                await pending.wait()
            if self.is_connected(target.peer_id):
                return target.peer_id
            done = self._dialing[target.peer_id] = trio.Event()
            try:
                swarm = libp2p_host.get_network()
                conn = await swarm.dial_addr(
                    parse_multiaddr(target.transport), to_libp2p_id(target.peer_id)
                )
                with trio.fail_after(self.config.connection_ready_timeout):
                    await conn.event_started.wait()  # type: ignore[attr-defined]
            except trio.TooSlowError as exc:
                raise DialError(f"connection to {target.peer_id} never became ready") from exc
            except Exception as exc:
                raise DialError(f"cannot connect to {addr}: {_cause_text(exc)}") from exc
            finally:
                del self._dialing[target.peer_id]
                done.set()
            return target.peer_id
        assert scope.cancelled_caught
        raise DialTimeout(f"connecting to {addr} took longer than {limit:g} s")

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to `peer_id` (a no-op when there is none)."""
        network = self._running().get_network()
        with trio.move_on_after(self.config.close_timeout):
            await network.close_peer(to_libp2p_id(peer_id))

    async def close_filtered(self) -> list[str]:
        """Disconnect every peer the filters now deny (by its id, or by the address of any of
        its connections); returns those peers."""
        denied = [peer for peer in self.peers()
                  if self.filters.peer_denied(peer) is not None
                  or any(self.filters.addr_denied(a) is not None
                         for a in self.remote_addrs(peer))]
        for peer in denied:
            self._note_filtered(f"closed {peer}: a filter added at run time denies it")
            await self.disconnect(peer)
        return denied

    def _note_filtered(self, what: str) -> None:
        self.filtered += 1
        self.last_filtered = what
        logger.info("filtered: %s", what)

    def subscribe(self) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A channel of future PeerEvents. It holds at most `event_buffer` events; a subscriber
        that falls further behind has its channel closed (it sees EndOfChannel) and should
        resubscribe and reconcile with `peers()`. The channel also ends when the host stops."""
        self._running()
        send, receive = trio.open_memory_channel[PeerEvent](self.config.event_buffer)
        self._subscribers.append(send)
        return receive

    def _connection_opened(self, conn: INetConn) -> None:
        peer = conn.muxed_conn.peer_id.to_base58()
        live = self._live.setdefault(peer, set())
        live.add(id(conn))
        if len(live) == 1:
            self._publish(PeerEvent("connected", peer))

    def _connection_closed(self, conn: INetConn) -> None:
        peer = conn.muxed_conn.peer_id.to_base58()
        live = self._live.get(peer)
        if live is None or id(conn) not in live:
            return
        live.discard(id(conn))
        if not live:
            del self._live[peer]
            self._publish(PeerEvent("disconnected", peer))

    def _publish(self, event: PeerEvent) -> None:
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                logger.warning("dropping a connection-event subscriber that fell behind or left")
                channel.close()
                self._subscribers.remove(channel)

    # --- protocols --------------------------------------------------------------------------

    def set_stream_handler(self, protocols: Sequence[str], handler: StreamHandler) -> None:
        """Serve `protocols` with `handler`, one call per inbound stream in its own task.

        The stream is closed when the handler returns and reset if it raises. A peer with
        `max_inbound_streams_per_peer` streams already in handlers has further ones reset.
        """
        if isinstance(protocols, str):
            raise TypeError("protocols must be a sequence of protocol ids, not one string")
        for protocol in protocols:
            self._handlers[protocol] = handler
            if self._libp2p is not None:
                self._libp2p.set_stream_handler(TProtocol(protocol), self._wrap(handler))
        if self._libp2p is not None and self._nursery is not None and self.peers():
            self._nursery.start_soon(self._push_identify)

    def protocols(self) -> list[str]:
        """Every protocol served, as identify advertises it (ours plus identify and ping)."""
        return [str(p) for p in self._running().get_mux().get_protocols() if p is not None]

    async def _push_identify(self) -> None:
        libp2p_host = self._running()
        push = getattr(libp2p_host, "_push_identify_to_all_peers", None)
        if push is not None:
            with trio.move_on_after(self.config.identify_timeout):
                await push()

    def _wrap(self, handler: StreamHandler) -> Callable[[INetStream], Awaitable[None]]:
        async def serve(raw: INetStream) -> None:
            peer = raw.muxed_conn.peer_id.to_base58()
            if self._inbound_streams.get(peer, 0) >= self.config.max_inbound_streams_per_peer:
                logger.warning("peer %s has too many inbound streams; resetting one", peer)
                await Stream(
                    raw, peer_id=peer, protocol="", direction="inbound", max_read_size=1
                ).reset()
                return
            self._inbound_streams[peer] = self._inbound_streams.get(peer, 0) + 1
            stream = Stream(
                raw,
                peer_id=peer,
                protocol=str(raw.get_protocol()),
                direction="inbound",
                max_read_size=self.config.max_read_size,
                bandwidth=self.bandwidth,
            )
            try:
                await handler(stream)
            except Exception:
                logger.exception("%s handler failed for %s; stream reset", stream.protocol, peer)
                await stream.reset()
            finally:
                count = self._inbound_streams.get(peer, 1) - 1
                if count > 0:
                    self._inbound_streams[peer] = count
                else:
                    self._inbound_streams.pop(peer, None)
                await stream.close()

        return serve

    async def new_stream(
        self, peer_id: str, protocols: Sequence[str], *, timeout: float | None = None
    ) -> Stream:
        """Open a stream on an existing connection, offering `protocols` in preference order.

        Raises NotConnected without a connection (no implicit dial) and StreamOpenError when the
        peer supports none of them, the stream cannot be opened, or `timeout` passes.
        """
        if isinstance(protocols, str):
            raise TypeError("protocols must be a sequence of protocol ids, not one string")
        libp2p_host = self._running()
        if not self.is_connected(peer_id):
            raise NotConnected(f"not connected to {peer_id}")
        limit = self.config.stream_open_timeout if timeout is None else timeout
        raw: INetStream | None = None
        with trio.move_on_after(limit):
            try:
                raw = await libp2p_host.new_stream(
                    to_libp2p_id(peer_id), [TProtocol(p) for p in protocols]
                )
            except Exception as exc:
                raise StreamOpenError(
                    f"cannot open {'/'.join(protocols) or 'a stream'} to {peer_id}: "
                    f"{_cause_text(exc)}"
                ) from exc
        if raw is None:
            raise StreamOpenError(f"opening a stream to {peer_id} took longer than {limit:g} s")
        return Stream(
            raw,
            peer_id=peer_id,
            protocol=str(raw.get_protocol()),
            direction="outbound",
            max_read_size=self.config.max_read_size,
            bandwidth=self.bandwidth,
        )

    # --- built-in protocols -----------------------------------------------------------------

    async def ping(self, peer_id: str, *, timeout: float | None = None) -> float:
        """One `/ipfs/ping/1.0.0` round trip on a fresh stream; returns the RTT in seconds."""
        limit = self.config.ping_timeout if timeout is None else timeout
        with trio.move_on_after(limit):
            stream = await self.new_stream(peer_id, [PING_PROTOCOL], timeout=limit)
            async with stream:
                payload = secrets.token_bytes(PING_SIZE)
                start = trio.current_time()
                await stream.write(payload)
                echo = await stream.read_exactly(PING_SIZE)
                rtt = trio.current_time() - start
            if echo != payload:
                raise ProtocolViolation(f"{peer_id} answered a ping with different bytes")
            return rtt
        raise PingTimeout(f"no ping reply from {peer_id} within {limit:g} s")

    async def identify(self, peer_id: str, *, timeout: float | None = None) -> IdentifyInfo:
        """Ask the peer who it is and what it serves (one `/ipfs/id/1.0.0` exchange)."""
        limit = self.config.identify_timeout if timeout is None else timeout
        cap = self.config.max_identify_size
        with trio.move_on_after(limit):
            stream = await self.new_stream(peer_id, [IDENTIFY_PROTOCOL], timeout=limit)
            async with stream:
                reply = bytearray()
                while chunk := await stream.read(cap + 1 - len(reply)):
                    reply += chunk
                    if len(reply) > cap:
                        raise ProtocolViolation(f"identify reply from {peer_id} over {cap} bytes")
            return decode_identify(peer_id, bytes(reply))
        raise StreamError(f"identify of {peer_id} did not finish within {limit:g} s")


#: Bytes of a stream's buffer the negotiation looks at per step: always a whole message.
NEGOTIATION_PEEK = 4 * (MAX_MESSAGE + 2)


class _BufferedMultiselect(Multiselect):
    """py-libp2p's inbound negotiation, done by `multistream.Listener` on our Yamux streams."""

    async def negotiate(self, communicator: IMultiselectCommunicator,
                        negotiate_timeout: int = DEFAULT_NEGOTIATE_TIMEOUT,
                        ) -> tuple[TProtocol | None, StreamHandlerFn | None]:
        muxed = getattr(getattr(communicator, "read_writer", None), "muxed_stream", None)
        if not isinstance(muxed, TrioYamuxStream):
            return await super().negotiate(communicator, negotiate_timeout)
        listener = Listener([p for p in self.handlers if p])
        try:
            with trio.fail_after(negotiate_timeout):
                while True:
                    # A few whole messages' worth: more than that is the protocol's data.
                    seen = muxed.peek(NEGOTIATION_PEEK)
                    step = listener.feed(seen)
                    muxed.take(step.consumed)
                    if step.reply:
                        await muxed.write(step.reply)
                    if step.protocol is not None:
                        protocol = TProtocol(step.protocol)
                        return protocol, self.handlers.get(protocol)
                    # At once if the peek left bytes out, else when more arrive.
                    await muxed.wait_for_more(len(seen) - step.consumed)
        except (MultistreamError, MuxedStreamError, trio.TooSlowError) as exc:
            raise MultiselectError(f"inbound negotiation failed: {exc}") from exc


_STREAM_EVENTS = frozenset({"opened_stream", "closed_stream"})


def _skip_stream_notifications(swarm: Swarm) -> None:
    """Fan out everything but stream events to the swarm's notifees (see the module's notes:
    no notifee here acts on them, and each one cost a task per notifee per stream)."""
    fan_out = swarm._notify

    async def notify(method: str, *args: object) -> None:
        if method not in _STREAM_EVENTS:
            await fan_out(method, *args)

    swarm._notify = notify  # type: ignore[method-assign]


def _sole_exception(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception inside nested single-member groups, else None."""
    current: BaseException = group
    while isinstance(current, BaseExceptionGroup):
        if len(current.exceptions) != 1:
            return None
        current = current.exceptions[0]
    return current


def _cause_text(exc: BaseException) -> str:
    """py-libp2p wraps the useful message a few causes deep; show the chain briefly."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 4:
        text = str(current).strip() or type(current).__name__
        if text not in parts:
            parts.append(text)
        current = current.__cause__
    return ": ".join(parts)


def _check_port_free(addr: multiaddr.Multiaddr) -> None:
    """Refuse a fixed TCP port another process holds: py-libp2p logs a failed bind and still
    reports the address as its own, so the node would claim to listen where it does not."""
    protocols = {p.name: addr.value_for_protocol(p.code) for p in addr.protocols()}
    port = int(protocols.get("tcp") or 0)
    host = protocols.get("ip4") or protocols.get("ip6")
    if not port or host is None:
        return
    family = socket.AF_INET6 if "ip6" in protocols else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the real listener does: connections of a previous run in TIME_WAIT must not
        # keep a restarted node off its port (Linux still refuses a port someone listens on).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise NetError(f"could not listen on {addr}: the port is already in use") from None
            raise NetError(f"could not listen on {addr}: {exc.strerror}") from None
