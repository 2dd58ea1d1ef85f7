"""Cluster membership on disk: `cluster.toml` (every replica's id, addresses and public key, and
every client's public key and role), one `nodeK.toml` per replica (its private key and where it
keeps its data) and one `clients/clientK.key` per client identity (identity.py).

`cluster.toml` holds no private key: every replica loads it, and a replica holding a client's
private key could forge that client's requests. Private keys live in files readable by their
owner only (0600): a replica's in its node file, a client's in its key file.

Membership is static, as in PBFT: the replica set and its keys are fixed when the cluster is
created, and a node that is not listed here cannot join the mesh. Clients can be added
(`cluster client new`); replicas read the client list when they start. A PBFT client has one
request in flight at a time, so a load generator with C concurrent clients needs C identities,
and `cluster init` writes several.
"""

from __future__ import annotations

import random
import socket
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from blockmesh.control.cluster.identity import (
    ROLES,
    ClientIdentity,
    IdentityError,
    write_secret,
)
from blockmesh.control.consensus.params import PBFTParams
from blockmesh.control.consensus.proofs import Committee
from blockmesh.control.keys import Signer, public_key_from_hex
from blockmesh.control.pinset.config import PinsetConfig
from blockmesh.control.transport.tls import TlsConfig, generate_certificate, pem_to_der
from blockmesh.errors import BlockmeshError, DecodeError

METRICS_PORT_OFFSET = 100  # replica k serves /metrics on base_port + 100 + k
CLIENTS_DIR = "clients"  # client key files, next to cluster.toml
DEFAULT_CLIENTS = 64  # enough identities for the load generator's default 32 clients, twice
TRANSPORTS = ("grpc", "tcp")
MAX_CLIENT_ID_BYTES = 256
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
    tls_cert: str = ""  # PEM; its transport certificate (transport/tls.py)
    #: In a member cluster (one daemon per node, both planes): the libp2p peer id of the
    #: node's data plane and the multiaddr it listens on, bound to the replica key above by
    #: standing in the same entry of the file every member trusts.
    peer_id: str = ""
    swarm: str = ""


@dataclass(frozen=True)
class ClientInfo:
    """A client identity as replicas know it: public key and what it may do (ROLES)."""

    id: str
    public_key: bytes
    role: str = "writer"
    tls_cert: str = ""  # PEM; the certificate it presents to replicas
    #: The node this identity speaks for, when it is a member daemon's own identity: the
    #: pinset takes that member's reports (heartbeats, pin states, audits) from it alone.
    member: str = ""

    @property
    def writer(self) -> bool:
        return self.role == "writer"


