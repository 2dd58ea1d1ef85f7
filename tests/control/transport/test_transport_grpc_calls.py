"""gRPC only: SendMessage and BroadcastMessage, the signed one-shot calls of PBFTService."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest
from transport_harness import mesh, prepare, submitted, until

from blockmesh.control.keys import Signer
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import PeerError, ReplicaClient, submit_stream
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


def test_a_garbled_or_oversized_submit_stream_ends_only_that_stream() -> None:
    async def scenario() -> None:
        async with mesh("grpc", 2) as (a, _b):
            a.transport.set_request_handler(
                lambda msg, respond: respond(pb.SubmitRequestResponse(accepted=True)))
            request = pb.PBFTMessage(type=pb.REQUEST, payload=b"op")
            too_many = pb.SubmitBatch(calls=[pb.SubmitCall(call_id=i, request=request)
                                             for i in range(submit_stream.MAX_CALLS + 1)])
            async with grpc.aio.insecure_channel(a.transport.address) as channel:
                for junk in (b"\xff\xff\xff", too_many.SerializeToString()):
                    call = channel.stream_stream(f"/{SERVICE}/{submit_stream.METHOD}")()
                    await call.write(junk)
                    assert await asyncio.wait_for(_drain(call), 10) == []
            async with ReplicaClient("grpc", a.transport.address) as client:
                await client.connect()
                answer = await asyncio.wait_for(submitted(client, request), 10)
                assert answer.accepted

    asyncio.run(scenario())


async def _drain(call: grpc.aio.StreamStreamCall) -> list[bytes]:
    """What the stream yields until it ends, normally or with an error status."""
    got = []
    try:
        async for raw in call:
            got.append(raw)
    except grpc.aio.AioRpcError:
        pass
    return got
