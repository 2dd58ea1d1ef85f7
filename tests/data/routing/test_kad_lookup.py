"""The iterative lookup engine, driven directly against a simulated set of peer tables (the
engine does no I/O; each 'reply' below is what that peer's table would answer)."""

from __future__ import annotations

import os
import random

import pytest

from blockmesh.data.routing.kad.lookup import Lookup, PeerState
from blockmesh.data.routing.kad.table import RoutingTable, key_of


def _network(n: int, seed: int = 1) -> dict[bytes, RoutingTable]:
    rng = random.Random(seed)
    ids = [rng.randbytes(34) for _ in range(n)]
    tables = {p: RoutingTable(p) for p in ids}
    for _p, table in tables.items():
        for q in rng.sample(ids, min(n, 60)):
            table.add(q, 0.0)
    return tables


def _drive(lookup: Lookup, tables: dict[bytes, RoutingTable], failing: frozenset = frozenset(),
           ) -> list[bytes]:
    """Answer every query at once (failing peers fail); returns every peer asked, in order."""
    asked: list[bytes] = []
    for _ in range(10_000):
        batch = lookup.next_queries(0.0)
        if not batch:
            break
        assert len(batch) <= lookup.alpha and lookup.in_flight <= lookup.alpha
        asked.extend(batch)
        for peer in batch:
            if peer in failing:
                lookup.on_failure(peer)
            else:
                lookup.on_response(peer, tables[peer].nearest(lookup.target, 20))
    return asked


def test_lookup_converges_on_the_true_k_closest():
    tables = _network(300)
    origin = next(iter(tables))
    target = key_of(b"content")
    lookup = Lookup(target, tables[origin].nearest(target, 20), self_id=origin)
    asked = _drive(lookup, tables)
    truth = sorted((p for p in tables if p != origin), key=lambda p: key_of(p) ^ target)[:3]
    assert lookup.finish_reason == "converged"
    assert lookup.result()[:3] == truth
    assert len(asked) == len(set(asked)) == lookup.messages  # nobody asked twice
    assert lookup.messages < 150 and lookup.hops >= 1


def test_failures_are_disjoint_from_results_and_never_retried():
    tables = _network(300, seed=2)
    origin = next(iter(tables))
    target = key_of(b"other")
    failing = frozenset(sorted(tables, key=lambda p: key_of(p) ^ target)[:5])
    lookup = Lookup(target, tables[origin].nearest(target, 20), self_id=origin)
    asked = _drive(lookup, tables, failing)
    assert lookup.done and not set(lookup.result()) & failing
    assert len(asked) == len(set(asked))
    assert all(lookup.state(p) in (None, PeerState.UNREACHABLE) for p in failing)


def test_timeouts_come_from_the_clock_and_late_answers_are_ignored():
    peers = [os.urandom(34) for _ in range(3)]
    lookup = Lookup(key_of(b"t"), peers, timeout=5.0)
    assert set(lookup.next_queries(100.0)) == set(peers)
    assert lookup.next_deadline() == 105.0
    assert lookup.expire(104.9) == []
    lookup.on_response(peers[0], [])
    assert set(lookup.expire(105.0)) == set(peers[1:])
    lookup.on_response(peers[1], [os.urandom(34)])  # too late: stays unreachable
    assert lookup.state(peers[1]) is PeerState.UNREACHABLE
    assert lookup.done and lookup.result() == [peers[0]]


def test_no_seeds_starves_and_stop_ends_at_once():
    assert Lookup(key_of(b"x"), []).finish_reason == "starved"
    lookup = Lookup(key_of(b"x"), [os.urandom(34)])
    lookup.stop()
    assert lookup.done and lookup.next_queries(0.0) == []


@pytest.mark.parametrize("max_queries, max_peers", [(7, 1000), (200, 25)])
def test_work_is_bounded_even_when_every_answer_names_new_peers(max_queries, max_peers):
    # A hostile network: every reply names 20 fresh peers, none of whom ever converge.
    lookup = Lookup(key_of(b"y"), [os.urandom(34)], max_queries=max_queries,
                    max_peers=max_peers)
    for _ in range(1000):
        batch = lookup.next_queries(0.0)
        if not batch:
            break
        for peer in batch:
            lookup.on_response(peer, [os.urandom(34) for _ in range(20)])
    assert lookup.done and lookup.messages <= max_queries
    assert lookup.known <= max_peers
