"""The machinery both transports share: connections with their send queues, the peer table,
reconnect supervision and message delivery.

A transport subclass only knows how to dial and authenticate (`_dial`), how to accept, and how a
connection reads and writes bytes (a `Link` subclass). Everything about which connection
carries what, how many bytes may wait, and when to redial lives here, once.

Duplicate connections: in a full mesh both sides dial, so two replicas usually share two
authenticated connections. Each side sends on the one it dialed and reads from both; it sends on
the inbound one only while it has no outbound one (the peer restarted, or this node was never
told the peer's address). A second inbound connection from the same peer replaces the first, as
it means the peer reconnected and the old one is dead. No tie-break is needed, so the two sides
can never disagree about which connection to close.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from abc import abstractmethod
from collections import deque

from google.protobuf.message import DecodeError as ProtobufDecodeError
from prometheus_client import CollectorRegistry

from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import state
from blockmesh.control.transport.config import TransportConfig
from blockmesh.control.transport.errors import (
    AuthenticationError,
    FrameTooLarge,
    PeerError,
    TransportError,
)
from blockmesh.control.transport.interface import (
    MessageHandler,
    RequestHandler,
    StateProvider,
    Transport,
)
from blockmesh.control.transport.limits import Backoff, TokenBucket
from blockmesh.control.transport.metrics import TransportMetrics
from blockmesh.control.transport.tls import TlsConfig
from blockmesh.errors import DecodeError

log = logging.getLogger(__name__)

_CONSENSUS_TYPES = frozenset(v for v in pb.MessageType.values() if v != pb.MESSAGE_TYPE_UNSPECIFIED)


class Link:
    """One connection (dialed or accepted), with a bounded send queue and its writer task.

    Queued items are already in wire form (a whole TCP frame, or a serialized message for
    gRPC), so a broadcast encodes once and shares the bytes among every link.
    """

    def __init__(
        self, peer_id: str, outbound: bool, config: TransportConfig, metrics: TransportMetrics
    ) -> None:
        self.peer_id = peer_id
        self.outbound = outbound
        self._config = config
        self._metrics = metrics
        self._items: deque[bytes] = deque()
        self._stamps: deque[float] = deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._open = True
        self.closed_locally = False
        self._reader: asyncio.Task[None] | None = None
        now = time.monotonic()
        self._msg_bucket = TokenBucket(config.peer_message_rate, config.peer_message_burst, now)
        self._byte_bucket = TokenBucket(
            config.peer_byte_rate, max(config.peer_byte_rate, config.max_message_size), now
        )

    @property
    def is_open(self) -> bool:
        return self._open

    def enqueue(self, item: bytes) -> str | None:
        """Queue one wire item; return None, or the reason it was dropped."""
        if not self._open:
            return "not_connected"
        if (
            len(self._items) >= self._config.max_backlog_messages
            or self._queued_bytes + len(item) > self._config.max_backlog_bytes
        ):
            return "backlog_full"
        self._items.append(item)
        self._stamps.append(time.monotonic())
        self._queued_bytes += len(item)
        self._wake.set()
        return None

    async def run(self) -> None:
        """Read and write until the connection ends or close() is called."""
        if not self._open:
            await self._shutdown()
            return
        self._reader = asyncio.create_task(self._read_loop())
        writer = asyncio.create_task(self._write_loop())
        try:
            await asyncio.wait((self._reader, writer), return_when=asyncio.FIRST_COMPLETED)
            for task in (self._reader, writer):
                if task.done() and not task.cancelled():
                    self._note_failure(task.exception())
        finally:
            self._open = False
            for task in (self._reader, writer):
                task.cancel()
            try:
                await asyncio.gather(self._reader, writer, return_exceptions=True)
            finally:  # even when cancelled again meanwhile: the socket must not leak
                dropped = len(self._items)
                if dropped:
                    self._metrics.drop("disconnected", dropped)
                self._items.clear()
                self._stamps.clear()
                await self._shutdown()

    def close(self) -> None:
        """Ask run() to finish; safe to call at any time, from any task of the loop."""
        self._open = False
        self.closed_locally = True
        if self._reader is not None:
            self._reader.cancel()

    def _note_failure(self, exc: BaseException | None) -> None:
        if exc is None:
            if self._open:
                self._metrics.connection_error("closed_by_peer")
        elif isinstance(exc, DecodeError):
            if isinstance(exc, FrameTooLarge):
                self._metrics.drop("oversize")
            self._metrics.connection_error("bad_input")
            log.warning("dropping %s: %s", self.peer_id, exc)
        elif isinstance(exc, (OSError, EOFError, asyncio.IncompleteReadError)):
            self._metrics.connection_error("io")
        else:
            self._metrics.connection_error("io")
            log.warning("connection to %s failed: %r", self.peer_id, exc)

    async def _write_loop(self) -> None:
        items, stamps = self._items, self._stamps
        limit = self._config.max_write_batch_bytes
        metrics = self._metrics
        while True:
            await self._wake.wait()
            self._wake.clear()
            while items:
                batch = [items.popleft()]
                size = len(batch[0])
                while items and size + len(items[0]) <= limit:
                    item = items.popleft()
                    batch.append(item)
                    size += len(item)
                self._queued_bytes -= size
                await self._write_batch(batch)
                now = time.monotonic()
                for _ in batch:
                    metrics.send_latency.observe(now - stamps.popleft())
                metrics.messages_sent.inc(len(batch))
                metrics.bytes_sent.inc(size)

    async def _pace(self, count: int, size: int, now: float) -> None:
        """Pause reading while this peer is over its rate: TCP or HTTP/2 flow control then
        pushes back on the sender, and other peers are unaffected."""
        delay = max(self._msg_bucket.take(count, now), self._byte_bucket.take(size, now))
        if delay > 0:
            self._metrics.throttled.inc(delay)
            await asyncio.sleep(delay)

    @abstractmethod
    async def _read_loop(self) -> None:
        """Read until the peer closes; raise on broken input (the link is then dropped)."""

    @abstractmethod
    async def _write_batch(self, batch: list[bytes]) -> None: ...

    @abstractmethod
    async def _shutdown(self) -> None:
        """Release the connection; never raises."""


class MeshTransport(Transport):
    """Peer table, reconnection and delivery; subclasses add dialing, accepting and framing."""

    kind = ""

    def __init__(
        self,
        signer: Signer,
        cluster: Verifier,
        listen: str = "127.0.0.1:0",
        *,
        config: TransportConfig | None = None,
        registry: CollectorRegistry | None = None,
        tls: TlsConfig | None = None,
    ) -> None:
        """`tls` encrypts every connection and admits only peers with a certificate the
        cluster lists (tls.py); the replica runtime always passes it. Without it the transport
        speaks plaintext, which only in-process tests of the layers above TLS use."""
        self.node_id = signer.node_id
        self.tls = tls
        self._signer = signer
        self._cluster = cluster
        self._listen = listen
        self.config = config or TransportConfig()
        self.metrics = TransportMetrics(
            registry if registry is not None else CollectorRegistry(), self.kind, self.node_id
        )
        self._addresses: dict[str, str] = {}
        self._supervisors: dict[str, asyncio.Task[None]] = {}
        self._outbound: dict[str, Link] = {}
        self._inbound: dict[str, Link] = {}
        self._handler: MessageHandler | None = None
        self._provider: StateProvider | None = None
        self._submits = state.SubmitGate(self.node_id, self.config)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = False
        #: The listen address, with the real port once the subclass has bound it.
        self._bound = listen
        #: Inbound handshakes in progress, bounded by config.max_pending_handshakes.
        self._handshaking = 0

    @property
    def address(self) -> str:
        return self._bound

    # --- configuration -------------------------------------------------------------------

    def set_message_handler(self, handler: MessageHandler | None) -> None:
        self._handler = handler

    def set_request_handler(self, handler: RequestHandler | None) -> None:
        self._submits.handler = handler

    def set_state_provider(self, provider: StateProvider | None) -> None:
        self._provider = provider

    # --- peers ---------------------------------------------------------------------------

    def peers(self) -> list[str]:
        return sorted(set(self._outbound) | set(self._inbound))

    async def add_peer(self, node_id: str, address: str) -> None:
        if not self._running:
            raise TransportError("start() the transport before adding peers")
        if node_id in self._addresses:
            return
        if node_id == self.node_id:
            raise PeerError(node_id, "self", "a node does not connect to itself")
        self._addresses[node_id] = address
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._supervise(node_id, address, first))
        self._supervisors[node_id] = task
        await asyncio.shield(first)

    async def remove_peer(self, node_id: str) -> None:
        self._addresses.pop(node_id, None)
        task = self._supervisors.pop(node_id, None)
        links = [link for link in (self._outbound.get(node_id), self._inbound.get(node_id)) if link]
        for link in links:
            link.close()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def stop(self) -> None:
        self._running = False
        for task in self._supervisors.values():
            task.cancel()
        for link in [*self._outbound.values(), *self._inbound.values()]:
            link.close()
        await asyncio.gather(*self._supervisors.values(), return_exceptions=True)
        self._supervisors.clear()
        self._addresses.clear()
        await self._stop_serving()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.metrics.peers.set(0)

    async def _supervise(self, node_id: str, address: str, first: asyncio.Future[None]) -> None:
        """Keep one outbound connection to `node_id` up until cancelled."""
        config = self.config
        backoff = Backoff(config.backoff_initial, config.backoff_max, config.backoff_multiplier)
        while True:
            try:
                async with asyncio.timeout(config.dial_timeout):
                    link = await self._dial(node_id, address)
            except asyncio.CancelledError:
                if not first.done():
                    first.set_exception(PeerError(node_id, "cancelled"))
                raise
            except Exception as exc:
                reason = _dial_failure(exc)
                self.metrics.connection_error(reason)
                if not first.done():
                    first.set_exception(PeerError(node_id, reason, str(exc) or type(exc).__name__))
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._register(link)
            if not first.done():
                first.set_result(None)
            try:
                await link.run()
            finally:
                self._unregister(link)
            log.info("%s: connection to %s lost, redialling", self.node_id, node_id)
            await asyncio.sleep(backoff.next_delay())

    def _register(self, link: Link) -> None:
        table = self._outbound if link.outbound else self._inbound
        old = table.get(link.peer_id)
        table[link.peer_id] = link
        if old is not None and old is not link:
            old.close()
        self.metrics.peers.set(len(self.peers()))

    def _unregister(self, link: Link) -> None:
        table = self._outbound if link.outbound else self._inbound
        if table.get(link.peer_id) is link:
            del table[link.peer_id]
        self.metrics.peers.set(len(self.peers()))

    def _route(self, node_id: str) -> Link | None:
        link = self._outbound.get(node_id)
        if link is not None and link.is_open:
            return link
        link = self._inbound.get(node_id)
        return link if link is not None and link.is_open else None

    # --- sending -------------------------------------------------------------------------

    async def send(self, node_id: str, msg: pb.PBFTMessage) -> None:
        error = self._enqueue(node_id, self._wire_message(msg.SerializeToString()))
        if error is not None:
            raise error

    async def broadcast(self, msg: pb.PBFTMessage) -> list[PeerError]:
        wire = self._wire_message(msg.SerializeToString())
        targets = set(self._addresses) | set(self._outbound) | set(self._inbound)
        errors = []
        for node_id in sorted(targets):
            error = self._enqueue(node_id, wire)
            if error is not None:
                errors.append(error)
        return errors

    def _enqueue(self, node_id: str, wire: bytes) -> PeerError | None:
        link = self._route(node_id)
        if link is None:
            reason = "not_connected" if node_id in self._addresses else "unknown_peer"
        else:
            reason = link.enqueue(wire)
            if reason is None:
                return None
        self.metrics.drop(reason)
        return PeerError(node_id, reason)

    @abstractmethod
    def _wire_message(self, data: bytes) -> bytes:
        """Wrap a serialized PBFTMessage in this transport's wire form."""

    # --- receiving -----------------------------------------------------------------------

    def _deliver(self, peer_id: str, raw: bytes) -> object:
        """Decode one consensus message and hand it over; returns what the handler returned.

        Raises DecodeError on garbage, which drops the connection: a replica whose bytes do
        not parse is broken or hostile. An unknown message type is only dropped, so a newer
        replica can talk to an older one.
        """
        try:
            msg = pb.PBFTMessage.FromString(raw)
        except ProtobufDecodeError:
            self.metrics.drop("garbage")
            raise DecodeError(f"{peer_id} sent a message that is not a PBFTMessage") from None
        if msg.type not in _CONSENSUS_TYPES:
            self.metrics.drop("unknown_type")
            return None
        self.metrics.messages_received.inc()
        self.metrics.bytes_received.inc(len(raw))
        handler = self._handler
        if handler is None:
            self.metrics.drop("no_handler")
            return None
        try:
            return handler(peer_id, msg)
        except Exception:
            log.exception("message handler failed on a message from %s", peer_id)
            self.metrics.drop("handler_error")
            return None

    async def _await_handler(self, peer_id: str, result: object) -> None:
        """Finish an async handler before reading on, so a slow engine slows its senders."""
        if not inspect.isawaitable(result):
            return
        try:
            await result
        except Exception:
            log.exception("message handler failed on a message from %s", peer_id)
            self.metrics.drop("handler_error")

    # --- hooks for subclasses ------------------------------------------------------------

    @abstractmethod
    async def _dial(self, node_id: str, address: str) -> Link:
        """Connect and authenticate; return a link that is not running yet."""

    @abstractmethod
    async def _stop_serving(self) -> None: ...


def _dial_failure(exc: BaseException) -> str:
    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, DecodeError):
        return "bad_input"
    return "unreachable"


def split_address(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise TransportError(f"address {address!r} is not host:port")
    return host.strip("[]"), int(port)


def join_address(host: str, port: int) -> str:
    """(host, port) -> 'host:port', bracketing an IPv6 host."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
