"""Prometheus metrics of a replica's consensus, and the `/metrics` HTTP endpoint.

The engine reports what happened as `Metric(name, value, label)` records and never touches a
metrics library; this module maps those records onto collectors. The replica's transport
registers its own families in the same registry, so one scrape shows both.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from blockmesh.control.consensus.outputs import Metric
from blockmesh.control.loop_metrics import Counter, Gauge, Histogram
from blockmesh.control.transport.mesh import split_address

# Loopback commits take a few milliseconds; a view change several seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

#: Names of the consensus families, for docs and tests.
CONSENSUS_METRICS = (
    "blockmesh_pbft_committed_height",
    "blockmesh_pbft_view",
    "blockmesh_pbft_stable_checkpoint",
    "blockmesh_pbft_view_changes",
    "blockmesh_pbft_new_views",
    "blockmesh_pbft_batch_size",
    "blockmesh_pbft_commit_latency_seconds",
    "blockmesh_pbft_dropped_messages",
    "blockmesh_pbft_events",
)


class ConsensusMetrics:
    """The collectors of one replica (label `node`), fed from engine Output.metrics."""

    def __init__(self, registry: CollectorRegistry, node_id: str) -> None:
        labels = ("node",)
        self.height = Gauge("blockmesh_pbft_committed_height", "Height of the last executed block",
                            labels, registry=registry).labels(node_id)
        self.view = Gauge("blockmesh_pbft_view", "Current view", labels,
                          registry=registry).labels(node_id)
        self.stable = Gauge("blockmesh_pbft_stable_checkpoint",
                            "Sequence of the last stable checkpoint (the low watermark)", labels,
                            registry=registry).labels(node_id)
        self.view_changes = Counter("blockmesh_pbft_view_changes",
                                    "View changes this replica started (VIEW_CHANGE sent)",
                                    labels, registry=registry).labels(node_id)
        self.new_views = Counter("blockmesh_pbft_new_views", "New views installed", labels,
                                 registry=registry).labels(node_id)
        self.batch_size = Histogram("blockmesh_pbft_batch_size",
                                    "Requests per PRE_PREPARE this replica proposed", labels,
                                    buckets=_BATCH_BUCKETS, registry=registry).labels(node_id)
        self.commit_latency = Histogram(
            "blockmesh_pbft_commit_latency_seconds",
            "From a client request reaching this replica to its execution here", labels,
            buckets=_LATENCY_BUCKETS, registry=registry).labels(node_id)
        self._dropped = Counter("blockmesh_pbft_dropped_messages",
                                "Consensus messages and requests the engine refused, by reason",
                                (*labels, "reason"), registry=registry)
        self._events = Counter("blockmesh_pbft_events",
                               "Other engine events (state transfers, retransmits, ...)",
                               (*labels, "event"), registry=registry)
        self._node = node_id

    def record(self, metric: Metric) -> None:
        name = metric.name
        if name == "drop":
            self._dropped.labels(self._node, metric.label or "unknown").inc(metric.value)
        elif name == "committed_height":
            self.height.set(metric.value)
        elif name == "batch_size":
            self.batch_size.observe(metric.value)
        elif name == "view_change":
            self.view_changes.inc()
        elif name == "new_view":
            self.new_views.inc()
        elif name == "checkpoint_stable":
            self.stable.set(metric.value)
        else:
            # Gauge-like samples (state_transfer carries a sequence) count as one event.
            self._events.labels(self._node, name).inc()


class MetricsServer:
    """`/metrics` of one registry over HTTP, served from a daemon thread by prometheus_client."""

    def __init__(self, registry: CollectorRegistry, address: str) -> None:
        self._registry = registry
        self._address = address
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return self._address

    def start(self) -> None:
        host, port = split_address(self._address)
        self._server, self._thread = start_http_server(port, host, self._registry)
        self._address = f"{host}:{self._server.server_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
