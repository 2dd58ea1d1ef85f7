"""Prometheus metrics of a transport (the seed's TransportMetrics, plus drops and throttling).

Collectors are created once per CollectorRegistry and shared by every transport registered in it,
each transport writing to its own (transport, node) label children. A registry is passed in, so
several replicas can live in one process (tests, benchmarks) without name clashes.
"""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry

from blockmesh.control.loop_metrics import Counter, Gauge, Histogram

# Loopback sends take tens of microseconds; WAN ones up to seconds.
_LATENCY_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
_LABELS = ("transport", "node")


class _Families:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, (*_LABELS, *extra), registry=registry)

        self.messages_sent = counter("blockmesh_transport_messages_sent", "Messages written")
        self.messages_received = counter(
            "blockmesh_transport_messages_received", "Messages received and accepted"
        )
        self.bytes_sent = counter("blockmesh_transport_bytes_sent", "Payload bytes written")
        self.bytes_received = counter("blockmesh_transport_bytes_received", "Payload bytes read")
        self.connection_errors = counter(
            "blockmesh_transport_connection_errors",
            "Failed dials, refused handshakes and broken connections",
            ("reason",),
        )
        self.dropped = counter(
            "blockmesh_transport_dropped_messages", "Messages dropped, by reason", ("reason",)
        )
        self.throttled = counter(
            "blockmesh_transport_throttled_seconds",
            "Seconds spent pausing reads from peers over their rate",
        )
        self.peers = Gauge(
            "blockmesh_transport_peers",
            "Peers with an authenticated connection",
            _LABELS,
            registry=registry,
        )
        self.send_latency = Histogram(
            "blockmesh_transport_send_latency_seconds",
            "From queueing a message to handing it to the socket or gRPC",
            _LABELS,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )


_FAMILIES: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()


class TransportMetrics:
    """The label children one transport instance writes to; hot paths keep direct references."""

    def __init__(self, registry: CollectorRegistry, transport: str, node_id: str) -> None:
        families = _FAMILIES.get(registry)
        if families is None:
            families = _FAMILIES[registry] = _Families(registry)
        self._families = families
        self._labels = (transport, node_id)
        self.messages_sent = families.messages_sent.labels(*self._labels)
        self.messages_received = families.messages_received.labels(*self._labels)
        self.bytes_sent = families.bytes_sent.labels(*self._labels)
        self.bytes_received = families.bytes_received.labels(*self._labels)
        self.throttled = families.throttled.labels(*self._labels)
        self.peers = families.peers.labels(*self._labels)
        self.send_latency = families.send_latency.labels(*self._labels)

    def connection_error(self, reason: str) -> None:
        self._families.connection_errors.labels(*self._labels, reason).inc()

    def drop(self, reason: str, count: int = 1) -> None:
        self._families.dropped.labels(*self._labels, reason).inc(count)