@dataclass(frozen=True)
class ClusterConfig:
    nodes: tuple[NodeInfo, ...]
    clients: tuple[ClientInfo, ...]
    checkpoint_interval: int = 100
    #: What clients speak by default; `cluster start --transport` may override per replica.
    transport: str = "grpc"
    #: Further PBFTParams fields (the `[pbft]` table), the same for every replica.
    pbft: tuple[tuple[str, float | int], ...] = ()
    #: The directory cluster.toml was loaded from: client key files live under it.
    directory: Path | None = None
    #: The `[pinset]` table: what member daemons share about allocation.
    pinset: PinsetConfig = field(default_factory=PinsetConfig)

    @property
    def committee(self) -> Committee:
        """The replica set as the engine sees it (n, f, quorum, primary of a view)."""
        return Committee(tuple(n.id for n in self.nodes))

    def node(self, node_id: str) -> NodeInfo:
        for info in self.nodes:
            if info.id == node_id:
                return info
        raise ClusterConfigError(f"node {node_id!r} is not in the cluster")

    def public_keys(self) -> dict[str, bytes]:
        return {info.id: info.public_key for info in self.nodes}

    def client_keys(self) -> dict[str, bytes]:
        return {c.id: c.public_key for c in self.clients}

    def client(self, client_id: str) -> ClientInfo | None:
        for info in self.clients:
            if info.id == client_id:
                return info
        return None

    def writers(self) -> list[ClientInfo]:
        """Writers that are not a member's own identity (those act for their member)."""
        return [c for c in self.clients if c.writer and not c.member]

    def member_clients(self) -> dict[str, str]:
        """Client id -> the member it speaks for."""
        return {c.id: c.member for c in self.clients if c.member}

    def writer_identity(self, index: int = 0) -> ClientIdentity:
        """The key file of the index-th writer, from `clients/` next to cluster.toml (where
        `cluster init` writes them): the default identity of commands that act as a client."""
        writers = self.writers()
        if not 0 <= index < len(writers):
            raise ClusterConfigError(f"the cluster lists {len(writers)} writer identities, "
                                     f"not {index + 1}")
        if self.directory is None:
            raise ClusterConfigError("this cluster was not loaded from a file; "
                                     "pass a client identity explicitly")
        return self.identity(self.directory / CLIENTS_DIR / f"{writers[index].id}.key")

    def identity(self, path: Path) -> ClientIdentity:
        """The client key file at `path`, checked against the public key this cluster lists."""
        try:
            identity = ClientIdentity.load(path)
        except IdentityError as exc:
            raise ClusterConfigError(str(exc)) from None
        info = self.client(identity.client_id)
        if info is None or info.public_key != identity.signer().public_key:
            raise ClusterConfigError(f"{path}: {identity.client_id!r} is not a client of this "
                                     "cluster (or its key does not match cluster.toml)")
        return identity

    def tls(self, key_pem: str, cert_pem: str) -> TlsConfig:
        """TLS for a party holding `key_pem`/`cert_pem` (a replica's or a client's), trusting
        exactly the certificates this cluster lists."""
        try:
            return TlsConfig(key_pem, cert_pem, {n.id: n.tls_cert for n in self.nodes},
                             {c.id: c.tls_cert for c in self.clients})
        except DecodeError as exc:
            raise ClusterConfigError(f"bad TLS certificate in the cluster file: {exc}") from None

    def client_tls(self, identity: ClientIdentity) -> TlsConfig:
        info = self.client(identity.client_id)
        if info is None or not identity.tls_key or pem_to_der(identity.tls_cert) != pem_to_der(
                info.tls_cert):
            raise ClusterConfigError(f"{identity.client_id}'s TLS certificate is not the one "
                                     "cluster.toml lists for it (cluster migrate-keys?)")
        return self.tls(identity.tls_key, identity.tls_cert)

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
                       "metrics_address": n.metrics_address, "tls_cert": n.tls_cert,
                       **({"peer_id": n.peer_id, "swarm": n.swarm} if n.peer_id else {})}
                      for n in self.nodes],
            "clients": [{"id": c.id, "public_key": c.public_key.hex(), "role": c.role,
                         "tls_cert": c.tls_cert, **({"member": c.member} if c.member else {})}
                        for c in self.clients],
            "pinset": self.pinset.to_table(),
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
                         str(n["metrics_address"]), str(n.get("tls_cert", "")),
                         str(n.get("peer_id", "")), str(n.get("swarm", "")))
                for n in raw["nodes"])
            listed = raw["clients"] if "clients" in raw else [raw["client"]]
            if any("private_key" in c for c in listed):
                raise ClusterConfigError(
                    f"{path} holds client private keys, which would let every replica forge "
                    f"client requests; run `blockmesh cluster migrate-keys {path.parent}` to "
                    "move them into client key files")
            clients = tuple(ClientInfo(str(c["id"]), public_key_from_hex(c["public_key"]),
                                       str(c.get("role", "writer")), str(c.get("tls_cert", "")),
                                       str(c.get("member", "")))
                            for c in listed)
            if not all(x.tls_cert for x in (*nodes, *clients)):
                raise ClusterConfigError(
                    f"{path} lists identities without a TLS certificate (a cluster made before "
                    f"transports were encrypted); run `blockmesh cluster migrate-keys "
                    f"{path.parent}` to create them")
            section = raw.get("cluster", {})
            pbft = raw.get("pbft", {})
            if not isinstance(pbft, dict) or not set(pbft) <= _PARAM_NAMES:
                raise ValueError(f"unknown [pbft] keys {sorted(set(pbft) - _PARAM_NAMES)}")
            config = cls(nodes, clients, int(section.get("checkpoint_interval", 100)),
                         str(section.get("transport", "grpc")), tuple(sorted(pbft.items())),
                         path.parent, PinsetConfig.from_table(raw.get("pinset", {})))
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
        if any(c.role not in ROLES for c in clients):
            raise ClusterConfigError(f"{path}: a client's role is one of {', '.join(ROLES)}")
        if {c.id for c in clients} & {n.id for n in nodes}:
            raise ClusterConfigError(f"{path}: a client id may not be a node id")
        if any(c.member and (c.member not in committee.nodes or not c.writer) for c in clients):
            raise ClusterConfigError(f"{path}: a member identity names a node and is a writer")
        for listed_cert in (*nodes, *clients):
            try:
                pem_to_der(listed_cert.tls_cert)
            except DecodeError as exc:
                raise ClusterConfigError(f"{path}: {listed_cert.id}: {exc}") from None
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
    tls_key: str = ""  # PEM; the private key of the transport certificate cluster.toml lists

    def signer(self) -> Signer:
        return Signer.from_hex(self.node_id, self.private_key)

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        raw = _read(path)
        base = path.parent
        try:
            config = cls(str(raw["node_id"]), str(raw["private_key"]),
                         base / str(raw["cluster"]), base / str(raw["data_dir"]),
                         str(raw.get("transport", "grpc")), str(raw.get("tls_key", "")))
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


