"""The closed-loop load generator split over processes: how the load is divided and merged."""

from __future__ import annotations

import pytest

from blockmesh.bench.pbft_clients import Share, merge, shares
from blockmesh.control.cluster.loadgen import LoadResult


def test_shares_divide_identities_requests_and_warmup_without_overlap() -> None:
    assert shares(32, 6000, 300, 2) == [Share(0, 16, 3000, 150), Share(16, 16, 3000, 150)]
    uneven = shares(5, 7, 3, 2)
    assert [s.first_identity for s in uneven] == [0, 3]
    assert [s.clients for s in uneven] == [3, 2]
    assert sum(s.count for s in uneven) == 7 and sum(s.warmup for s in uneven) == 3
    assert shares(4, 10, 0, 1) == [Share(0, 4, 10, 0)]


def test_every_process_needs_a_client() -> None:
    with pytest.raises(ValueError):
        shares(1, 10, 0, 2)
    with pytest.raises(ValueError):
        shares(4, 10, 0, 0)


def test_merge_adds_counts_and_keeps_the_longest_window() -> None:
    a = LoadResult("tcp", 2, 0, committed=3, failed=1, seconds=1.5, latencies=[0.1, 0.2, 0.3],
                   errors={"timeout": 1})
    b = LoadResult("tcp", 3, 0, committed=2, seconds=2.0, latencies=[0.4, 0.5],
                   errors={"timeout": 2, "refused": 1})
    merged = merge([a, b])
    assert (merged.clients, merged.committed, merged.failed, merged.seconds) == (5, 5, 1, 2.0)
    assert sorted(merged.latencies) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert merged.errors == {"timeout": 3, "refused": 1}
    assert merged.rate == 2.5
