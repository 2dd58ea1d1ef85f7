"""The repo's TOML configuration: every limit and choice in one documented place."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from blockmesh.errors import BlockmeshError


class ConfigError(BlockmeshError):
    """The config file is unreadable or holds a value of the wrong kind."""


@dataclass
class DatastoreConfig:
    # lmdb: one transactional file, ~10x the puts/s of flatfs on small blocks (docs/benchmarks.md)
    engine: str = "lmdb"
    # fsync every write: survives power loss, not only a killed process; costs throughput
    sync: bool = False


@dataclass
class ImportConfig:
    cid_version: int = 0
    chunker: str = "size-262144"
    hash: str = "sha2-256"


@dataclass
class AddressesConfig:
    # where `blockmesh daemon` listens unless --listen says otherwise (loopback by default:
    # exposing a node is a choice the operator makes here)
    swarm: list[str] = field(default_factory=lambda: ["/ip4/127.0.0.1/tcp/4001"])


@dataclass
class BootstrapConfig:
    # Empty by default: nothing leaves loopback unless the operator lists peers here
    # (`blockmesh bootstrap add`); dialled while the node has fewer than min_peers peers
    peers: list[str] = field(default_factory=list)
    min_peers: int = 4  # kubo's MinPeerThreshold
    # reconnect backoff of bootstrap and peering peers: full jitter, ceilings base*2^n up to cap
    backoff_base: float = 1.0
    backoff_cap: float = 300.0


@dataclass
class PeeringConfig:
    # always-connected peers (kubo's Peering.Peers): redialled with backoff, never trimmed
    peers: list[str] = field(default_factory=list)


@dataclass
class ConnMgrConfig:
    # kubo's Swarm.ConnMgr defaults: over high_water peers, trim the least useful to low_water
    low_water: int = 32
    high_water: int = 96
    grace_period: float = 20.0  # seconds a new connection is never trimmed


@dataclass
class FiltersConfig:
    # multiaddr rules: /ip4/10.0.0.0/ipcidr/8, /ip6/fd00::/ipcidr/8, /p2p/<peer id>
    deny: list[str] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)  # non-empty: only these ranges/peers


@dataclass
class GatewayConfig:
    # the HTTP gateway's address (kubo's default; loopback: exposing it is the operator's
    # choice); "" turns the gateway off. `blockmesh daemon --gateway` overrides it.
    listen: str = "/ip4/127.0.0.1/tcp/8080"
    # seconds a gateway request waits for one block over Bitswap before answering 504
    timeout: float = 30.0
    # MiB a file or CAR response fetches ahead of what its client has read (what it may hold)
    read_ahead_mib: int = 32


@dataclass
class DiscoveryConfig:
    # mDNS on the local network (docs/mdns-and-bandwidth.md). Off: with it off the node opens
    # no multicast socket and sends nothing beyond the addresses it is told to dial.
    mdns: bool = False
    # seconds between mDNS queries (kubo's Discovery.MDNS.Interval)
    interval: int = 10
    # interfaces to announce and query on; empty: those holding the swarm listen addresses
    interfaces: list[str] = field(default_factory=list)


@dataclass
class BandwidthConfig:
    # bytes per second, 0 = unlimited: rate_* for all peers together, peer_rate_* for each peer
    rate_in: int = 0
    rate_out: int = 0
    peer_rate_in: int = 0
    peer_rate_out: int = 0
    # per-peer overrides: [bandwidth.peers.<peer id>] rate_in = N, rate_out = N (0 exempts)
    peers: dict[str, Any] = field(default_factory=dict)


@dataclass
class RoutingConfig:
    # kubo's Routing.Type: auto (DHT server where the node's listen addresses say it is
    # reachable, client elsewhere), dhtclient, dhtserver, none (no DHT)
    type: str = "auto"


@dataclass
class ReproviderConfig:
    # kubo's Reprovider.Strategy: all (every block), pinned (every block of pinned DAGs),
    # roots (pinned roots only); checked by data/routing/reprovider.py
    strategy: str = "all"
    # seconds between announcement rounds (kubo: 22 h); 0 turns rounds off, while add and pin
    # still announce their new roots
    interval: int = 22 * 3600


@dataclass
class Config:
    datastore: DatastoreConfig = field(default_factory=DatastoreConfig)
    imports: ImportConfig = field(default_factory=ImportConfig)
    addresses: AddressesConfig = field(default_factory=AddressesConfig)
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    peering: PeeringConfig = field(default_factory=PeeringConfig)
    connmgr: ConnMgrConfig = field(default_factory=ConnMgrConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    bandwidth: BandwidthConfig = field(default_factory=BandwidthConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    reprovider: ReproviderConfig = field(default_factory=ReproviderConfig)

    def to_toml(self) -> str:
        return tomli_w.dumps({"datastore": asdict(self.datastore), "import": asdict(self.imports),
                              "addresses": asdict(self.addresses),
                              "bootstrap": asdict(self.bootstrap), "peering": asdict(self.peering),
                              "connmgr": asdict(self.connmgr), "filters": asdict(self.filters),
                              "gateway": asdict(self.gateway),
                              "discovery": asdict(self.discovery),
                              "bandwidth": asdict(self.bandwidth),
                              "routing": asdict(self.routing),
                              "reprovider": asdict(self.reprovider)})

    @classmethod
    def load(cls, path: Path) -> Config:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
        return cls(
            datastore=_section(DatastoreConfig, raw.get("datastore", {}), "datastore"),
            imports=_section(ImportConfig, raw.get("import", {}), "import"),
            addresses=_section(AddressesConfig, raw.get("addresses", {}), "addresses"),
            bootstrap=_section(BootstrapConfig, raw.get("bootstrap", {}), "bootstrap"),
            peering=_section(PeeringConfig, raw.get("peering", {}), "peering"),
            connmgr=_section(ConnMgrConfig, raw.get("connmgr", {}), "connmgr"),
            filters=_section(FiltersConfig, raw.get("filters", {}), "filters"),
            gateway=_section(GatewayConfig, raw.get("gateway", {}), "gateway"),
            discovery=_section(DiscoveryConfig, raw.get("discovery", {}), "discovery"),
            bandwidth=_section(BandwidthConfig, raw.get("bandwidth", {}), "bandwidth"),
            routing=_section(RoutingConfig, raw.get("routing", {}), "routing"),
            reprovider=_section(ReproviderConfig, raw.get("reprovider", {}), "reprovider"),
        )


def _section(kind: type, raw: dict[str, Any], name: str) -> Any:
    known = {f.name: f for f in fields(kind)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"unknown config key {name}.{key}")
        default = getattr(kind(), key)
        if type(default) is float and type(value) is int:
            value = float(value)  # `timeout = 5` means 5.0, as TOML readers expect
        if type(value) is not type(default):
            raise ConfigError(f"config {name}.{key} must be {type(default).__name__}")
        values[key] = value
    return kind(**values)
