"""The raw TCP transport: asyncio streams carrying length-prefixed protobuf frames.

Handshake (see handshake.py for the protocol): HELLO, REPLY and PROOF bodies are PBFTMessage
envelopes of type MESSAGE_TYPE_UNSPECIFIED used as a carrier — `node_id` the sender, `payload`
its nonce, `signature` its transcript signature — so the wire format needs no extra message.
A client that only submits requests or reads state opens with CLIENT_HELLO instead; it never
becomes a peer and any consensus frame from it closes its connection.

With TLS (tls.py; replicas always use it) each accepted connection first completes a mutual
TLS 1.3 handshake, within handshake_timeout and counted like any refused handshake when it
fails; then a member's certificate must be the one listed for the id it proves in HELLO/PROOF,
and a CLIENT_HELLO needs a listed client's or member's certificate, so state and status
reads, which only travel on such connections, go to nobody else.

Reads take whatever the socket has (up to 256 KiB) and decode every complete frame in it; writes
drain the whole send queue into one socket write. Both keep per-message system calls rare.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from google.protobuf.message import DecodeError as ProtobufDecodeError
from prometheus_client import CollectorRegistry

from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import framing, state
from blockmesh.control.transport.config import TransportConfig
from blockmesh.control.transport.errors import (
    AuthenticationError,
    FrameTooLarge,
    PeerError,
)
from blockmesh.control.transport.framing import Frame, FrameDecoder, Kind
from blockmesh.control.transport.handshake import Initiator, Responder, new_nonce
from blockmesh.control.transport.mesh import Link, MeshTransport, split_address
from blockmesh.control.transport.metrics import TransportMetrics
from blockmesh.control.transport.tls import TlsConfig
from blockmesh.errors import DecodeError

log = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK = 256 * 1024
_MAX_ERROR_TEXT = 1024
_ANSWERS = frozenset(
    {
        Kind.SUBMIT_RESULT,
        Kind.SYNC_STATE_RESULT,
        Kind.GET_CHECKPOINT_RESULT,
        Kind.GET_STATUS_RESULT,
        Kind.ERROR,
    }
)
_CALLS = frozenset({Kind.SUBMIT, Kind.SYNC_STATE, Kind.GET_CHECKPOINT, Kind.GET_STATUS})


class FrameReader:
    """Frames from a StreamReader, a socket read at a time."""

    def __init__(self, reader: asyncio.StreamReader, max_size: int) -> None:
        self._reader = reader
        self._decoder = FrameDecoder(max_size)
        self._ready: list[Frame] = []

    async def batch(self) -> list[Frame]:
        """Every complete frame available after at most one wait; EOFError at end of stream."""
        if self._ready:
            frames, self._ready = self._ready, []
            return frames
        while True:
            data = await self._reader.read(_CHUNK)
            if not data:
                raise EOFError("connection closed")
            frames = self._decoder.feed(data)
            if frames:
                return frames

    async def one(self) -> Frame:
        if not self._ready:
            self._ready = await self.batch()
        return self._ready.pop(0)


class LinkHost(Protocol):
    """What a TCP link needs from its owner (a replica's transport, or a client)."""

    config: TransportConfig
    metrics: TransportMetrics

    def _deliver(self, peer_id: str, raw: bytes) -> object: ...

    async def _await_handler(self, peer_id: str, result: object) -> None: ...

    def _serve_call(self, link: TcpLink, frame: Frame) -> None: ...


class TcpLink(Link):
    """One authenticated TCP connection; also carries request/answer calls by call id."""

    def __init__(
        self,
        host: LinkHost,
        peer_id: str,
        *,
        outbound: bool,
        member: bool,
        frames: FrameReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(peer_id, outbound, host.config, host.metrics)
        self._host = host
        self.member = member
        self._frames = frames
        self._writer = writer
        self._calls: dict[int, asyncio.Future[Frame]] = {}
        self._next_call = 1

    async def call(self, kind: Kind, body: bytes, answer: Kind, timeout: float) -> bytes:
        """Send a request frame and wait for its answer; PeerError on failure or timeout."""
        future = self.start_call(kind, body)
        try:
            async with asyncio.timeout(timeout):
                frame = await future
        except TimeoutError:
            raise PeerError(self.peer_id, "timeout") from None
        finally:
            future.cancel()
        return self.answer_body(frame, answer)

    def start_call(self, kind: Kind, body: bytes) -> asyncio.Future[Frame]:
        """Send a request frame; the future gets the answer frame (or a PeerError). Cancel it
        to give up: its call id is forgotten then, and a late answer is ignored."""
        call_id = self._next_call
        self._next_call = call_id % 0xFFFFFFFF + 1
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        reason = self.enqueue(framing.encode(kind, call_id, body, self._config.max_message_size))
        if reason is not None:
            self._metrics.drop(reason)
            future.set_exception(PeerError(self.peer_id, reason))
            return future
        self._calls[call_id] = future
        future.add_done_callback(lambda _f: self._calls.pop(call_id, None))
        return future

    def answer_body(self, frame: Frame, answer: Kind) -> bytes:
        """The body of an answer frame of kind `answer`; PeerError for a refusal or another kind."""
        if frame.kind == Kind.ERROR:
            raise PeerError(self.peer_id, "refused", frame.body.decode(errors="replace"))
        if frame.kind != answer:
            raise PeerError(self.peer_id, "bad_answer", f"frame kind {frame.kind}")
        return frame.body

    def answer(self, kind: Kind, call_id: int, body: bytes) -> None:
        try:
            wire = framing.encode(kind, call_id, body, self._config.max_message_size)
        except FrameTooLarge:
            wire = framing.encode(Kind.ERROR, call_id, b"answer too large", _MAX_ERROR_TEXT)
        reason = self.enqueue(wire)
        if reason is not None:
            self._metrics.drop(reason)

    async def _read_loop(self) -> None:
        host = self._host
        peer = self.peer_id
        while True:
            frames = await self._frames.batch()
            size = 0
            for frame in frames:
                size += len(frame.body)
                kind = frame.kind
                if kind == Kind.MESSAGE:
                    if not self.member:
                        self._metrics.drop("unauthorized")
                        raise DecodeError(f"{peer} is not a replica but sent consensus traffic")
                    result = host._deliver(peer, frame.body)
                    if result is not None:
                        await host._await_handler(peer, result)
                elif kind in _ANSWERS:
                    self._resolve(frame)
                elif kind in _CALLS:
                    host._serve_call(self, frame)
                else:
                    self._metrics.drop("unexpected_frame")
                    raise DecodeError(f"{peer} sent a handshake frame ({kind}) after the handshake")
            await self._pace(len(frames), size, time.monotonic())

    def _resolve(self, frame: Frame) -> None:
        future = self._calls.get(frame.call_id)
        if future is not None and not future.done():
            future.set_result(frame)
        elif frame.call_id == 0 and frame.kind == Kind.ERROR:
            log.info("%s is closing: %s", self.peer_id, frame.body.decode(errors="replace"))
        else:
            self._metrics.drop("unexpected_answer")

    async def _write_batch(self, batch: list[bytes]) -> None:
        self._writer.writelines(batch)
        await self._writer.drain()

    async def _shutdown(self) -> None:
        for future in self._calls.values():
            if not future.done():
                future.set_exception(PeerError(self.peer_id, "disconnected"))
        self._calls.clear()
        await close_writer(self._writer)


async def open_stream(
    address: str, in_flight: set[asyncio.Future] | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio.open_connection that cannot leak a socket when cancelled as it completes: the
    connect finishes in the background and is closed; `in_flight` lets an owner wait for it."""
    host, port = split_address(address)
    connecting = asyncio.ensure_future(asyncio.open_connection(host, port, limit=_CHUNK))
    if in_flight is not None:
        in_flight.add(connecting)
        connecting.add_done_callback(in_flight.discard)
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        connecting.add_done_callback(_close_if_connected)
        raise


def _close_if_connected(
    connecting: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        connecting.result()[1].close()


async def secure(writer: asyncio.StreamWriter, context: ssl.SSLContext) -> bytes | None:
    """Upgrade an open connection to TLS (the side follows how the stream was opened) and
    return the peer's DER certificate. A failed handshake is an AuthenticationError: the peer
    has no certificate the cluster lists, or no key for it."""
    try:
        await writer.start_tls(context)
    except ssl.SSLError as exc:
        raise AuthenticationError(f"TLS handshake failed: {exc.reason or exc}") from None
    ssl_object = writer.get_extra_info("ssl_object")
    return None if ssl_object is None else ssl_object.getpeercert(binary_form=True)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        pass


def carrier(frame: Frame, kind: Kind) -> pb.PBFTMessage:
    """The handshake envelope in `frame`, which must be of `kind` (an ERROR frame explains)."""
    if frame.kind == Kind.ERROR:
        raise AuthenticationError(f"refused: {frame.body.decode(errors='replace')}")
    if frame.kind != kind:
        raise AuthenticationError(f"expected handshake frame {kind.name}, got kind {frame.kind}")
    try:
        return pb.PBFTMessage.FromString(frame.body)
    except ProtobufDecodeError:
        raise DecodeError("handshake frame is not a PBFTMessage") from None


class TcpTransport(MeshTransport):
    """Full-mesh replica transport over raw TCP; see the module docstring for the wire format."""

    kind = "tcp"

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
        super().__init__(signer, cluster, listen, config=config, registry=registry, tls=tls)
        self._server_tls = tls.server_context() if tls is not None else None
        self._client_tls = tls.client_context() if tls is not None else None
        self._server: asyncio.Server | None = None
        self._clients: set[TcpLink] = set()
        self._connects: set[asyncio.Future] = set()

    async def start(self) -> None:
        if self._running:
            return
        host, port = split_address(self._listen)
        self._server = await asyncio.start_server(self._accept, host, port, limit=_CHUNK)
        bound_port = self._server.sockets[0].getsockname()[1]
        self._bound = f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"
        self._running = True

    async def _stop_serving(self) -> None:
        for link in list(self._clients):
            link.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._connects:  # dials cut short by stop(): let them finish and close
            await asyncio.wait(self._connects, timeout=1.0)
            await asyncio.sleep(0)

    def _wire_message(self, data: bytes) -> bytes:
        return framing.encode(Kind.MESSAGE, 0, data, self.config.max_message_size)

    # --- dialing -------------------------------------------------------------------------

    async def _dial(self, node_id: str, address: str) -> TcpLink:
        reader, writer = await open_stream(address, self._connects)
        try:
            if self.tls is not None:
                assert self._client_tls is not None
                self.tls.expect(await secure(writer, self._client_tls), node_id)
            frames = FrameReader(reader, self.config.max_message_size)
            initiator = Initiator(self._signer, self._cluster, node_id, new_nonce())
            me, nonce = initiator.hello()
            self._write_handshake(writer, Kind.HELLO, pb.PBFTMessage(node_id=me, payload=nonce))
            reply = carrier(await frames.one(), Kind.REPLY)
            proof = initiator.on_reply(reply.node_id, reply.payload, reply.signature)
            self._write_handshake(writer, Kind.PROOF, pb.PBFTMessage(node_id=me, signature=proof))
            ack = await frames.one()
            if ack.kind != Kind.ACK:
                carrier(ack, Kind.ACK)
            return TcpLink(self, node_id, outbound=True, member=True, frames=frames, writer=writer)
        except BaseException:
            await close_writer(writer)
            raise

    def _write_handshake(
        self, writer: asyncio.StreamWriter, kind: Kind, msg: pb.PBFTMessage
    ) -> None:
        writer.write(framing.encode(kind, 0, msg.SerializeToString(), _MAX_ERROR_TEXT))

    # --- accepting -----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
        try:
            if not self._running or self._handshaking >= self.config.max_pending_handshakes:
                self.metrics.connection_error("busy")
                await close_writer(writer)
                return
            link = await self._authenticate(reader, writer)
            if link is None:
                return
            await self._serve_link(link)
        except asyncio.CancelledError:
            # stop() cancels connection tasks; end quietly, because on Python 3.11 the
            # streams server logs a cancelled callback task as an error.
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)  # type: ignore[arg-type]

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> TcpLink | None:
        self._handshaking += 1
        try:
            async with asyncio.timeout(self.config.handshake_timeout):
                peer_cert = None
                if self._server_tls is not None:
                    peer_cert = await secure(writer, self._server_tls)
                return await self._respond(
                    FrameReader(reader, self.config.max_message_size), writer, peer_cert
                )
        except (AuthenticationError, DecodeError, TimeoutError, OSError, EOFError) as exc:
            self._refuse_connection(exc, writer)
            await close_writer(writer)
            return None
        except BaseException:
            writer.close()
            raise
        finally:
            self._handshaking -= 1

    def _refuse_connection(self, exc: Exception, writer: asyncio.StreamWriter) -> None:
        if isinstance(exc, FrameTooLarge):
            self.metrics.drop("oversize")
            reason = "bad_input"
        elif isinstance(exc, DecodeError):
            self.metrics.drop("garbage")
            reason = "bad_input"
        elif isinstance(exc, AuthenticationError):
            reason = "auth"
        elif isinstance(exc, TimeoutError):
            reason = "timeout"
        else:
            reason = "io"
        self.metrics.connection_error(reason)
        log.info("%s refused a connection: %s", self.node_id, exc or type(exc).__name__)
        if not writer.is_closing():
            text = (str(exc) or reason).encode()[:_MAX_ERROR_TEXT]
            writer.write(framing.encode(Kind.ERROR, 0, text, _MAX_ERROR_TEXT))

    async def _respond(self, frames: FrameReader, writer: asyncio.StreamWriter,
                       peer_cert: bytes | None) -> TcpLink:
        first = await frames.one()
        if first.kind == Kind.CLIENT_HELLO:
            if self.tls is not None:
                self.tls.may_read(peer_cert)
            if len(self._clients) >= self.config.max_client_connections:
                raise AuthenticationError("too many client connections")
            writer.write(framing.encode(Kind.ACK, 0, b"", 0))
            peer = writer.get_extra_info("peername")
            return TcpLink(
                self, f"client@{peer}", outbound=False, member=False, frames=frames, writer=writer
            )
        hello = carrier(first, Kind.HELLO)
        responder = Responder(self._signer, self._cluster, new_nonce())
        me, nonce, signature = responder.on_hello(hello.node_id, hello.payload)
        reply = pb.PBFTMessage(node_id=me, payload=nonce, signature=signature)
        self._write_handshake(writer, Kind.REPLY, reply)
        peer_id = responder.on_proof(carrier(await frames.one(), Kind.PROOF).signature)
        if self.tls is not None:
            self.tls.expect(peer_cert, peer_id)
        writer.write(framing.encode(Kind.ACK, 0, b"", 0))
        await writer.drain()
        return TcpLink(self, peer_id, outbound=False, member=True, frames=frames, writer=writer)

    async def _serve_link(self, link: TcpLink) -> None:
        if not self._running:
            link.close()
            await link.run()
            return
        if link.member:
            self._register(link)
        else:
            self._clients.add(link)
        try:
            await link.run()
        finally:
            if link.member:
                self._unregister(link)
            else:
                self._clients.discard(link)

    # --- calls ---------------------------------------------------------------------------

    def _serve_call(self, link: TcpLink, frame: Frame) -> None:
        try:
            if frame.kind == Kind.SUBMIT:
                request = pb.PBFTMessage.FromString(frame.body)
                call_id = frame.call_id
                self._submits.submit(request, lambda answer: link.answer(
                    Kind.SUBMIT_RESULT, call_id, answer.SerializeToString()))
                return
            if frame.kind == Kind.SYNC_STATE:
                sync = pb.SyncStateRequest.FromString(frame.body)
                answer = state.sync_state(self._provider, sync, self.config)
                link.answer(Kind.SYNC_STATE_RESULT, frame.call_id, answer.SerializeToString())
            elif frame.kind == Kind.GET_CHECKPOINT:
                wanted = pb.GetCheckpointRequest.FromString(frame.body)
                found = state.get_checkpoint(self._provider, wanted)
                link.answer(Kind.GET_CHECKPOINT_RESULT, frame.call_id, found.SerializeToString())
            elif frame.kind == Kind.GET_STATUS:
                status = state.get_status(self._provider, self.node_id, self.peers())
                link.answer(Kind.GET_STATUS_RESULT, frame.call_id, status.SerializeToString())
        except ProtobufDecodeError:
            self.metrics.drop("garbage")
            raise DecodeError(f"{link.peer_id} sent a malformed call") from None

    async def _call(self, node_id: str, kind: Kind, body: bytes, answer: Kind) -> bytes:
        link = self._route(node_id)
        if not isinstance(link, TcpLink):
            raise PeerError(node_id, "not_connected")
        return await link.call(kind, body, answer, self.config.rpc_timeout)

    async def sync_state(
        self, node_id: str, from_height: int, max_blocks: int = 0
    ) -> pb.SyncStateResponse:
        request = pb.SyncStateRequest(
            node_id=self.node_id, from_height=from_height, max_blocks=max_blocks
        )
        body = await self._call(
            node_id, Kind.SYNC_STATE, request.SerializeToString(), Kind.SYNC_STATE_RESULT
        )
        return _parse(node_id, pb.SyncStateResponse.FromString, body)

    async def get_checkpoint(self, node_id: str, sequence: int) -> pb.CheckpointCertificate | None:
        body = await self._call(
            node_id,
            Kind.GET_CHECKPOINT,
            pb.GetCheckpointRequest(sequence=sequence).SerializeToString(),
            Kind.GET_CHECKPOINT_RESULT,
        )
        answer = _parse(node_id, pb.GetCheckpointResponse.FromString, body)
        return answer.checkpoint if answer.found else None

    async def get_status(self, node_id: str) -> pb.GetStatusResponse:
        body = await self._call(node_id, Kind.GET_STATUS, b"", Kind.GET_STATUS_RESULT)
        return _parse(node_id, pb.GetStatusResponse.FromString, body)


def _parse(node_id: str, parse: Callable[[bytes], T], body: bytes) -> T:
    try:
        return parse(body)
    except ProtobufDecodeError:
        raise PeerError(node_id, "bad_answer", "undecodable answer") from None
