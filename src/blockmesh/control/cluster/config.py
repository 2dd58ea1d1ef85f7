"""Cluster membership on disk: `cluster.toml` (everyone's ids, addresses and public keys, plus the
client identity) and one `nodeK.toml` per replica (its private key and where it keeps its data).

Membership is static, as in PBFT: the replica set and its keys are fixed when the cluster is
created, and a node that is not listed here cannot join the mesh. The same holds for clients:
a PBFT client has one request in flight at a time, so a load generator with C concurrent
clients needs C identities, and `cluster init` writes several.
"""

from __future__ import annotations

import random
import socket
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import tomli_w

from blockmesh.control.consensus.params import PBFTParams
from blockmesh.control.consensus.proofs import Committee
from blockmesh.control.keys import Signer, public_key_from_hex
from blockmesh.errors import BlockmeshError, DecodeError

METRICS_PORT_OFFSET = 100  # replica k serves /metrics on base_port + 100 + k
DEFAULT_CLIENTS = 64  # enough identities for the load generator's default 32 clients, twice
TRANSPORTS = ("grpc", "tcp")
_PARAM_NAMES = {f.name for f in fields(PBFTParams)}
#: Where replica processes differ from the engine's defaults (a [pbft] table still wins).
#: One batch in flight, as BFT-SMaRt orders: these replicas are CPU-bound on signatures, and
#: with four in flight most batches held a single request, each paying a full round of
#: PRE_PREPARE/PREPARE/COMMIT signatures. A 1 ms batch delay lets the requests that clients
#: send as the previous batch's replies reach them join one batch instead of splitting into
#: several small ones: with 32 closed-loop clients the mean batch goes from 11 to 30 and the
#: CPU per request falls by a third (docs/benchmarks.md, "PBFT cluster").
REPLICA_DEFAULTS: dict[str, float | int] = {"max_inflight_batches": 1, "max_batch_delay": 0.001}


class ClusterConfigError(BlockmeshError):
    """A cluster or node file is missing, malformed, or inconsistent with the other."""


@dataclass(frozen=True)
class NodeInfo:
    id: str
    address: str  # host:port of the replica's transport
    public_key: bytes
    metrics_address: str  # host:port of its Prometheus /metrics


@dataclass(frozen=True)
class ClientInfo:
    id: str
    public_key: bytes
    private_key: str  # hex; lets `cluster submit` sign requests

    def signer(self) -> Signer:
        return Signer.from_hex(self.id, self.private_key)


