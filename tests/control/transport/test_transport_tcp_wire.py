"""The TCP transport against hostile bytes on a raw socket, before and after authentication."""

from __future__ import annotations

import asyncio
import dataclasses
import struct

from transport_harness import FAST, cluster_of, keys, make_node, prepare, until

from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import framing
from blockmesh.control.transport.framing import Kind
from blockmesh.control.transport.handshake import Initiator, new_nonce
from blockmesh.control.transport.mesh import split_address

DROPPED = "blockmesh_transport_dropped_messages_total"
CONN_ERRORS = "blockmesh_transport_connection_errors_total"


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.read()


def test_garbage_oversize_and_silence_before_the_handshake_are_refused() -> None:
    async def scenario() -> None:
        config = dataclasses.replace(FAST, handshake_timeout=0.3)
        signers = keys(2)
        cluster = cluster_of(signers)
        server = make_node("tcp", signers[0], cluster, config)
        peer = make_node("tcp", signers[1], cluster, config)
        await server.transport.start()
        await peer.transport.start()
        host, port = split_address(server.transport.address)
        try:
            attacks = [
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # garbage: huge length, refused unread
                struct.pack(">IBI", 5, 99, 0),  # a frame kind that does not exist
                struct.pack(">I", 64 * 1024 * 1024 + 100) + b"\0" * 16,  # oversize
                framing.encode(Kind.MESSAGE, 0, prepare("n1", 1).SerializeToString(), 1 << 20),
                b"",  # says nothing: the handshake times out
            ]
            for attack in attacks:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(attack)
                await writer.drain()
                rest = await read_until_closed(reader)
                writer.close()
                frames = framing.FrameDecoder(4096).feed(rest)
                assert [f.kind for f in frames] == [Kind.ERROR]
            assert server.metric(DROPPED, reason="oversize") == 2
            assert server.metric(DROPPED, reason="garbage") == 1
            assert server.metric(CONN_ERRORS, reason="bad_input") == 3
            assert server.metric(CONN_ERRORS, reason="timeout") == 1
            assert server.metric(CONN_ERRORS, reason="auth") == 1
            await peer.transport.add_peer(server.id, server.transport.address)
            await peer.transport.send(server.id, prepare(peer.id, 7))
            await until(lambda: [m.sequence for _, m in server.received] == [7])
        finally:
            await server.transport.stop()
            await peer.transport.stop()

    asyncio.run(scenario())


def test_a_replayed_or_forged_proof_is_refused() -> None:
    async def handshake(
        host: str, port: int, hello: bytes, proof_for: object
    ) -> tuple[bytes, list[int]]:
        """Run legs 1-3 by hand; return the proof sent and the kinds of frames answered."""
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(framing.encode(Kind.HELLO, 0, hello, 4096))
        decoder = framing.FrameDecoder(4096)
        async with asyncio.timeout(5):
            reply = pb.PBFTMessage.FromString(decoder.feed(await reader.read(4096))[0].body)
        proof = proof_for(reply)  # type: ignore[operator]
        writer.write(framing.encode(Kind.PROOF, 0, proof, 4096))
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read(4096)
        writer.close()
        return proof, [f.kind for f in decoder.feed(answer)]

    async def scenario() -> None:
        signers = keys(2)
        cluster = cluster_of(signers)
        server = make_node("tcp", signers[0], cluster)
        await server.transport.start()
        host, port = split_address(server.transport.address)
        try:
            initiator = Initiator(signers[1], cluster, server.id, new_nonce())
            me, nonce = initiator.hello()
            hello = pb.PBFTMessage(node_id=me, payload=nonce).SerializeToString()

            def honest(reply: pb.PBFTMessage) -> bytes:
                sig = initiator.on_reply(reply.node_id, reply.payload, reply.signature)
                return pb.PBFTMessage(node_id=me, signature=sig).SerializeToString()

            recorded, kinds = await handshake(host, port, hello, honest)
            assert kinds == [Kind.ACK]
            # Same hello, recorded proof: the server's fresh nonce makes the proof stale.
            _, kinds = await handshake(host, port, hello, lambda _reply: recorded)
            assert kinds == [Kind.ERROR]
            forged = pb.PBFTMessage(node_id=me, signature=signers[1].sign(b"other bytes"))
            _, kinds = await handshake(host, port, hello, lambda _reply: forged.SerializeToString())
            assert kinds == [Kind.ERROR]
            assert server.metric(CONN_ERRORS, reason="auth") == 2
        finally:
            await server.transport.stop()

    asyncio.run(scenario())


def test_a_client_connection_cannot_send_consensus_traffic() -> None:
    async def scenario() -> None:
        signers = keys(1)
        server = make_node("tcp", signers[0], cluster_of(signers))
        await server.transport.start()
        host, port = split_address(server.transport.address)
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(framing.encode(Kind.CLIENT_HELLO, 0, b"", 0))
            status_call = framing.encode(Kind.GET_STATUS, 42, b"", 0)
            message = framing.encode(Kind.MESSAGE, 0, prepare("x", 1).SerializeToString(), 4096)
            writer.write(status_call + message)
            rest = await read_until_closed(reader)
            writer.close()
            frames = framing.FrameDecoder(1 << 20).feed(rest)
            assert [(f.kind, f.call_id) for f in frames] == [
                (Kind.ACK, 0),
                (Kind.GET_STATUS_RESULT, 42),
            ]
            assert pb.GetStatusResponse.FromString(frames[1].body).node_id == server.id
            assert server.metric(DROPPED, reason="unauthorized") == 1
            assert server.received == []
        finally:
            await server.transport.stop()

    asyncio.run(scenario())
