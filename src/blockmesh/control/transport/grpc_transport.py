"""The gRPC transport (grpc.aio): PBFTService server plus one channel and stream per peer.

Authentication of MessageStream, the mesh channel, runs the four legs of handshake.py:

    1. the caller opens MessageStream with metadata  bm-node-id-bin, bm-nonce-bin
    2. the server answers with initial metadata       bm-node-id-bin, bm-nonce-bin, bm-sig-bin
    3. the caller's first stream message is a PBFTMessage of type MESSAGE_TYPE_UNSPECIFIED
       (never a consensus type) carrying its id in node_id and its proof in signature
    4. the server's first stream message is the same kind of envelope, empty: the ack

A refused caller gets status UNAUTHENTICATED. SendMessage and BroadcastMessage act for a
replica without a stream, so each such call is signed instead (handshake.CallGuard).

With TLS (tls.py; replicas always use it) the server requires a client certificate listed in
the cluster and the channel to a peer pins the peer's name; the caller's certificate must be
the one listed for the replica id it proves in the handshake or signs a call as. SyncState,
GetCheckpoint and GetStatus answer members and listed clients only (PERMISSION_DENIED
otherwise); SubmitRequest and SubmitStream take any listed identity's connection, since the
requests carry their client's own signature (state.py).

The stream carries pre-serialized bytes (no serializer on the method), so a broadcast
serializes its message once for every peer, and the receive side decodes inside the transport
where garbage can be counted and the peer dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TypeVar

import grpc
import grpc.aio
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message
from prometheus_client import CollectorRegistry

from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import state, submit_stream
from blockmesh.control.transport.config import TransportConfig
from blockmesh.control.transport.errors import AuthenticationError, PeerError
from blockmesh.control.transport.handshake import (
    CallGuard,
    Initiator,
    Responder,
    call_transcript,
    new_nonce,
)
from blockmesh.control.transport.mesh import Link, MeshTransport
from blockmesh.control.transport.tls import TlsConfig, grpc_peer_certificate
from blockmesh.errors import DecodeError

log = logging.getLogger(__name__)

SERVICE = "blockmesh.pbft.v1.PBFTService"
_STREAM = f"/{SERVICE}/MessageStream"
_ID_KEY = "bm-node-id-bin"
_NONCE_KEY = "bm-nonce-bin"
_SIG_KEY = "bm-sig-bin"
_STAMP_KEY = "bm-stamp"

M = TypeVar("M", bound=Message)


def channel_options(config: TransportConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", config.max_message_size),
        ("grpc.max_receive_message_length", config.max_message_size),
        ("grpc.enable_http_proxy", 0),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def _server_options(config: TransportConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", config.max_message_size),
        ("grpc.max_receive_message_length", config.max_message_size),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ]


def open_channel(address: str, config: TransportConfig, tls: TlsConfig | None,
                 peer: str | None) -> grpc.aio.Channel:
    """A channel to `address`: TLS with the cluster's certificates as the only roots when
    `tls` is given, the server's certificate name pinned to `peer` (a replica id) if known."""
    options: list[tuple[str, int | str]] = list(channel_options(config))
    if tls is None:
        return grpc.aio.insecure_channel(address, options=options)
    if peer is not None:
        options.append(("grpc.ssl_target_name_override", peer))
    return grpc.aio.secure_channel(address, tls.grpc_channel_credentials(), options=options)


async def wait_connected(channel: grpc.aio.Channel) -> None:
    """Wait until the channel is READY; fail at the first refused attempt instead of retrying
    quietly until the deadline, so a dead peer costs one round trip, as with TCP."""
    state_ = channel.get_state(try_to_connect=True)
    while state_ != grpc.ChannelConnectivity.READY:
        if state_ in (
            grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            grpc.ChannelConnectivity.SHUTDOWN,
        ):
            raise ConnectionRefusedError("peer unreachable")
        await channel.wait_for_state_change(state_)
        state_ = channel.get_state(try_to_connect=True)


def _metadata(pairs: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str | bytes]:
    return {key: value for key, value in pairs or ()}


def _bytes(md: dict[str, str | bytes], key: str) -> bytes:
    value = md.get(key, b"")
    return value if isinstance(value, bytes) else value.encode()


class _ClientLink(Link):
    """The stream this node opened to a peer; also owns the channel for unary calls."""

    def __init__(
        self, owner: GrpcTransport, peer_id: str, channel: grpc.aio.Channel, call: object
    ) -> None:
        super().__init__(peer_id, True, owner.config, owner.metrics)
        self._owner = owner
        self.channel = channel
        self._call = call

    async def _read_loop(self) -> None:
        owner, peer, call = self._owner, self.peer_id, self._call
        while True:
            raw = await call.read()  # type: ignore[attr-defined]
            if raw is grpc.aio.EOF:
                return
            result = owner._deliver(peer, raw)
            if result is not None:
                await owner._await_handler(peer, result)
            await self._pace(1, len(raw), time.monotonic())

    async def _write_batch(self, batch: list[bytes]) -> None:
        write = self._call.write  # type: ignore[attr-defined]
        for item in batch:
            await write(item)

    async def _shutdown(self) -> None:
        self._call.cancel()  # type: ignore[attr-defined]
        await self.channel.close()


