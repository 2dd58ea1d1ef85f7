"""One suite, run against both transports: mesh traffic, failures, auth, bad input, state, submit.

Every test starts real transports on 127.0.0.1 ephemeral ports inside asyncio.run (the control
plane is asyncio; pytest runs async tests under trio, hence plain `def` tests).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace

import pytest
from transport_harness import (
    FAST,
    KINDS,
    cluster_of,
    keys,
    make_node,
    mesh,
    prepare,
    submitted,
    until,
)

from blockmesh.control.keys import Signer
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import (
    PeerError,
    ReplicaClient,
    Responder,
    TransportError,
)

pytestmark = pytest.mark.parametrize("kind", KINDS)

DROPPED = "blockmesh_transport_dropped_messages_total"
CONN_ERRORS = "blockmesh_transport_connection_errors_total"


def test_full_mesh_of_four_exchanges_every_message(kind: str) -> None:
    async def scenario() -> None:
        async with mesh(kind, 4) as nodes:
            for node in nodes:
                assert node.transport.peers() == sorted(n.id for n in nodes if n is not node)
            for seq in range(1, 21):
                for node in nodes:
                    assert await node.transport.broadcast(prepare(node.id, seq)) == []
            await until(lambda: all(len(n.received) == 3 * 20 for n in nodes))
            for node in nodes:
                for other in nodes:
                    if other is node:
                        continue
                    seqs = [m.sequence for s, m in node.received if s == other.id]
                    assert seqs == list(range(1, 21)), "per-sender order must be kept"
                    assert all(m.node_id == s for s, m in node.received)
            a, b = nodes[0], nodes[1]
            await a.transport.send(b.id, prepare(a.id, 99, b"x" * 100_000))
            await until(lambda: any(m.sequence == 99 for _, m in b.received))
            assert a.metric("blockmesh_transport_messages_sent_total") >= 61
            assert b.metric("blockmesh_transport_messages_received_total") >= 61
            assert a.metric("blockmesh_transport_bytes_sent_total") > 100_000
            assert a.metric("blockmesh_transport_peers") == 3
            assert a.metric("blockmesh_transport_send_latency_seconds_count") >= 61

    asyncio.run(scenario())


def test_broadcast_returns_an_error_for_every_peer_that_is_down(kind: str) -> None:
    async def scenario() -> None:
        async with mesh(kind, 4) as nodes:
            a = nodes[0]
            await nodes[2].transport.stop()
            await nodes[3].transport.stop()
            await until(lambda: a.transport.peers() == [nodes[1].id])
            errors = await a.transport.broadcast(prepare(a.id, 1))
            assert sorted(e.node_id for e in errors) == [nodes[2].id, nodes[3].id]
            assert {e.reason for e in errors} == {"not_connected"}
            await until(lambda: len(nodes[1].received) == 1)
            with pytest.raises(PeerError) as info:
                await a.transport.send(nodes[3].id, prepare(a.id, 2))
            assert info.value.reason == "not_connected"
            with pytest.raises(PeerError) as info:
                await a.transport.send("stranger", prepare(a.id, 3))
            assert info.value.reason == "unknown_peer"
            assert a.metric(DROPPED, reason="not_connected") == 3

    asyncio.run(scenario())


def test_a_restarted_peer_is_redialled_and_reachable_again(kind: str) -> None:
    async def scenario() -> None:
        signers = keys(2)
        cluster = cluster_of(signers)
        a = make_node(kind, signers[0], cluster)
        b = make_node(kind, signers[1], cluster)
        await a.transport.start()
        await b.transport.start()
        b_address = b.transport.address
        try:
            await a.transport.add_peer(b.id, b_address)
            await b.transport.stop()
            await until(lambda: a.transport.peers() == [])
            with pytest.raises(PeerError):
                await a.transport.send(b.id, prepare(a.id, 1))
            b = make_node(kind, signers[1], cluster, listen=b_address)
            await b.transport.start()
            await until(lambda: a.transport.peers() == [b.id])
            await a.transport.send(b.id, prepare(a.id, 2))
            await until(lambda: [m.sequence for _, m in b.received] == [2])
            lost = a.metric(CONN_ERRORS, reason="closed_by_peer") + a.metric(
                CONN_ERRORS, reason="io"
            )
            assert lost >= 1
        finally:
            await a.transport.stop()
            await b.transport.stop()

    asyncio.run(scenario())


def test_a_peer_that_only_dialed_in_is_reachable_on_its_connection(kind: str) -> None:
    async def scenario() -> None:
        signers = keys(2)
        cluster = cluster_of(signers)
        a = make_node(kind, signers[0], cluster)
        b = make_node(kind, signers[1], cluster)
        await a.transport.start()
        await b.transport.start()
        try:
            await a.transport.add_peer(b.id, b.transport.address)
            await until(lambda: b.transport.peers() == [a.id])
            await b.transport.send(a.id, prepare(b.id, 1))
            assert await b.transport.broadcast(prepare(b.id, 2)) == []
            await until(lambda: [m.sequence for _, m in a.received] == [1, 2])
        finally:
            await a.transport.stop()
            await b.transport.stop()

    asyncio.run(scenario())


def test_add_peer_to_a_dead_address_fails_then_connects_in_background(kind: str) -> None:
    async def scenario() -> None:
        signers = keys(2)
        cluster = cluster_of(signers)
        a = make_node(kind, signers[0], cluster)
        b = make_node(kind, signers[1], cluster)
        await b.transport.start()
        address = b.transport.address
        await b.transport.stop()
        await a.transport.start()
        try:
            with pytest.raises(PeerError) as info:
                await a.transport.add_peer(b.id, address)
            assert info.value.reason == "unreachable"
            b = make_node(kind, signers[1], cluster, listen=address)
            await b.transport.start()
            await until(lambda: a.transport.peers() == [b.id])
        finally:
            await a.transport.stop()
            await b.transport.stop()

    asyncio.run(scenario())


def test_nodes_outside_the_cluster_cannot_join(kind: str) -> None:
    async def scenario() -> None:
        async with mesh(kind, 2) as nodes:
            a = nodes[0]
            # The intruders know the members' keys, so only their own credentials are wrong.
            members = nodes[0].transport._cluster
            for intruder_signer in (Signer.generate("n9"), Signer.generate(nodes[1].id)):
                intruder = make_node(kind, intruder_signer, members)
                await intruder.transport.start()
                try:
                    with pytest.raises(PeerError) as info:
                        await intruder.transport.add_peer(a.id, a.transport.address)
                    assert info.value.reason == "auth"
                finally:
                    await intruder.transport.stop()
            assert a.metric(CONN_ERRORS, reason="auth") == 2
            assert a.transport.peers() == [nodes[1].id]

    asyncio.run(scenario())


def test_a_replica_does_not_trust_a_server_with_the_wrong_key(kind: str) -> None:
    async def scenario() -> None:
        signers = keys(2)
        cluster = cluster_of(signers)
        a = make_node(kind, signers[0], cluster)
        impostor = make_node(kind, Signer.generate(signers[1].node_id), cluster)
        await a.transport.start()
        await impostor.transport.start()
        try:
            with pytest.raises(PeerError) as info:
                await a.transport.add_peer(signers[1].node_id, impostor.transport.address)
            assert info.value.reason == "auth"
            assert a.transport.peers() == []
        finally:
            await a.transport.stop()
            await impostor.transport.stop()

    asyncio.run(scenario())


def test_garbage_from_a_member_drops_only_that_connection(kind: str) -> None:
    async def scenario() -> None:
        async with mesh(kind, 3) as nodes:
            victim, attacker, honest = nodes
            link = attacker.transport._outbound[victim.id]
            link.enqueue(attacker.transport._wire_message(b"\xff\xff\xff\xff"))
            await until(lambda: victim.metric(DROPPED, reason="garbage") == 1)
            unknown = prepare(attacker.id, 5)
            unknown.type = 77  # a type this build does not know: dropped, connection kept
            await honest.transport.send(victim.id, unknown)
            await honest.transport.send(victim.id, prepare(honest.id, 6))
            await until(lambda: [m.sequence for _, m in victim.received] == [6])
            assert victim.metric(DROPPED, reason="unknown_type") == 1
            assert victim.metric(CONN_ERRORS, reason="bad_input") >= 1
            # The attacker is dropped, then redials and is a peer again: nothing else broke.
            await until(lambda: attacker.id in victim.transport.peers())

    asyncio.run(scenario())


def test_oversize_message_is_refused_and_the_server_keeps_serving(kind: str) -> None:
    async def scenario() -> None:
        small = dataclasses.replace(FAST, max_message_size=4096)
        signers = keys(3)
        cluster = cluster_of(signers)
        victim = make_node(kind, signers[0], cluster, small)
        attacker = make_node(kind, signers[1], cluster)
        honest = make_node(kind, signers[2], cluster)
        for node in (victim, attacker, honest):
            await node.transport.start()
        try:
            await attacker.transport.add_peer(victim.id, victim.transport.address)
            await honest.transport.add_peer(victim.id, victim.transport.address)
            await attacker.transport.send(victim.id, prepare(attacker.id, 1, b"x" * 10_000))
            await until(lambda: victim.metric_total(CONN_ERRORS) >= 1)
            if kind == "tcp":  # gRPC enforces the limit in its core, out of our sight
                assert victim.metric(DROPPED, reason="oversize") == 1
            await honest.transport.send(victim.id, prepare(honest.id, 2, b"y" * 1000))
            await until(lambda: [m.sequence for _, m in victim.received] == [2])
        finally:
            for node in (victim, attacker, honest):
                await node.transport.stop()

    asyncio.run(scenario())


def test_a_flooding_peer_is_throttled_and_a_full_backlog_is_reported(kind: str) -> None:
    async def scenario() -> None:
        slow = dataclasses.replace(
            FAST, peer_message_rate=2000, peer_message_burst=50, max_backlog_messages=100
        )
        async with mesh(kind, 2, slow) as (a, b):
            results = []
            for seq in range(300):
                try:
                    await a.transport.send(b.id, prepare(a.id, seq))
                    results.append(None)
                except PeerError as exc:
                    results.append(exc.reason)
            assert results[:100] == [None] * 100
            assert set(results[100:]) == {"backlog_full"}
            assert a.metric(DROPPED, reason="backlog_full") == 200
            await until(lambda: len(b.received) == 100)
            for seq in range(300, 600):
                for _ in range(1000):  # wait for room: the sender, not the transport, retries
                    try:
                        await a.transport.send(b.id, prepare(a.id, seq))
                        break
                    except PeerError:
                        await asyncio.sleep(0.005)
            await until(lambda: len(b.received) == 400)
            assert b.metric("blockmesh_transport_throttled_seconds_total") > 0

    asyncio.run(scenario())


class FakeChain:
    """A StateProvider over fixed data (the engine provides the real one later)."""

    def __init__(self) -> None:
        self.blocks = [pb.Block(height=h, hash=bytes([h]) * 32) for h in range(1, 11)]
        self.certs = [
            pb.CheckpointCertificate(sequence=s, state_digest=bytes([s]) * 32) for s in (4, 8)
        ]

    def blocks_from_height(self, height: int, limit: int) -> list[pb.Block]:
        return [b for b in self.blocks if b.height >= height][:limit]

    def checkpoints(self) -> list[pb.CheckpointCertificate]:
        return list(self.certs)

    def checkpoint(self, sequence: int) -> pb.CheckpointCertificate | None:
        return next((c for c in self.certs if c.sequence == sequence), None)

    def status(self) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(view=3, primary="n3", height=10, stable_checkpoint=8)


def test_state_sync_checkpoint_and_status_come_from_the_state_provider(kind: str) -> None:
    async def scenario() -> None:
        async with mesh(kind, 2) as (a, b):
            empty = await a.transport.sync_state(b.id, 1)
            assert list(empty.blocks) == [] and empty.height == 0
            b.transport.set_state_provider(FakeChain())
            sync = await a.transport.sync_state(b.id, 4, max_blocks=3)
            assert [blk.height for blk in sync.blocks] == [4, 5, 6]
            assert sync.more and sync.height == 10
            assert [c.sequence for c in sync.checkpoints] == [4, 8]
            rest = await a.transport.sync_state(b.id, 7)
            assert [blk.height for blk in rest.blocks] == [7, 8, 9, 10] and not rest.more
            assert (await a.transport.get_checkpoint(b.id, 4)).state_digest == bytes([4]) * 32
            assert (await a.transport.get_checkpoint(b.id, 0)).sequence == 8
            assert await a.transport.get_checkpoint(b.id, 5) is None
            status = await a.transport.get_status(b.id)
            assert (status.node_id, status.view, status.primary, status.height) == (
                b.id,
                3,
                "n3",
                10,
            )
            assert list(status.peers) == [a.id]
            with pytest.raises(PeerError):
                await a.transport.get_status("n7")

    asyncio.run(scenario())


def test_a_request_the_handler_never_answers_times_out_and_frees_its_slot(kind: str) -> None:
    config = replace(FAST, request_timeout=0.3, max_pending_requests=2)

    async def scenario() -> None:
        async with mesh(kind, 2, config) as (a, _b):
            held: list[Responder] = []
            a.transport.set_request_handler(lambda _msg, respond: held.append(respond))
            async with ReplicaClient(kind, a.transport.address, config=FAST) as client:
                request = pb.PBFTMessage(type=pb.REQUEST, node_id="client-1", payload=b"op")
                first = await asyncio.gather(*(client.submit(request) for _ in range(3)))
                errors = sorted(x.error for x in first)
                assert errors == ["request timed out"] * 2 + ["too many pending requests"]
                assert all(r.done for r in held)
                held[0](pb.SubmitRequestResponse(accepted=True))  # too late: ignored
                again = await client.submit(request)
                assert again.error == "request timed out", "the timed-out slots were freed"

    asyncio.run(scenario())


def test_pipelined_submits_get_their_own_answers_and_fail_when_the_replica_stops(
    kind: str,
) -> None:
    async def scenario() -> None:
        async with mesh(kind, 2) as (a, _b):
            def execute(msg: pb.PBFTMessage, respond: Responder) -> None:
                answer = pb.SubmitRequestResponse(
                    accepted=True, reply=pb.Reply(result=msg.payload[::-1]), node_id=a.id)
                asyncio.get_running_loop().call_later(0.001 * (msg.sequence % 7), respond, answer)

            a.transport.set_request_handler(execute)
            async with ReplicaClient(kind, a.transport.address, config=FAST) as client:
                await client.connect()
                futures = [submitted(client, pb.PBFTMessage(
                    type=pb.REQUEST, sequence=i, payload=f"op{i}".encode())) for i in range(300)]
                answers = await asyncio.wait_for(asyncio.gather(*futures), 10)
                assert [x.reply.result for x in answers] == [f"op{i}".encode()[::-1]
                                                             for i in range(300)]
                a.transport.set_request_handler(lambda _m, _r: None)  # answers never come
                stuck = submitted(client, pb.PBFTMessage(type=pb.REQUEST, payload=b"x"))
                await asyncio.sleep(0.2)
                await a.transport.stop()
                with pytest.raises(TransportError):
                    await asyncio.wait_for(stuck, 10)

    asyncio.run(scenario())


def test_clients_submit_requests_and_get_the_handlers_answer(kind: str) -> None:
    async def scenario() -> None:
        async with mesh(kind, 2) as (a, _b):
            async with ReplicaClient(kind, a.transport.address, config=FAST) as client:
                request = pb.PBFTMessage(type=pb.REQUEST, node_id="client-1", payload=b"op")
                refused = await client.submit(request)
                assert not refused.accepted and "no requests" in refused.error

                def execute(msg: pb.PBFTMessage, respond: Responder) -> None:
                    reply = pb.Reply(client_id=msg.node_id, result=msg.payload[::-1])
                    answer = pb.SubmitRequestResponse(accepted=True, reply=reply, node_id=a.id)
                    asyncio.get_running_loop().call_later(0.01, respond, answer)

                a.transport.set_request_handler(execute)
                answers = await asyncio.gather(*(client.submit(request) for _ in range(50)))
                assert all(x.accepted and x.reply.result == b"po" for x in answers)
                wrong = await client.submit(pb.PBFTMessage(type=pb.PREPARE))
                assert not wrong.accepted and "not a REQUEST" in wrong.error
                status = await client.get_status()
                assert status.node_id == a.id
            assert a.transport.peers() == [_b.id], "a client never becomes a peer"

    asyncio.run(scenario())
