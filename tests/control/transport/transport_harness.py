"""Shared scaffolding for the transport tests: real transports on 127.0.0.1 ephemeral ports."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from prometheus_client import CollectorRegistry

from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import TRANSPORT_CLASSES, ReplicaClient, TransportConfig
from blockmesh.control.transport.mesh import MeshTransport
from blockmesh.control.transport.tls import TlsConfig

KINDS = sorted(TRANSPORT_CLASSES)

FAST = TransportConfig(
    dial_timeout=3.0,
    handshake_timeout=2.0,
    rpc_timeout=3.0,
    request_timeout=3.0,
    backoff_initial=0.05,
    backoff_max=0.3,
)


def keys(count: int) -> list[Signer]:
    return [Signer.generate(f"n{i}") for i in range(count)]


def cluster_of(signers: list[Signer]) -> Verifier:
    return Verifier({s.node_id: s.public_key for s in signers})


class Node:
    """A transport plus what it received, and the registry its metrics live in."""

    def __init__(self, transport: MeshTransport, registry: CollectorRegistry) -> None:
        self.transport = transport
        self.registry = registry
        self.received: list[tuple[str, pb.PBFTMessage]] = []
        transport.set_message_handler(self._on_message)

    def _on_message(self, sender: str, msg: pb.PBFTMessage) -> None:
        self.received.append((sender, msg))

    @property
    def id(self) -> str:
        return self.transport.node_id

    def metric(self, name: str, **labels: str) -> float:
        labels = {"transport": self.transport.kind, "node": self.id, **labels}
        return self.registry.get_sample_value(name, labels) or 0.0

    def metric_total(self, name: str) -> float:
        """`name` summed over every label value of this node (e.g. all error reasons)."""
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == name and sample.labels.get("node") == self.id
        )


def make_node(
    kind: str,
    signer: Signer,
    cluster: Verifier,
    config: TransportConfig = FAST,
    listen: str = "127.0.0.1:0",
    tls: TlsConfig | None = None,
) -> Node:
    registry = CollectorRegistry()
    transport = TRANSPORT_CLASSES[kind](signer, cluster, listen, config=config, registry=registry,
                                        tls=tls)
    return Node(transport, registry)


@contextlib.asynccontextmanager
async def mesh(kind: str, count: int, config: TransportConfig = FAST) -> AsyncIterator[list[Node]]:
    """`count` started nodes, every one dialed by every other (a full mesh)."""
    signers = keys(count)
    cluster = cluster_of(signers)
    nodes = [make_node(kind, s, cluster, config) for s in signers]
    try:
        for node in nodes:
            await node.transport.start()
        for a in nodes:
            for b in nodes:
                if a is not b:
                    await a.transport.add_peer(b.id, b.transport.address)
        yield nodes
    finally:
        for node in nodes:
            await node.transport.stop()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) for `condition`; fails the test with a clear message when it times out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)


def prepare(sender: str, sequence: int, payload: bytes = b"") -> pb.PBFTMessage:
    return pb.PBFTMessage(
        type=pb.PREPARE,
        view=1,
        sequence=sequence,
        node_id=sender,
        digest=b"d" * 32,
        payload=payload,
    )


def submitted(client: ReplicaClient, request: pb.PBFTMessage
              ) -> asyncio.Future[pb.SubmitRequestResponse]:
    """`client.submit_then` as a future: the answer, or the exception it was given."""
    future: asyncio.Future[pb.SubmitRequestResponse] = asyncio.get_running_loop().create_future()

    def answered(answer: pb.SubmitRequestResponse | BaseException) -> None:
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)

    client.submit_then(request, request.SerializeToString(), answered)
    return future
