"""Cluster membership of a repo: the layout `cluster init` writes and the daemon reads.

A member is one repo (`DIR/nodeK`, usable as BLOCKMESH_PATH) holding both planes' keys: its
libp2p identity (`identity.key`), its replica key and TLS key (`cluster-member.toml`, a node file
as `cluster start` reads it) and the client identity the daemon signs pinset operations with
(`member.key`). The shared `DIR/cluster.toml` binds each replica key to that node's peer id and
swarm address, and each member's client identity to its node, so every member knows every
other for PBFT and for Bitswap alike. Every port derives from the base port P:

    P + k          replica k's PBFT transport (gRPC or TCP)
    P + 100 + k    replica k's Prometheus /metrics
    P + 200 + k    member k's libp2p swarm (Bitswap, DHT)
    P + 300 + k    member k's HTTP gateway (loopback-bound like the API: `[gateway] listen`)

All members bind one host (`--host 127.0.0.1`, the default: every member on this machine), or
each member its own IPv4 address (`--host H0 --host H1 ...`, one per member in node order:
members on separate machines or network namespaces). Member k's replica and swarm then listen
on Hk, and cluster.toml lists its metrics at Hk too (the daemon serves /metrics on loopback,
as `cluster start` does without --metrics-host). The ports stay P + k, P + 100 + k and
P + 200 + k on each member's own address; every member's gateway binds 127.0.0.1, since
serving content over HTTP beyond the machine is the operator's choice, as for a single node.

The daemon's control API takes a free port and writes it to the repo's `api` file, as always.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import tomli_w

from blockmesh.control.cluster.config import (
    ClientInfo,
    ClusterConfig,
    ClusterConfigError,
    NodeConfig,
    init_cluster,
    new_identity,
    node_hosts,
)
from blockmesh.control.cluster.identity import ClientIdentity, write_secret
from blockmesh.control.pinset.config import PinsetConfig
from blockmesh.data.net import load_or_create_identity
from blockmesh.data.store.config import AddressesConfig, Config, GatewayConfig
from blockmesh.data.store.repo import Repo

MEMBER_FILE = "cluster-member.toml"
MEMBER_KEY = "member.key"
SWARM_PORT_OFFSET = 200
GATEWAY_PORT_OFFSET = 300


def member_swarm(host: str, base_port: int, index: int) -> str:
    return f"/ip4/{host}/tcp/{base_port + SWARM_PORT_OFFSET + index}"


def init_members(out: Path, nodes: int, host: str | Sequence[str], base_port: int, *,
                 pinset: PinsetConfig | None = None, transport: str = "grpc",
                 checkpoint_interval: int = 100, clients: int = 1,
                 force: bool = False) -> ClusterConfig:
    """`cluster init`: cluster.toml, clients/, and one member repo per node (DIR/nodeK).
    `host` is the IPv4 address every member binds, or one address per member."""
    hosts = node_hosts(host, nodes)
    for address in hosts:
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise ClusterConfigError(f"--host must be an IPv4 address for member swarms, "
                                     f"not {address!r}") from None
    for k in range(nodes):
        if (out / f"node{k}").exists():
            raise ClusterConfigError(f"{out / f'node{k}'} exists: a member repo holds blocks "
                                     "and keys that new keys would orphan; move it away first")
    config = init_cluster(out, nodes, hosts, base_port, checkpoint_interval, clients=clients,
                          transport=transport, force=force)
    members, member_clients = [], []
    for k, info in enumerate(config.nodes):
        repo_dir = out / info.id
        swarm = member_swarm(hosts[k], base_port, k)
        gateway = f"/ip4/127.0.0.1/tcp/{base_port + GATEWAY_PORT_OFFSET + k}"
        Repo.init(repo_dir, Config(addresses=AddressesConfig(swarm=[swarm]),
                                   gateway=GatewayConfig(listen=gateway))).close()
        peer_id = load_or_create_identity(repo_dir).peer_id
        node_file = out / f"{info.id}.toml"
        raw = tomllib.loads(node_file.read_text())
        raw.update(cluster="../cluster.toml", data_dir="consensus")
        write_secret(repo_dir / MEMBER_FILE, tomli_w.dumps(raw))
        node_file.unlink()
        identity = new_identity(f"{info.id}-member")
        identity.save(repo_dir / MEMBER_KEY)
        members.append(replace(info, peer_id=peer_id, swarm=swarm))
        member_clients.append(ClientInfo(identity.client_id, identity.signer().public_key,
                                         "writer", identity.tls_cert, member=info.id))
    config = replace(config, nodes=tuple(members), clients=config.clients + tuple(member_clients),
                     pinset=pinset or PinsetConfig())
    (out / "cluster.toml").write_text(config.to_toml())
    return ClusterConfig.load(out / "cluster.toml")


def load_membership(repo_path: Path) -> tuple[NodeConfig, ClusterConfig, ClientIdentity] | None:
    """The member's node file, cluster and client identity; None when not a member."""
    path = repo_path / MEMBER_FILE
    if not path.exists():
        return None
    node = NodeConfig.load(path)
    cluster = ClusterConfig.load(node.cluster_path)
    identity = cluster.identity(repo_path / MEMBER_KEY)
    if cluster.member_clients().get(identity.client_id) != node.node_id:
        raise ClusterConfigError(f"{repo_path / MEMBER_KEY} is not {node.node_id}'s member "
                                 "identity in cluster.toml")
    return node, cluster, identity