def node_hosts(host: str | Sequence[str], nodes: int) -> list[str]:
    """The address each of `nodes` replicas binds: one host for all of them (each on its own
    port), or one host per node in node order (replicas on separate machines or network
    namespaces; the ports still derive from the base port, so node k uses port P + k on its
    own host)."""
    hosts = [host] if isinstance(host, str) else list(host)
    if len(hosts) == 1:
        return hosts * nodes
    if len(hosts) != nodes:
        raise ClusterConfigError(f"give one --host for every node or one for all of them, "
                                 f"not {len(hosts)} for {nodes} nodes")
    return hosts


def init_cluster(out: Path, nodes: int, host: str | Sequence[str], base_port: int,
                 checkpoint_interval: int = 100, *, clients: int = DEFAULT_CLIENTS,
                 transport: str = "grpc",
                 pbft: dict[str, float | int] | None = None,
                 force: bool = False) -> ClusterConfig:
    """Write cluster.toml, node0.toml … node{n-1}.toml and clients/client0.key … with fresh
    Ed25519 keys. Every client `init` creates is a writer (`cluster client new --role reader`
    adds readers). `host` is one address for every replica or one per replica (node_hosts).

    A directory that already holds a cluster is refused unless `force`: new keys would
    orphan the old cluster's key files and leave its replicas' logs owned by keys that no
    longer exist (the replicas then refuse to start on them, see SqliteStore.claim)."""
    if nodes < 4 or (nodes - 1) % 3:
        raise ClusterConfigError(f"--nodes must be 3f + 1 (4, 7, 10, ...), got {nodes}")
    if clients < 1:
        raise ClusterConfigError("a cluster needs at least one client identity")
    if transport not in TRANSPORTS:
        raise ClusterConfigError("transport must be grpc or tcp")
    hosts = node_hosts(host, nodes)
    if (out / "cluster.toml").exists() and not force:
        raise ClusterConfigError(f"{out} already holds a cluster (cluster.toml); pass --force "
                                 "to replace its keys")
    out.mkdir(parents=True, exist_ok=True)
    signers = [Signer.generate(f"node{k}") for k in range(nodes)]
    node_tls = [generate_certificate(s.node_id) for s in signers]
    identities = [new_identity(f"client{k}") for k in range(clients)]
    config = ClusterConfig(
        tuple(NodeInfo(s.node_id, f"{hosts[k]}:{base_port + k}", s.public_key,
                       f"{hosts[k]}:{base_port + METRICS_PORT_OFFSET + k}", node_tls[k][1])
              for k, s in enumerate(signers)),
        tuple(ClientInfo(i.client_id, i.signer().public_key, "writer", i.tls_cert)
              for i in identities),
        checkpoint_interval, transport, tuple(sorted((pbft or {}).items())), out)
    config.params()
    (out / CLIENTS_DIR).mkdir(mode=0o700, exist_ok=True)
    for identity in identities:
        identity.save(out / CLIENTS_DIR / f"{identity.client_id}.key")
    for signer, (tls_key, _) in zip(signers, node_tls, strict=True):
        write_secret(out / f"{signer.node_id}.toml", tomli_w.dumps({
            "node_id": signer.node_id, "private_key": signer.private_hex(),
            "cluster": "cluster.toml", "data_dir": f"{signer.node_id}-data",
            "transport": transport, "tls_key": tls_key}))
    (out / "cluster.toml").write_text(config.to_toml())
    return config


def new_identity(client_id: str) -> ClientIdentity:
    signer = Signer.generate(client_id)
    return ClientIdentity(client_id, signer.private_hex(), *generate_certificate(client_id))


