"""Garbage-collector settings for the long-running, allocation-heavy processes.

A replica or a load generator allocates protobuf messages, futures and closures for every
request; nearly all of them die by reference counting, yet CPython's default first threshold
(700 net allocations) runs a young-generation collection every few requests. In the PBFT
benchmark that was 4-6 % of a replica's CPU and 10 % of the load generator's
(docs/benchmarks.md). Freezing what start-up allocated (modules, configuration, keys, the
recovered log) keeps it out of every later collection, and a higher first threshold makes
young collections rare. Reference cycles are still collected, only later.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Net container allocations between two young-generation collections (CPython: 700).
YOUNG_THRESHOLD = 50_000


def settle_after_startup() -> None:
    """Call once a process has built its long-lived state and is about to serve."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """`settle_after_startup` for a phase of a longer process (a load run): afterwards the
    frozen objects become collectable again, so what the phase dropped is not kept for good."""
    threshold = gc.get_threshold()
    settle_after_startup()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
