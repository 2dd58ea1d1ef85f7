"""The daemon's Prometheus metrics: one registry, served at the API's `GET /metrics`.

The data plane's families are read from the engines' own counters when Prometheus scrapes
(`DataPlaneCollector`), so Bitswap's hot paths carry no metrics code at all. A scrape is
collected on the daemon's trio thread (the engines' thread); the control plane of a cluster
member keeps its own registry on its asyncio thread, whose collectors are safe to read from any
thread, and is forwarded into the same exposition (`ForwardedRegistry`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blockmesh.observe.observer import PEER_GROUPS

if TYPE_CHECKING:
    from blockmesh.observe.observer import Observer

#: Every family the data-plane collector exposes (without the `_total` sample suffix), for the
#: docs and the tests.
DATA_PLANE_METRICS = (
    "blockmesh_bitswap_blocks_received",
    "blockmesh_bitswap_received_bytes",
    "blockmesh_bitswap_blocks_sent",
    "blockmesh_bitswap_sent_bytes",
    "blockmesh_bitswap_duplicate_blocks_received",
    "blockmesh_bitswap_duplicate_received_bytes",
    "blockmesh_bitswap_messages_received",
    "blockmesh_bitswap_peer_group_blocks_sent",
    "blockmesh_bitswap_peer_group_sent_bytes",
    "blockmesh_bitswap_peer_group_blocks_received",
    "blockmesh_bitswap_peer_group_received_bytes",
    "blockmesh_bitswap_wantlist_size",
    "blockmesh_bitswap_peer_wantlist_size",
    "blockmesh_bitswap_sessions",
    "blockmesh_bitswap_peers",
    "blockmesh_bitswap_decision_queue_tasks",
    "blockmesh_bitswap_decision_outstanding_bytes",
    "blockmesh_blockstore_blocks",
    "blockmesh_blockstore_size_bytes",
    "blockmesh_blockstore_operations",
    "blockmesh_blockstore_operation_bytes",
    "blockmesh_pins",
    "blockmesh_libp2p_peers",
    "blockmesh_libp2p_connections",
    "blockmesh_libp2p_streams",
    "blockmesh_libp2p_bandwidth_bytes",
    "blockmesh_libp2p_protocol_bandwidth_bytes",
)


class DataPlaneCollector(Collector):
    """Families computed from the Node at scrape time. Call `collect` on the trio thread only."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    def collect(self) -> Iterator[Metric]:
        observer = self._observer
        node = observer.node
        engine = node.bitswap
        stat = engine.stat()
        yield _counter("blockmesh_bitswap_blocks_received",
                       "Wanted blocks received and verified (duplicates not included)",
                       stat.blocks_received)
        yield _counter("blockmesh_bitswap_received_bytes", "Bytes of wanted blocks received",
                       stat.data_received)
        yield _counter("blockmesh_bitswap_blocks_sent", "Blocks sent to peers", stat.blocks_sent)
        yield _counter("blockmesh_bitswap_sent_bytes", "Bytes of blocks sent to peers",
                       stat.data_sent)
        yield _counter("blockmesh_bitswap_duplicate_blocks_received",
                       "Blocks received that had already arrived from another peer",
                       stat.dup_blks_received)
        yield _counter("blockmesh_bitswap_duplicate_received_bytes",
                       "Bytes of duplicate blocks received", stat.dup_data_received)
        yield _counter("blockmesh_bitswap_messages_received", "Bitswap messages received",
                       stat.messages_received)

        groups = observer.peer_groups.groups
        for name, attribute, doc in (
                ("blockmesh_bitswap_peer_group_blocks_sent", "blocks_sent",
                 "Blocks sent, by peer group (cluster members or other), from the ledgers"),
                ("blockmesh_bitswap_peer_group_sent_bytes", "bytes_sent",
                 "Bytes sent, by peer group, from the ledgers"),
                ("blockmesh_bitswap_peer_group_blocks_received", "blocks_received",
                 "Blocks received (duplicates included), by peer group, from the ledgers"),
                ("blockmesh_bitswap_peer_group_received_bytes", "bytes_received",
                 "Bytes received (duplicates included), by peer group, from the ledgers")):
            family = CounterMetricFamily(name, doc, labels=["peer_group"])
            for group in PEER_GROUPS:
                family.add_metric([group], getattr(groups[group], attribute))
            yield family

        yield _gauge("blockmesh_bitswap_wantlist_size", "CIDs this node's sessions want",
                     len(stat.wantlist))
        server = engine.server
        peers = server.peers
        wants = GaugeMetricFamily("blockmesh_bitswap_peer_wantlist_size",
                                  "Wants peers have sent us, summed by peer group",
                                  labels=["peer_group"])
        by_group = dict.fromkeys(PEER_GROUPS, 0)
        for peer, ledger in engine.ledgers().items():
            by_group[observer.group_of(peer)] += ledger.wantlist_size
        for group in PEER_GROUPS:
            wants.add_metric([group], by_group[group])
        yield wants
        yield _gauge("blockmesh_bitswap_sessions", "Open Bitswap sessions",
                     len(engine.client.sessions))
        yield _gauge("blockmesh_bitswap_peers", "Peers speaking Bitswap with us", len(stat.peers))
        yield _gauge("blockmesh_bitswap_decision_queue_tasks",
                     "Blocks and presences queued by the decision engine for peers",
                     sum(server.queued(p) for p in peers))
        yield _gauge("blockmesh_bitswap_decision_outstanding_bytes",
                     "Bytes sent to peers and not yet acknowledged by the writer",
                     sum(server.outstanding(p) for p in peers))

        store = observer.store_stat
        if store is not None:  # the first walk of the blockstore has finished
            yield _gauge("blockmesh_blockstore_blocks", "Blocks in the blockstore "
                         "(recounted a few seconds after a change)", store.blocks)
            yield _gauge("blockmesh_blockstore_size_bytes", "Bytes of blocks in the blockstore "
                         "(recounted a few seconds after a change)", store.bytes)
        if observer.pin_count is not None:
            yield _gauge("blockmesh_pins", "Local pins (recounted every second)",
                         observer.pin_count)
        ops = node.repo.blocks.ops
        operations = CounterMetricFamily("blockmesh_blockstore_operations",
                                         "Blockstore calls by operation", labels=["op"])
        for op, value in (("put", ops.puts), ("get", ops.gets), ("has", ops.has),
                          ("delete", ops.deletes)):
            operations.add_metric([op], value)
        yield operations
        moved = CounterMetricFamily("blockmesh_blockstore_operation_bytes",
                                    "Block bytes written (put) and read (get)", labels=["op"])
        moved.add_metric(["put"], ops.put_bytes)
        moved.add_metric(["get"], ops.get_bytes)
        yield moved

        connections, streams = node.host.connection_counts()
        yield _gauge("blockmesh_libp2p_peers", "Peers with an open connection",
                     len(node.host.peers()))
        family = GaugeMetricFamily("blockmesh_libp2p_connections", "Open connections",
                                   labels=["direction"])
        for direction in sorted(set(connections) | {"inbound", "outbound"}):
            family.add_metric([direction], connections.get(direction, 0))
        yield family
        family = GaugeMetricFamily("blockmesh_libp2p_streams", "Open streams by protocol",
                                   labels=["protocol"])
        for protocol, count in sorted(streams.items()):
            family.add_metric([protocol], count)
        yield family

        # The counters behind `blockmesh stats bw`: stream payload bytes, as the limiter sees
        # them (Noise, Yamux framing and identify are not counted there either).
        bandwidth = node.host.bandwidth
        inbound, outbound = bandwidth.totals()
        family = CounterMetricFamily("blockmesh_libp2p_bandwidth_bytes",
                                     "Stream bytes moved with peers", labels=["direction"])
        family.add_metric(["in"], inbound)
        family.add_metric(["out"], outbound)
        yield family
        family = CounterMetricFamily("blockmesh_libp2p_protocol_bandwidth_bytes",
                                     "Stream bytes moved with peers, by negotiated protocol",
                                     labels=["protocol", "direction"])
        for protocol, (inbound, outbound) in sorted(bandwidth.protocol_totals().items()):
            family.add_metric([protocol, "in"], inbound)
            family.add_metric([protocol, "out"], outbound)
        yield family


class ForwardedRegistry(Collector):
    """Another registry's families in this one (the control plane's, on its own thread)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


def daemon_registry(observer: Observer,
                    control: CollectorRegistry | None = None) -> CollectorRegistry:
    """The registry behind the daemon's /metrics: the data plane, and the control plane's
    registry when the daemon is a cluster member. Other parts of the daemon (the gateway)
    register their own collectors in it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DataPlaneCollector(observer))
    if control is not None:
        registry.register(ForwardedRegistry(control))
    return registry


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