@dataclass(frozen=True)
class ClusterConfig:
    nodes: tuple[NodeInfo, ...]
    clients: tuple[ClientInfo, ...]
    checkpoint_interval: int = 100
    #: What clients speak by default; `cluster start --transport` may override per replica.
    transport: str = "grpc"
    #: Further PBFTParams fields (the `[pbft]` table), the same for every replica.
    pbft: tuple[tuple[str, float | int], ...] = ()

    @property
    def committee(self) -> Committee:
        """The replica set as the engine sees it (n, f, quorum, primary of a view)."""
        return Committee(tuple(n.id for n in self.nodes))

    @property
    def client_id(self) -> str:
        return self.clients[0].id

    @property
    def client_public_key(self) -> bytes:
        return self.clients[0].public_key

    @property
    def client_private_key(self) -> str:
        return self.clients[0].private_key

    def node(self, node_id: str) -> NodeInfo:
        for info in self.nodes:
            if info.id == node_id:
                return info
        raise ClusterConfigError(f"node {node_id!r} is not in the cluster")

    def public_keys(self) -> dict[str, bytes]:
        return {info.id: info.public_key for info in self.nodes}

    def client_keys(self) -> dict[str, bytes]:
        return {c.id: c.public_key for c in self.clients}

    def client_signer(self, index: int = 0) -> Signer:
        if not 0 <= index < len(self.clients):
            raise ClusterConfigError(f"the cluster lists {len(self.clients)} client identities, "
                                     f"not {index + 1}")
        return self.clients[index].signer()

    def params(self) -> PBFTParams:
        """The engine parameters every replica of this cluster runs with."""
        try:
            return PBFTParams(**{"checkpoint_interval": self.checkpoint_interval,
                                 **REPLICA_DEFAULTS, **self._window(), **dict(self.pbft)})
        except (TypeError, ValueError) as exc:
            raise ClusterConfigError(f"bad [pbft] parameters: {exc}") from None

    def _window(self) -> dict[str, int]:
        # The log window must be a multiple of the interval; the default one fits only some.
        if "log_window" in dict(self.pbft) or PBFTParams.log_window % self.checkpoint_interval == 0:
            return {}
        return {"log_window": 2 * self.checkpoint_interval}

    def to_toml(self) -> str:
        cluster: dict[str, Any] = {"checkpoint_interval": self.checkpoint_interval,
                                   "transport": self.transport}
        doc: dict[str, Any] = {
            "cluster": cluster,
            "nodes": [{"id": n.id, "address": n.address, "public_key": n.public_key.hex(),
                       "metrics_address": n.metrics_address} for n in self.nodes],
            "clients": [{"id": c.id, "public_key": c.public_key.hex(),
                         "private_key": c.private_key} for c in self.clients],
        }
        if self.pbft:
            doc["pbft"] = dict(self.pbft)
        return tomli_w.dumps(doc)

    @classmethod
    def load(cls, path: Path) -> ClusterConfig:
        raw = _read(path)
        try:
            nodes = tuple(
                NodeInfo(str(n["id"]), str(n["address"]), public_key_from_hex(n["public_key"]),
                         str(n["metrics_address"]))
                for n in raw["nodes"])
            listed = raw["clients"] if "clients" in raw else [raw["client"]]
            clients = tuple(ClientInfo(str(c["id"]), public_key_from_hex(c["public_key"]),
                                       str(c["private_key"])) for c in listed)
            section = raw.get("cluster", {})
            pbft = raw.get("pbft", {})
            if not isinstance(pbft, dict) or not set(pbft) <= _PARAM_NAMES:
                raise ValueError(f"unknown [pbft] keys {sorted(set(pbft) - _PARAM_NAMES)}")
            config = cls(nodes, clients, int(section.get("checkpoint_interval", 100)),
                         str(section.get("transport", "grpc")), tuple(sorted(pbft.items())))
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise ClusterConfigError(f"{path}: malformed cluster file ({exc})") from None
        if len({n.id for n in nodes}) != len(nodes):
            raise ClusterConfigError(f"{path}: node ids must be unique")
        committee = config.committee
        if committee.n < 4 or committee.n != 3 * committee.f + 1:
            raise ClusterConfigError(f"{path}: a PBFT cluster needs n = 3f + 1 >= 4 nodes, "
                                     f"found {committee.n}")
        if not clients or len({c.id for c in clients}) != len(clients):
            raise ClusterConfigError(f"{path}: client ids must be present and unique")
        if config.transport not in TRANSPORTS:
            raise ClusterConfigError(f"{path}: transport must be grpc or tcp")
        config.params()
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
        if config.transport not in TRANSPORTS:
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
                 checkpoint_interval: int = 100, *, clients: int = DEFAULT_CLIENTS,
                 transport: str = "grpc",
                 pbft: dict[str, float | int] | None = None) -> ClusterConfig:
    """Write cluster.toml and node0.toml … node{n-1}.toml with fresh Ed25519 keys."""
    if nodes < 4 or (nodes - 1) % 3:
        raise ClusterConfigError(f"--nodes must be 3f + 1 (4, 7, 10, ...), got {nodes}")
    if clients < 1:
        raise ClusterConfigError("a cluster needs at least one client identity")
    if transport not in TRANSPORTS:
        raise ClusterConfigError("transport must be grpc or tcp")
    out.mkdir(parents=True, exist_ok=True)
    signers = [Signer.generate(f"node{k}") for k in range(nodes)]
    client_signers = [Signer.generate(f"client{k}") for k in range(clients)]
    config = ClusterConfig(
        tuple(NodeInfo(s.node_id, f"{host}:{base_port + k}", s.public_key,
                       f"{host}:{base_port + METRICS_PORT_OFFSET + k}")
              for k, s in enumerate(signers)),
        tuple(ClientInfo(c.node_id, c.public_key, c.private_hex()) for c in client_signers),
        checkpoint_interval, transport, tuple(sorted((pbft or {}).items())))
    config.params()
    (out / "cluster.toml").write_text(config.to_toml())
    for signer in signers:
        node_file = out / f"{signer.node_id}.toml"
        node_file.write_text(tomli_w.dumps({
            "node_id": signer.node_id, "private_key": signer.private_hex(),
            "cluster": "cluster.toml", "data_dir": f"{signer.node_id}-data",
            "transport": transport}))
        node_file.chmod(0o600)
    (out / "cluster.toml").chmod(0o600)
    return config


def free_base_port(nodes: int = 4, host: str = "127.0.0.1") -> int:
    """A base port P whose replica ports P+k and metrics ports P+100+k are all free right now,
    for clusters that tests, benchmarks and the demo start on loopback."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000)
        ports = [base + k for k in range(nodes)]
        ports += [base + METRICS_PORT_OFFSET + k for k in range(nodes)]
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return base
    raise ClusterConfigError(f"no free range of {nodes} + {nodes} ports on {host}")
