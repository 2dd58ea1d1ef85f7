"""Counters, gauges and histograms for values written from one event-loop thread.

prometheus_client guards every sample with a lock, so a counter increment costs about a
microsecond and a histogram observation several; a replica records a few of them per message
and per request, which was 5-9 % of its CPU in the PBFT benchmark. Here a sample is a plain
attribute: the event loop is the only writer, and the scrape thread reads ints and floats,
which the GIL hands over whole. The families are ordinary collectors of a CollectorRegistry,
exposed under the same names and sample suffixes (`_total`, `_bucket`, `_sum`, `_count`) as
prometheus_client's own.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

C = TypeVar("C", "CounterChild", "GaugeChild", "HistogramChild")


class CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class GaugeChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class HistogramChild:
    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left finds the first bound >= value: Prometheus buckets are "less or equal".
        self.counts[bisect.bisect_left(self._bounds, value)] += 1
        self.sum += value


class _Family(Generic[C]):
    """One metric name with a child per label-value tuple; registered in `registry`.
    Subclasses name their child and prometheus family types; a scalar child is exposed as
    its `value`."""

    _child: Callable[[], C]
    _kind: type[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry) -> None:
        self._name = name
        self._doc = documentation
        self._labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], C] = {}
        registry.register(self)

    def labels(self, *values: str) -> C:
        if len(values) != len(self._labelnames):
            raise ValueError(f"{self._name} takes labels {self._labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._child()
        return child

    def describe(self) -> list[Metric]:
        return [self._kind(self._name, self._doc, labels=self._labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = self._kind(self._name, self._doc, labels=self._labelnames)
        for values, child in list(self._children.items()):
            self._add(family, list(values), child)
        yield family

    def _add(self, family: Metric, values: list[str], child: C) -> None:
        family.add_metric(values, child.value)  # type: ignore[attr-defined, union-attr]


class Counter(_Family[CounterChild]):
    _child = CounterChild
    _kind = CounterMetricFamily


class Gauge(_Family[GaugeChild]):
    _child = GaugeChild
    _kind = GaugeMetricFamily


class Histogram(_Family[HistogramChild]):
    _kind = HistogramMetricFamily

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in buckets if not math.isinf(b))
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"{name}: bucket bounds must be increasing")
        self._bounds = bounds
        super().__init__(name, documentation, labelnames, registry)

    def _child(self) -> HistogramChild:
        return HistogramChild(self._bounds)

    def _add(self, family: Metric, values: list[str], child: HistogramChild) -> None:
        assert isinstance(family, HistogramMetricFamily)
        counts = list(child.counts)
        cumulative, buckets = 0, []
        for bound, count in zip((*self._bounds, math.inf), counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family.add_metric(values, buckets, child.sum)