def add_client(cluster_path: Path, out: Path, role: str = "writer",
               client_id: str | None = None) -> ClientInfo:
    """`cluster client new`: a fresh identity in the key file `out`, listed in cluster.toml
    with `role`. Running replicas learn of it when they restart."""
    if role not in ROLES:
        raise ClusterConfigError(f"role must be one of {', '.join(ROLES)}")
    config = ClusterConfig.load(cluster_path)
    taken = {c.id for c in config.clients} | {n.id for n in config.nodes}
    if client_id is None:
        client_id = next(f"client{k}" for k in range(len(taken) + 1) if f"client{k}" not in taken)
    elif client_id in taken or not client_id or len(client_id.encode()) > MAX_CLIENT_ID_BYTES:
        raise ClusterConfigError(f"client id {client_id!r} is taken or not a valid id")
    if out.exists():
        raise ClusterConfigError(f"{out} exists; a key file is never overwritten")
    identity = new_identity(client_id)
    info = ClientInfo(client_id, identity.signer().public_key, role, identity.tls_cert)
    identity.save(out)
    updated = replace(config, clients=(*config.clients, info))
    cluster_path.write_text(updated.to_toml())
    return info


def migrate_keys(directory: Path) -> list[Path]:
    """`cluster migrate-keys`: bring a cluster made by an older blockmesh up to date. Client
    private keys move out of cluster.toml into clients/<id>.key files (0600), and every
    replica and client without a TLS certificate gets one (its key in its node or key file,
    the certificate in cluster.toml). Returns the files written; none when up to date."""
    path = directory / "cluster.toml"
    raw = _read(path)
    listed = raw.get("clients", [raw["client"]] if "client" in raw else [])
    (directory / CLIENTS_DIR).mkdir(mode=0o700, exist_ok=True)
    written = []
    try:
        for entry in listed:
            key_file = directory / CLIENTS_DIR / f"{entry['id']}.key"
            secret = entry.pop("private_key", None)
            if secret is not None:
                identity = ClientIdentity(str(entry["id"]), str(secret))
                if identity.signer().public_key != public_key_from_hex(entry["public_key"]):
                    raise ClusterConfigError(f"{path}: {entry['id']}'s private key does not "
                                             "match its public key")
            elif not entry.get("tls_cert"):
                identity = ClientIdentity.load(key_file)
            else:
                continue
            # A client whose key sat in cluster.toml predates TLS: it gets its first certificate.
            tls_key, tls_cert = generate_certificate(identity.client_id)
            identity = replace(identity, tls_key=tls_key, tls_cert=tls_cert)
            entry["tls_cert"] = tls_cert
            identity.save(key_file)
            written.append(key_file)
            entry.setdefault("role", "writer")
        for entry in raw["nodes"]:
            if entry.get("tls_cert"):
                continue
            node_file = directory / f"{entry['id']}.toml"
            node = _read(node_file)
            node["tls_key"], entry["tls_cert"] = generate_certificate(str(entry["id"]))
            write_secret(node_file, tomli_w.dumps(node))
            written.append(node_file)
    except (KeyError, TypeError, DecodeError, IdentityError) as exc:
        raise ClusterConfigError(f"cannot migrate {directory}: {exc}") from None
    raw.pop("client", None)
    raw["clients"] = listed
    if written:
        path.write_text(tomli_w.dumps(raw))
    return written


def free_base_port(nodes: int = 4, host: str = "127.0.0.1") -> int:
    """A base port P whose replica ports P+k, metrics ports P+100+k, member swarm ports P+200+k
    and member gateway ports P+300+k are all free right now, for clusters that tests,
    benchmarks and the demo start on loopback.

    Only below the kernel's ephemeral range: between this probe and the daemons' binds, any
    outgoing connection on the machine (a dial, a CLI call to an API) may be given a port in
    that range, and a replica that loses its port that way fails to start."""
    low = _ephemeral_low()
    top = (min(low, 60_000) if low > 20_000 else 60_000) - 4 * METRICS_PORT_OFFSET
    for _ in range(200):
        base = random.randrange(10_000, top)
        ports = [base + offset * METRICS_PORT_OFFSET + k for offset in range(4)
                 for k in range(nodes)]
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return base
    raise ClusterConfigError(f"no free range of 4 x {nodes} ports on {host}")


def _ephemeral_low() -> int:
    """The first port of Linux's ephemeral range (its default where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768
