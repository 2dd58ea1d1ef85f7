"""A client of one replica, over either transport: what `cluster submit` and load generators use.

A client is not a cluster member: it does not run the replica handshake (its requests carry the
client's own signature, which the engine checks). With TLS it presents its own listed
certificate, which replicas require before serving it anything, and checks that the replica
answering is the member it meant to reach. Over TCP it opens with CLIENT_HELLO and
multiplexes calls on one connection by call id; over gRPC it makes unary calls on one channel.
Either way many calls may be in flight at once, which is what a load generator needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import grpc
import grpc.aio
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry

from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import framing
from blockmesh.control.transport.config import TransportConfig
from blockmesh.control.transport.errors import AuthenticationError, PeerError, TransportError
from blockmesh.control.transport.framing import Frame, Kind
from blockmesh.control.transport.grpc_transport import SERVICE, open_channel, wait_connected
from blockmesh.control.transport.metrics import TransportMetrics
from blockmesh.control.transport.submit_stream import SubmitStreamClient
from blockmesh.control.transport.tcp import (
    FrameReader,
    TcpLink,
    close_writer,
    open_stream,
    secure,
)
from blockmesh.control.transport.tls import TlsConfig
from blockmesh.errors import DecodeError

M = TypeVar("M", bound=Message)
TRANSPORTS = ("grpc", "tcp")


class ReplicaClient:
    """Talks to the replica at `address` over `transport` ("grpc" or "tcp").

    Connects on first use; after the connection breaks, the next call reconnects once.
    """

    def __init__(
        self,
        transport: str,
        address: str,
        *,
        config: TransportConfig | None = None,
        registry: CollectorRegistry | None = None,
        tls: TlsConfig | None = None,
        peer: str | None = None,
    ) -> None:
        """`tls`: this client's certificate and the cluster's (replicas refuse a client
        without one); `peer`: the replica id expected at `address`, required with `tls`
        (its certificate, not the address, is what the client trusts)."""
        if transport not in TRANSPORTS:
            raise TransportError(f"unknown transport {transport!r}; expected one of {TRANSPORTS}")
        if tls is not None and peer is None:
            raise TransportError("a TLS client must name the replica it dials (peer)")
        self.transport = transport
        self.address = address
        self.tls = tls
        self.peer = peer
        self.config = config or TransportConfig()
        self.metrics = TransportMetrics(
            registry if registry is not None else CollectorRegistry(), transport, "client"
        )
        self._channel: grpc.aio.Channel | None = None
        self._stream: SubmitStreamClient | None = None
        self._link: TcpLink | None = None
        self._runner: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    async def __aenter__(self) -> ReplicaClient:
        await self.connect()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connected():
                return
            await self.close()
            try:
                async with asyncio.timeout(self.config.dial_timeout):
                    if self.transport == "grpc":
                        await self._connect_grpc()
                    else:
                        await self._connect_tcp()
            except AuthenticationError as exc:
                self.metrics.connection_error("auth")
                raise PeerError(self.address, "auth", str(exc)) from None
            except ConnectionRefusedError as exc:
                # Nothing listens there: the replica is down, and a caller may give up on it.
                self.metrics.connection_error("unreachable")
                raise PeerError(self.address, "unreachable", str(exc) or "refused") from None
            except (OSError, TimeoutError, EOFError, DecodeError) as exc:
                # Something listens but did not complete the handshake in time: possibly a
                # live replica starved of CPU, so callers retry until their own deadline.
                self.metrics.connection_error("unresponsive")
                raise PeerError(
                    self.address, "unresponsive", str(exc) or type(exc).__name__
                ) from None

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        if self._link is not None:
            self._link.close()
        if self._runner is not None:
            await asyncio.gather(self._runner, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
        self._link = self._runner = self._channel = self._stream = None

    async def submit(self, request: pb.PBFTMessage) -> pb.SubmitRequestResponse:
        """Submit a REQUEST envelope; the replica answers once its request handler has."""
        return await self._call(
            "SubmitRequest",
            Kind.SUBMIT,
            request.SerializeToString(),
            Kind.SUBMIT_RESULT,
            pb.SubmitRequestResponse.FromString,
            self.config.request_timeout,
        )

    def submit_then(self, request: pb.PBFTMessage, wire: bytes,
                    answered: Callable[[pb.SubmitRequestResponse | BaseException], None],
                    ) -> asyncio.Future[object]:
        """Submit `request` (`wire` is its serialization, made once for every replica) and
        call `answered` with the answer or the exception, without a task, timer or
        extra future per call: over gRPC the request rides the SubmitStream (many requests
        per stream message), over TCP a SUBMIT frame. Cancel the returned future to give up;
        `answered` is not called then."""
        if not self._connected():
            call: asyncio.Future[object] = asyncio.ensure_future(self.submit(request))
            convert: Callable[[object], pb.SubmitRequestResponse] = _same
        elif self._link is not None:
            link = self._link
            call = link.start_call(Kind.SUBMIT, wire)
            convert = lambda frame: pb.SubmitRequestResponse.FromString(  # noqa: E731
                link.answer_body(frame, Kind.SUBMIT_RESULT))
        else:
            if self._stream is None:
                assert self._channel is not None
                self._stream = SubmitStreamClient(self._channel, SERVICE, self.address)
            call = self._stream.submit(request)
            convert = _same
        address = self.address

        def settle(done: asyncio.Future[object]) -> None:
            if done.cancelled():
                return
            error = done.exception()
            if error is None:
                try:
                    answered(convert(done.result()))
                except ProtobufDecodeError:
                    answered(PeerError(address, "bad_answer", "undecodable answer"))
                except PeerError as exc:
                    answered(exc)
            else:
                answered(error)

        call.add_done_callback(settle)
        return call

    async def get_status(self) -> pb.GetStatusResponse:
        return await self._call(
            "GetStatus",
            Kind.GET_STATUS,
            b"",
            Kind.GET_STATUS_RESULT,
            pb.GetStatusResponse.FromString,
            self.config.rpc_timeout,
        )

    async def sync_state(self, from_height: int, max_blocks: int = 0) -> pb.SyncStateResponse:
        body = pb.SyncStateRequest(from_height=from_height, max_blocks=max_blocks)
        return await self._call(
            "SyncState",
            Kind.SYNC_STATE,
            body.SerializeToString(),
            Kind.SYNC_STATE_RESULT,
            pb.SyncStateResponse.FromString,
            self.config.rpc_timeout,
        )

    # --- internals -----------------------------------------------------------------------

    def _connected(self) -> bool:
        if self.transport == "grpc":
            return self._channel is not None
        return self._link is not None and self._link.is_open

    async def _connect_grpc(self) -> None:
        channel = open_channel(self.address, self.config, self.tls, self.peer)
        try:
            await wait_connected(channel)
        except BaseException:
            await channel.close()
            raise
        self._channel = channel

    async def _connect_tcp(self) -> None:
        reader, writer = await open_stream(self.address)
        try:
            if self.tls is not None:
                assert self.peer is not None
                self.tls.expect(await secure(writer, self.tls.client_context()), self.peer)
            frames = FrameReader(reader, self.config.max_message_size)
            writer.write(framing.encode(Kind.CLIENT_HELLO, 0, b"", 0))
            answer = await frames.one()
            if answer.kind != Kind.ACK:
                why = answer.body.decode(errors="replace") if answer.kind == Kind.ERROR else ""
                raise PeerError(self.address, "refused", why)
        except BaseException:
            await close_writer(writer)
            raise
        self._link = TcpLink(
            self, self.address, outbound=True, member=False, frames=frames, writer=writer
        )
        self._runner = asyncio.create_task(self._link.run())

    async def _call(
        self,
        method: str,
        kind: Kind,
        body: bytes,
        answer: Kind,
        parse: Callable[[bytes], M],
        timeout: float,
    ) -> M:
        await self.connect()
        if self._channel is not None:
            call = self._channel.unary_unary(f"/{SERVICE}/{method}")
            try:
                raw = await call(body, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                raise PeerError(
                    self.address, exc.code().name.lower(), exc.details() or ""
                ) from None
        else:
            assert self._link is not None
            raw = await self._link.call(kind, body, answer, timeout)
        self.metrics.messages_received.inc()
        try:
            return parse(raw)
        except ProtobufDecodeError:
            raise PeerError(self.address, "bad_answer", "undecodable answer") from None

    # --- LinkHost, for the TCP link: a replica never sends consensus traffic or calls ------

    def _deliver(self, peer_id: str, raw: bytes) -> object:
        raise DecodeError(f"{peer_id} sent consensus traffic to a client")

    async def _await_handler(self, peer_id: str, result: object) -> None:
        raise DecodeError(f"{peer_id} sent consensus traffic to a client")

    def _serve_call(self, link: TcpLink, frame: Frame) -> None:
        raise DecodeError(f"{link.peer_id} sent a call (kind {frame.kind}) to a client")


def _same(answer: object) -> pb.SubmitRequestResponse:
    assert isinstance(answer, pb.SubmitRequestResponse)
    return answer
