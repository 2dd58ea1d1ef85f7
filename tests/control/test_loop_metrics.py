"""The lock-free metric families expose what prometheus_client's own would."""

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from blockmesh.control.loop_metrics import Counter, Gauge, Histogram


def test_counter_and_gauge_samples() -> None:
    registry = CollectorRegistry()
    sent = Counter("t_sent", "Sent", ("node",), registry)
    peers = Gauge("t_peers", "Peers", ("node",), registry)
    sent.labels("a").inc()
    sent.labels("a").inc(2.5)
    sent.labels("b").inc()
    peers.labels("a").set(3)
    peers.labels("a").inc()
    assert registry.get_sample_value("t_sent_total", {"node": "a"}) == 3.5
    assert registry.get_sample_value("t_sent_total", {"node": "b"}) == 1
    assert registry.get_sample_value("t_peers", {"node": "a"}) == 4
    text = generate_latest(registry).decode()
    assert "# TYPE t_sent_total counter" in text and 't_sent_total{node="a"} 3.5' in text


def test_histogram_buckets_are_cumulative_and_less_or_equal() -> None:
    registry = CollectorRegistry()
    latency = Histogram("t_latency", "Latency", ("node",), registry, buckets=(0.001, 0.01, 1.0))
    child = latency.labels("a")
    for value in (0.0005, 0.001, 0.002, 0.5, 7.0):
        child.observe(value)
    sample = registry.get_sample_value
    assert sample("t_latency_bucket", {"node": "a", "le": "0.001"}) == 2
    assert sample("t_latency_bucket", {"node": "a", "le": "0.01"}) == 3
    assert sample("t_latency_bucket", {"node": "a", "le": "1.0"}) == 4
    assert sample("t_latency_bucket", {"node": "a", "le": "+Inf"}) == 5
    assert sample("t_latency_count", {"node": "a"}) == 5
    assert sample("t_latency_sum", {"node": "a"}) == pytest.approx(7.5035)


def test_names_clash_and_label_counts_are_checked() -> None:
    registry = CollectorRegistry()
    family = Counter("t_once", "Once", ("node",), registry)
    with pytest.raises(ValueError):
        Counter("t_once", "Again", ("node",), registry)
    with pytest.raises(ValueError):
        family.labels("a", "b")
    with pytest.raises(ValueError):
        Histogram("t_bad", "Bad", (), registry, buckets=(1.0, 0.5))
