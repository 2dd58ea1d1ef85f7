"""The allocator's pure functions: exact integer logarithms and weighted rendezvous ranking."""

from __future__ import annotations

import math
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from blockmesh.control.pinset.allocator import WEIGHT_UNIT, neg_log2_q32, rank
from blockmesh.control.pinset.clock import ClusterClock


@given(st.integers(min_value=1, max_value=1 << 64))
def test_fixed_point_log_matches_the_float_one(value: int) -> None:
    expected = -math.log2(value / 2**64)
    assert abs(neg_log2_q32(value) / 2**32 - expected) < 2**-28


def test_fixed_point_log_edges() -> None:
    assert neg_log2_q32(1 << 64) == 0
    assert neg_log2_q32(1 << 63) == 1 << 32
    assert neg_log2_q32(1) == 64 << 32


@given(st.permutations([f"node{k}" for k in range(7)]), st.binary(min_size=1, max_size=40))
def test_rank_ignores_input_order(order: list[str], key: bytes) -> None:
    members = [(m, (int(m[-1]) + 1) * WEIGHT_UNIT) for m in order]
    assert rank(key, members) == rank(key, sorted(members))


def test_first_choice_follows_the_weights() -> None:
    members = [("small", 100 * WEIGHT_UNIT), ("big", 300 * WEIGHT_UNIT)]
    wins = Counter(rank(k.to_bytes(4, "big"), members)[0] for k in range(4000))
    assert 2.6 < wins["big"] / wins["small"] < 3.4


def test_removing_a_member_moves_only_what_it_held() -> None:
    everyone = [(f"node{k}", WEIGHT_UNIT) for k in range(6)]
    fewer = [m for m in everyone if m[0] != "node3"]
    for k in range(500):
        key = k.to_bytes(4, "big")
        before = rank(key, everyone)[:3]
        after = rank(key, fewer)[:3]
        if "node3" not in before:
            assert before == after
        else:
            assert set(before) - {"node3"} <= set(after)


def test_cluster_clock_is_bounded_by_honest_clocks() -> None:
    clock = ClusterClock(["a", "b", "c", "liar"], f=1)
    clock.report("liar", 10**15)  # far in the future: alone it moves nothing
    assert clock.now_ms == 0
    for member in ("a", "b", "c"):
        clock.report(member, 1_000)
    assert clock.now_ms == 1_000
    clock.report("a", 2_000)
    clock.report("b", 3_000)
    assert clock.now_ms == 3_000  # liar and b are ahead; the second largest is b's
    clock.report("a", 500)  # clocks never run backwards
    assert clock.now_ms == 3_000


def test_cluster_clock_advances_without_the_liar() -> None:
    clock = ClusterClock(["a", "b", "c", "liar"], f=1)
    for t in (1_000, 2_000, 3_000):
        for member in ("a", "b", "c"):
            clock.report(member, t)
        assert clock.now_ms == t
