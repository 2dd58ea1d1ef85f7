"""Cluster membership on disk: `cluster.toml` (everyone's ids, addresses and public keys, plus the
client identity) and one `nodeK.toml` per replica (its private key and where it keeps its data).

Membership is static, as in PBFT: the replica set and its keys are fixed when the cluster is
created, and a node that is not listed here cannot join the mesh.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from blockmesh.control.keys import Signer, public_key_from_hex
from blockmesh.errors import BlockmeshError, DecodeError

METRICS_PORT_OFFSET = 100  # replica k serves /metrics on base_port + 100 + k


class ClusterConfigError(BlockmeshError):
    """A cluster or node file is missing, malformed, or inconsistent with the other."""


@dataclass(frozen=True)
class NodeInfo:
    id: str
    address: str  # host:port of the replica's transport
    public_key: bytes
    metrics_address: str  # host:port of its Prometheus /metrics


@dataclass(frozen=True)
class ClusterConfig:
    nodes: tuple[NodeInfo, ...]
    client_id: str
    client_public_key: bytes
    client_private_key: str  # hex; lets `cluster submit` sign requests
    checkpoint_interval: int = 100

    @property
    def n(self) -> int:
        return len(self.nodes)

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    def node(self, node_id: str) -> NodeInfo:
        for info in self.nodes:
            if info.id == node_id:
                return info
        raise ClusterConfigError(f"node {node_id!r} is not in the cluster")

    def public_keys(self) -> dict[str, bytes]:
        return {info.id: info.public_key for info in self.nodes}

    def client_signer(self) -> Signer:
        return Signer.from_hex(self.client_id, self.client_private_key)

    def to_toml(self) -> str:
        return tomli_w.dumps({
            "cluster": {"checkpoint_interval": self.checkpoint_interval},
            "nodes": [{"id": n.id, "address": n.address, "public_key": n.public_key.hex(),
                       "metrics_address": n.metrics_address} for n in self.nodes],
            "client": {"id": self.client_id, "public_key": self.client_public_key.hex(),
                       "private_key": self.client_private_key},
        })

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        raw = _read(path)
        try:
            nodes = tuple(
                NodeInfo(str(n["id"]), str(n["address"]), public_key_from_hex(n["public_key"]),
                         str(n["metrics_address"]))
                for n in raw["nodes"])
            client = raw["client"]
            config = cls(nodes, str(client["id"]), public_key_from_hex(client["public_key"]),
                         str(client["private_key"]),
                         int(raw.get("cluster", {}).get("checkpoint_interval", 100)))
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise ClusterConfigError(f"{path}: malformed cluster file ({exc})") from None
        if config.n < 4 or config.n != 3 * config.f + 1:
            raise ClusterConfigError(f"{path}: a PBFT cluster needs n = 3f + 1 >= 4 nodes, "
                                     f"found {config.n}")
        if len({n.id for n in nodes}) != len(nodes):
            raise ClusterConfigError(f"{path}: node ids must be unique")
        return config


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    private_key: str  # hex
    cluster_path: Path
    data_dir: Path
    transport: str = "grpc"

    def signer(self) -> Signer:
        return Signer.from_hex(self.node_id, self.private_key)

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        raw = _read(path)
        base = path.parent
        try:
            config = cls(str(raw["node_id"]), str(raw["private_key"]),
                         base / str(raw["cluster"]), base / str(raw["data_dir"]),
                         str(raw.get("transport", "grpc")))
        except (KeyError, TypeError) as exc:
            raise ClusterConfigError(f"{path}: malformed node file (missing {exc})") from None
        if config.transport not in ("grpc", "tcp"):
            raise ClusterConfigError(f"{path}: transport must be grpc or tcp")
        return config


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ClusterConfigError(f"no such file: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ClusterConfigError(f"{path}: not valid TOML ({exc})") from None


def init_cluster(out: Path, nodes: int, host: str, base_port: int,
                 checkpoint_interval: int = 100) -> ClusterConfig:
    """Write cluster.toml and node0.toml … node{n-1}.toml with fresh Ed25519 keys."""
    if nodes < 4 or (nodes - 1) % 3:
        raise ClusterConfigError(f"--nodes must be 3f + 1 (4, 7, 10, ...), got {nodes}")
    out.mkdir(parents=True, exist_ok=True)
    signers = [Signer.generate(f"node{k}") for k in range(nodes)]
    client = Signer.generate("client0")
    config = ClusterConfig(
        tuple(NodeInfo(s.node_id, f"{host}:{base_port + k}", s.public_key,
                       f"{host}:{base_port + METRICS_PORT_OFFSET + k}")
              for k, s in enumerate(signers)),
        client.node_id, client.public_key, client.private_hex(), checkpoint_interval)
    (out / "cluster.toml").write_text(config.to_toml())
    for signer in signers:
        node_file = out / f"{signer.node_id}.toml"
        node_file.write_text(tomli_w.dumps({
            "node_id": signer.node_id, "private_key": signer.private_hex(),
            "cluster": "cluster.toml", "data_dir": f"{signer.node_id}-data", "transport": "grpc"}))
        node_file.chmod(0o600)
    (out / "cluster.toml").chmod(0o600)
    return config