class _ServerLink(Link):
    """A stream a peer opened to this node; lives as long as the MessageStream handler."""

    def __init__(
        self, owner: GrpcTransport, peer_id: str, context: grpc.aio.ServicerContext
    ) -> None:
        super().__init__(peer_id, False, owner.config, owner.metrics)
        self._owner = owner
        self._context = context

    async def _read_loop(self) -> None:
        owner, peer, context = self._owner, self.peer_id, self._context
        while True:
            raw = await context.read()
            if raw is grpc.aio.EOF:
                return
            result = owner._deliver(peer, raw)  # type: ignore[arg-type]
            if result is not None:
                await owner._await_handler(peer, result)
            await self._pace(1, len(raw), time.monotonic())  # type: ignore[arg-type]

    async def _write_batch(self, batch: list[bytes]) -> None:
        write = self._context.write
        for item in batch:
            await write(item)

    async def _shutdown(self) -> None:
        """Returning from the handler ends the RPC; nothing else to release."""


class GrpcTransport(MeshTransport):
    """Full-mesh replica transport over gRPC; see the module docstring for authentication."""

    kind = "grpc"

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
        self._server: grpc.aio.Server | None = None
        self._guard = CallGuard(cluster, self.node_id)

    async def start(self) -> None:
        if self._running:
            return
        server = grpc.aio.server(options=_server_options(self.config))
        server.add_generic_rpc_handlers((self._handlers(),))
        if self.tls is None:
            port = server.add_insecure_port(self._listen)
        else:
            port = server.add_secure_port(self._listen, self.tls.grpc_server_credentials())
        if port == 0:
            raise PeerError(self.node_id, "listen", f"cannot listen on {self._listen}")
        await server.start()
        host = self._listen.rpartition(":")[0]
        self._bound = f"{host}:{port}"
        self._server = server
        self._running = True

    def _handlers(self) -> grpc.GenericRpcHandler:
        def unary(fn: Callable, request: type[Message], reply: type[Message]) -> object:
            return grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=request.FromString,
                response_serializer=reply.SerializeToString,
            )

        def raw_unary(fn: Callable, reply: type[Message]) -> object:
            return grpc.unary_unary_rpc_method_handler(
                fn, response_serializer=reply.SerializeToString
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "MessageStream": grpc.stream_stream_rpc_method_handler(self._serve_stream),
                "SendMessage": raw_unary(self._serve_send, pb.SendResponse),
                "BroadcastMessage": raw_unary(self._serve_broadcast, pb.BroadcastResponse),
                "SyncState": unary(self._serve_sync, pb.SyncStateRequest, pb.SyncStateResponse),
                "GetCheckpoint": unary(
                    self._serve_checkpoint, pb.GetCheckpointRequest, pb.GetCheckpointResponse
                ),
                "GetStatus": unary(self._serve_status, pb.GetStatusRequest, pb.GetStatusResponse),
                "SubmitRequest": unary(
                    self._serve_submit, pb.PBFTMessage, pb.SubmitRequestResponse
                ),
                submit_stream.METHOD: grpc.stream_stream_rpc_method_handler(
                    self._serve_submit_stream,
                    request_deserializer=pb.SubmitBatch.FromString,
                    response_serializer=pb.SubmitAnswers.SerializeToString,
                ),
            },
        )

    async def _stop_serving(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None

    def _wire_message(self, data: bytes) -> bytes:
        return data

    # --- the mesh stream -----------------------------------------------------------------

    async def _dial(self, node_id: str, address: str) -> _ClientLink:
        channel = open_channel(address, self.config, self.tls, node_id)
        call = None
        try:
            await wait_connected(channel)
            initiator = Initiator(self._signer, self._cluster, node_id, new_nonce())
            me, nonce = initiator.hello()
            call = channel.stream_stream(_STREAM)(
                metadata=((_ID_KEY, me.encode()), (_NONCE_KEY, nonce))
            )
            try:
                reply = _metadata(await call.initial_metadata())
                if _SIG_KEY not in reply:
                    await call.read()  # surfaces the refusal as an AioRpcError
                    raise AuthenticationError("peer closed the stream during the handshake")
                proof = initiator.on_reply(
                    _bytes(reply, _ID_KEY).decode(errors="replace"),
                    _bytes(reply, _NONCE_KEY),
                    _bytes(reply, _SIG_KEY),
                )
                await call.write(pb.PBFTMessage(node_id=me, signature=proof).SerializeToString())
                ack = await call.read()
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    raise AuthenticationError(f"refused: {exc.details()}") from None
                raise
            if ack is grpc.aio.EOF:
                raise AuthenticationError("peer closed the stream instead of acknowledging")
            return _ClientLink(self, node_id, channel, call)
        except BaseException:
            if call is not None:
                call.cancel()
            await channel.close()
            raise

    async def _serve_stream(self, _requests: object, context: grpc.aio.ServicerContext) -> None:
        if not self._running or self._handshaking >= self.config.max_pending_handshakes:
            self.metrics.connection_error("busy")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not accepting connections now")
        self._handshaking += 1
        try:
            async with asyncio.timeout(self.config.handshake_timeout):
                peer_id = await self._respond(context)
        except (AuthenticationError, DecodeError, TimeoutError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "auth"
            self.metrics.connection_error(reason)
            log.info("%s refused a stream: %s", self.node_id, exc or reason)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc) or reason)
        finally:
            self._handshaking -= 1
        link = _ServerLink(self, peer_id, context)
        self._register(link)
        try:
            await link.run()
        except asyncio.CancelledError:
            # gRPC cancels the handler when the RPC dies under it (an oversize message, a
            # reset stream); count that like any other lost connection.
            if not link.closed_locally:
                self.metrics.connection_error("rpc_terminated")
            raise
        finally:
            self._unregister(link)

    async def _respond(self, context: grpc.aio.ServicerContext) -> str:
        hello = _metadata(context.invocation_metadata())
        responder = Responder(self._signer, self._cluster, new_nonce())
        me, nonce, signature = responder.on_hello(
            _bytes(hello, _ID_KEY).decode(errors="replace"), _bytes(hello, _NONCE_KEY)
        )
        await context.send_initial_metadata(
            ((_ID_KEY, me.encode()), (_NONCE_KEY, nonce), (_SIG_KEY, signature))
        )
        raw = await context.read()
        if raw is grpc.aio.EOF:
            raise AuthenticationError("caller left during the handshake")
        try:
            proof = pb.PBFTMessage.FromString(raw)  # type: ignore[arg-type]
        except ProtobufDecodeError:
            raise DecodeError("handshake proof is not a PBFTMessage") from None
        if proof.type != pb.MESSAGE_TYPE_UNSPECIFIED or proof.node_id != responder.peer:
            raise AuthenticationError("malformed handshake proof")
        peer_id = responder.on_proof(proof.signature)
        if self.tls is not None:
            self.tls.expect(grpc_peer_certificate(context), peer_id)
        await context.write(pb.PBFTMessage(node_id=me).SerializeToString())
        return peer_id

    # --- signed one-shot calls -----------------------------------------------------------

    def _authorize(self, method: str, raw: bytes, context: grpc.aio.ServicerContext) -> str:
        md = _metadata(context.invocation_metadata())
        caller = _bytes(md, _ID_KEY).decode(errors="replace")
        try:
            stamp = int(_bytes(md, _STAMP_KEY) or b"0")
            self._guard.check(
                caller,
                method,
                stamp,
                _bytes(md, _NONCE_KEY),
                _bytes(md, _SIG_KEY),
                raw,
                time.time(),
            )
            if self.tls is not None:
                self.tls.expect(grpc_peer_certificate(context), caller)
        except (AuthenticationError, ValueError) as exc:
            self.metrics.connection_error("auth")
            raise AuthenticationError(str(exc)) from None
        return caller

    async def _signed_request(self, method: str, raw: bytes, kind: type[M],
                              context: grpc.aio.ServicerContext) -> tuple[str, M]:
        """Authenticate a one-shot call and parse its body, or end the call with the reason."""
        try:
            return self._authorize(method, raw, context), kind.FromString(raw)
        except AuthenticationError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except ProtobufDecodeError:
            self.metrics.drop("garbage")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"not a {kind.__name__}")
        raise AssertionError("context.abort returned")  # abort always raises

    async def _serve_send(self, raw: bytes, context: grpc.aio.ServicerContext) -> pb.SendResponse:
        caller, request = await self._signed_request("SendMessage", raw, pb.SendRequest, context)
        if request.target != self.node_id:
            return pb.SendResponse(
                accepted=False, error=f"this is {self.node_id}, not {request.target}"
            )
        try:
            result = self._deliver(caller, request.message.SerializeToString())
        except DecodeError as exc:
            return pb.SendResponse(accepted=False, error=str(exc))
        await self._await_handler(caller, result)
        return pb.SendResponse(accepted=True)

    async def _serve_broadcast(
        self, raw: bytes, context: grpc.aio.ServicerContext
    ) -> pb.BroadcastResponse:
        """Relay a member's message to every other peer (for a member missing connections)."""
        caller, request = await self._signed_request("BroadcastMessage", raw,
                                                     pb.BroadcastRequest, context)
        wire = request.message.SerializeToString()
        targets = sorted((set(self._addresses) | set(self.peers())) - {caller})
        errors = [e for e in (self._enqueue(node, wire) for node in targets) if e is not None]
        return pb.BroadcastResponse(
            delivered=len(targets) - len(errors), errors=[str(e) for e in errors]
        )

    def _signed_metadata(self, callee: str, method: str, body: bytes) -> tuple:
        stamp = int(time.time() * 1000)
        nonce = new_nonce()
        signature = self._signer.sign(
            call_transcript(self.node_id, callee, method, stamp, nonce, body)
        )
        return (
            (_ID_KEY, self.node_id.encode()),
            (_STAMP_KEY, str(stamp)),
            (_NONCE_KEY, nonce),
            (_SIG_KEY, signature),
        )

    async def send_unary(self, node_id: str, msg: pb.PBFTMessage) -> pb.SendResponse:
        """Deliver `msg` to `node_id` with one signed SendMessage call instead of the stream."""
        body = pb.SendRequest(target=node_id, message=msg).SerializeToString()
        return await self._unary(
            node_id, "SendMessage", body, pb.SendResponse.FromString, signed=True
        )

    async def relay_broadcast(self, node_id: str, msg: pb.PBFTMessage) -> pb.BroadcastResponse:
        """Ask `node_id` to broadcast `msg` to its other peers; its answer lists every error."""
        body = pb.BroadcastRequest(message=msg).SerializeToString()
        return await self._unary(
            node_id, "BroadcastMessage", body, pb.BroadcastResponse.FromString, signed=True
        )

    # --- state reads and submissions -----------------------------------------------------

    async def _check_reader(self, context: grpc.aio.ServicerContext) -> None:
        """State and status go to members and listed clients only."""
        if self.tls is None:
            return
        try:
            self.tls.may_read(grpc_peer_certificate(context))
        except AuthenticationError as exc:
            self.metrics.connection_error("auth")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

    async def _serve_sync(
        self, request: pb.SyncStateRequest, context: grpc.aio.ServicerContext
    ) -> pb.SyncStateResponse:
        await self._check_reader(context)
        return state.sync_state(self._provider, request, self.config)

    async def _serve_checkpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCheckpointResponse:
        await self._check_reader(context)
        return state.get_checkpoint(self._provider, request)

    async def _serve_status(
        self, _request: object, context: grpc.aio.ServicerContext
    ) -> pb.GetStatusResponse:
        await self._check_reader(context)
        return state.get_status(self._provider, self.node_id, self.peers())

    async def _serve_submit(
        self, request: pb.PBFTMessage, _context: object
    ) -> pb.SubmitRequestResponse:
        return await self._submits.submit_async(request)

    async def _serve_submit_stream(
        self, batches: AsyncIterator[pb.SubmitBatch], context: grpc.aio.ServicerContext
    ) -> None:
        await submit_stream.serve(self._submits, batches, context, self.config.max_message_size)

    async def _unary(
        self,
        node_id: str,
        method: str,
        body: bytes,
        parse: Callable[[bytes], M],
        *,
        signed: bool = False,
    ) -> M:
        link = self._outbound.get(node_id)
        if not isinstance(link, _ClientLink) or not link.is_open:
            raise PeerError(node_id, "not_connected")
        metadata = self._signed_metadata(node_id, method, body) if signed else None
        multicallable = link.channel.unary_unary(f"/{SERVICE}/{method}")
        try:
            raw = await multicallable(body, metadata=metadata, timeout=self.config.rpc_timeout)
        except grpc.aio.AioRpcError as exc:
            raise PeerError(node_id, exc.code().name.lower(), exc.details() or "") from None
        try:
            return parse(raw)
        except ProtobufDecodeError:
            raise PeerError(node_id, "bad_answer", "undecodable answer") from None

    async def sync_state(
        self, node_id: str, from_height: int, max_blocks: int = 0
    ) -> pb.SyncStateResponse:
        request = pb.SyncStateRequest(
            node_id=self.node_id, from_height=from_height, max_blocks=max_blocks
        )
        return await self._unary(
            node_id, "SyncState", request.SerializeToString(), pb.SyncStateResponse.FromString
        )

    async def get_checkpoint(self, node_id: str, sequence: int) -> pb.CheckpointCertificate | None:
        request = pb.GetCheckpointRequest(sequence=sequence).SerializeToString()
        answer = await self._unary(
            node_id, "GetCheckpoint", request, pb.GetCheckpointResponse.FromString
        )
        return answer.checkpoint if answer.found else None

    async def get_status(self, node_id: str) -> pb.GetStatusResponse:
        return await self._unary(node_id, "GetStatus", b"", pb.GetStatusResponse.FromString)
