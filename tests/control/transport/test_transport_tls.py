"""Mutual TLS on both transports: members mesh and clients read over encrypted connections,
and nobody without a certificate the cluster lists gets a connection, let alone state."""

from __future__ import annotations

import asyncio

import pytest
from transport_harness import FAST, KINDS, cluster_of, keys, make_node, prepare, until

from blockmesh.control.transport import AuthenticationError, PeerError, ReplicaClient
from blockmesh.control.transport.tls import TlsConfig, generate_certificate, pem_to_der

EACH_KIND = pytest.mark.parametrize("kind", KINDS)


class Certs:
    """TLS material for members n0..n{count-1} and clients c0 (a reader in spirit: listed,
    not a member), plus a stranger with a certificate the cluster does not list."""

    def __init__(self, count: int) -> None:
        self.signers = keys(count)
        self.pairs = {s.node_id: generate_certificate(s.node_id) for s in self.signers}
        self.client = generate_certificate("c0")
        self.members = {node: cert for node, (_, cert) in self.pairs.items()}

    def tls(self, key: str, cert: str) -> TlsConfig:
        return TlsConfig(key, cert, self.members, {"c0": self.client[1]})

    def node_tls(self, node: str, cert_of: str | None = None) -> TlsConfig:
        return self.tls(*self.pairs[cert_of or node])


async def _started(kind: str, certs: Certs, cert_of: dict[str, str] | None = None):
    cluster = cluster_of(certs.signers)
    nodes = [make_node(kind, s, cluster, FAST,
                       tls=certs.node_tls(s.node_id, (cert_of or {}).get(s.node_id)))
             for s in certs.signers]
    for node in nodes:
        await node.transport.start()
    return nodes


@EACH_KIND
def test_members_mesh_and_exchange_messages_over_tls(kind):
    async def scenario() -> None:
        certs = Certs(2)
        a, b = await _started(kind, certs)
        try:
            await a.transport.add_peer(b.id, b.transport.address)
            await a.transport.send(b.id, prepare(a.id, 1))
            await until(lambda: len(b.received) == 1)
            assert b.received[0][0] == a.id
        finally:
            for node in (a, b):
                await node.transport.stop()

    asyncio.run(scenario())


@EACH_KIND
def test_a_listed_client_reads_state_and_status(kind):
    async def scenario() -> None:
        certs = Certs(1)
        (a,) = await _started(kind, certs)
        try:
            tls = certs.tls(*certs.client)
            async with ReplicaClient(kind, a.transport.address, config=FAST, tls=tls,
                                     peer=a.id) as client:
                assert (await client.get_status()).node_id == a.id
                assert (await client.sync_state(1)).height == 0
        finally:
            await a.transport.stop()

    asyncio.run(scenario())


@EACH_KIND
def test_state_reads_without_a_listed_certificate_are_refused(kind):
    """No certificate (plaintext), or a certificate the cluster does not list: no answer."""
    async def scenario() -> None:
        certs = Certs(1)
        (a,) = await _started(kind, certs)
        stranger = TlsConfig(*generate_certificate("c0"), certs.members, {})
        try:
            for tls in (None, stranger):
                client = ReplicaClient(kind, a.transport.address, config=FAST, tls=tls,
                                       peer=a.id if tls else None)
                try:
                    with pytest.raises(PeerError):
                        await client.get_status()
                    with pytest.raises(PeerError):
                        await client.sync_state(1)
                finally:
                    await client.close()
            assert a.metric_total("blockmesh_transport_messages_received_total") == 0
        finally:
            await a.transport.stop()

    asyncio.run(scenario())


@EACH_KIND
def test_a_client_does_not_take_an_impostor_for_the_replica_it_dialed(kind):
    async def scenario() -> None:
        certs = Certs(2)
        a, b = await _started(kind, certs)
        try:
            tls = certs.tls(*certs.client)
            client = ReplicaClient(kind, a.transport.address, config=FAST, tls=tls, peer=b.id)
            try:
                with pytest.raises(PeerError):
                    await client.get_status()
            finally:
                await client.close()
        finally:
            for node in (a, b):
                await node.transport.stop()

    asyncio.run(scenario())


@EACH_KIND
def test_a_member_presenting_another_members_certificate_is_refused(kind):
    """n1 holds n0's TLS key (say, stolen) but proves n1's Ed25519 key in the handshake:
    the certificate is not the one listed for n1, so neither side keeps the connection."""
    async def scenario() -> None:
        certs = Certs(3)
        a, b, c = await _started(kind, certs, cert_of={"n1": "n0"})
        try:
            with pytest.raises(PeerError):
                await b.transport.add_peer(c.id, c.transport.address)
            await c.transport.add_peer(a.id, a.transport.address)  # honest pair: fine
            with pytest.raises(PeerError):
                await c.transport.add_peer(b.id, b.transport.address)
            await until(lambda: c.metric("blockmesh_transport_connection_errors_total",
                                         reason="auth") >= 1)
            assert b.id not in c.transport.peers()
        finally:
            for node in (a, b, c):
                await node.transport.stop()

    asyncio.run(scenario())


def test_identity_is_the_exact_listed_certificate_not_a_name():
    certs = Certs(1)
    tls = certs.tls(*certs.client)
    listed = pem_to_der(certs.members["n0"])
    assert tls.identify(listed) == "n0" and tls.may_read(listed) == "n0"
    same_name = pem_to_der(generate_certificate("n0")[1])
    for unknown in (same_name, None):
        assert tls.identify(unknown) is None
        with pytest.raises(AuthenticationError):
            tls.may_read(unknown)
    with pytest.raises(AuthenticationError):
        tls.expect(pem_to_der(certs.client[1]), "n0")
