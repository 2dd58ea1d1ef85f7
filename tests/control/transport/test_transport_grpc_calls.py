"""gRPC only: SendMessage and BroadcastMessage, the signed one-shot calls of PBFTService."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest
from transport_harness import mesh, prepare, until

from blockmesh.control.keys import Signer
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import PeerError
from blockmesh.control.transport.grpc_transport import SERVICE

CONN_ERRORS = "blockmesh_transport_connection_errors_total"


def test_send_message_and_relayed_broadcast() -> None:
    async def scenario() -> None:
        async with mesh("grpc", 3) as (a, b, c):
            answer = await a.transport.send_unary(b.id, prepare(a.id, 1))
            assert answer.accepted
            await until(lambda: [(s, m.sequence) for s, m in b.received] == [(a.id, 1)])
            relayed = await a.transport.relay_broadcast(b.id, prepare(a.id, 2))
            assert (relayed.delivered, list(relayed.errors)) == (1, [])
            await until(lambda: [(s, m.sequence) for s, m in c.received] == [(b.id, 2)])
            await c.transport.stop()
            await until(lambda: c.id not in b.transport.peers())
            relayed = await a.transport.relay_broadcast(b.id, prepare(a.id, 3))
            assert relayed.delivered == 0 and relayed.errors == [f"{c.id}: not_connected"]

    asyncio.run(scenario())


def test_unsigned_or_wrongly_signed_calls_are_refused() -> None:
    async def scenario() -> None:
        async with mesh("grpc", 2) as (a, b):
            body = pb.SendRequest(target=b.id, message=prepare(a.id, 1)).SerializeToString()
            async with grpc.aio.insecure_channel(b.transport.address) as channel:
                call = channel.unary_unary(f"/{SERVICE}/SendMessage")
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await call(body, timeout=5)
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # A member's id with a key that is not the member's.
            a.transport._signer = Signer.generate(a.id)
            with pytest.raises(PeerError) as refused:
                await a.transport.send_unary(b.id, prepare(a.id, 2))
            assert refused.value.reason == "unauthenticated"
            assert b.metric(CONN_ERRORS, reason="auth") == 2
            assert b.received == []

    asyncio.run(scenario())
