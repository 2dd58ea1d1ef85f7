"""The token bucket and the bandwidth engine, driven with a clock of our own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.net.bandwidth import (
    MAX_PEER_METERS,
    Bandwidth,
    BandwidthLimits,
    PeerRates,
    limits_from_config,
)
from blockmesh.data.net.ratelimit import MIN_BURST_BYTES, TokenBucket
from blockmesh.data.store.config import BandwidthConfig, ConfigError

PEER_A = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
PEER_B = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"


def test_a_full_bucket_lets_its_burst_through_then_the_rate_holds():
    bucket = TokenBucket(rate=1000, burst=500, now=0.0)
    assert bucket.charge(500, 0.0) == 0.0
    assert bucket.charge(100, 0.0) == pytest.approx(0.1)  # in debt: wait for 100 bytes
    assert bucket.charge(0, 0.1) == 0.0  # paid off by then
    assert bucket.charge(2000, 0.1) == pytest.approx(2.0)  # a large write is charged whole


def test_an_idle_bucket_refills_only_to_its_burst():
    bucket = TokenBucket(rate=1000, burst=500, now=0.0)
    bucket.charge(500, 0.0)
    assert bucket.available(100.0) == 500
    assert bucket.full(100.0)


def test_a_clock_going_backwards_stands_still():
    bucket = TokenBucket(rate=1000, burst=500, now=10.0)
    bucket.charge(500, 10.0)
    assert bucket.available(5.0) == 0


@pytest.mark.parametrize("rate, burst", [(0, 1), (-1, 1), (float("inf"), 1), (1, 0)])
def test_bad_bucket_parameters_are_refused(rate, burst):
    with pytest.raises(ValueError):
        TokenBucket(rate, burst, 0.0)


@given(st.lists(st.integers(min_value=0, max_value=1 << 20), min_size=1, max_size=50),
       st.integers(min_value=1, max_value=1 << 24))
def test_bytes_moved_as_told_never_beat_the_rate(sizes, rate):
    """Whatever the writes, a writer that waits as told has moved at most burst + rate x time."""
    bucket = TokenBucket.for_rate(rate, 0.0)
    now = 0.0
    moved = 0
    for size in sizes:
        now += bucket.charge(size, now)
        moved += size
        assert moved <= bucket.burst + rate * now + 1e-6 * moved + 1


def test_default_burst_is_a_tenth_of_a_second_but_at_least_one_frame():
    assert TokenBucket.for_rate(10 << 20, 0.0).burst == pytest.approx(1 << 20)
    assert TokenBucket.for_rate(1000, 0.0).burst == MIN_BURST_BYTES


def test_counters_by_peer_and_protocol():
    bw = Bandwidth()
    assert bw.charge("out", PEER_A, "/ipfs/bitswap/1.2.0", 1000, 0.5) == 0.0
    bw.charge("in", PEER_B, "/ipfs/bitswap/1.2.0", 300, 0.5)
    bw.charge("in", PEER_A, "/x", 20, 0.5)
    total = bw.stats(1.0)
    assert (total.total_in, total.total_out) == (320, 1000)
    assert bw.stats(1.0, peer=PEER_A).to_json()["TotalOut"] == 1000
    assert bw.stats(1.0, peer=PEER_A).total_in == 20
    assert bw.stats(1.0, protocol="/ipfs/bitswap/1.2.0").total_in == 300
    assert bw.stats(1.0, peer="unknown").total_in == 0
    with pytest.raises(ValueError):
        bw.stats(1.0, peer=PEER_A, protocol="/x")


def test_rates_cover_the_last_seconds():
    bw = Bandwidth(now=100.0)
    for second in range(100, 110):
        bw.charge("out", PEER_A, "/p", 1000, second + 0.5)
    assert bw.stats(110.0).rate_out == pytest.approx(1000, rel=0.05)
    assert bw.stats(130.0).rate_out == 0  # nothing in the window any more
    assert bw.stats(130.0).total_out == 10_000


def test_peer_meters_are_bounded():
    bw = Bandwidth()
    for k in range(MAX_PEER_METERS + 10):
        bw.charge("in", f"peer{k}", "/p", 1, 0.0)
    assert bw.stats(0.0, peer="peer0").total_in == 0  # the least recently active went
    assert bw.stats(0.0, peer=f"peer{MAX_PEER_METERS + 9}").total_in == 1


def test_global_and_per_peer_limits_and_overrides():
    limits = BandwidthLimits(rate_out=1 << 20, peer_rate_in=100_000,
                             per_peer={PEER_B: PeerRates(rate_in=0)})
    bw = Bandwidth(limits)
    # per-peer inbound: A waits, B is exempt by its override, both count
    wait = (300_000 - MIN_BURST_BYTES) / 100_000  # the bucket starts full
    assert bw.charge("in", PEER_A, "/p", 300_000, 0.0) == pytest.approx(wait)
    assert bw.charge("in", PEER_B, "/p", 300_000, 0.0) == 0.0
    # global outbound: shared by all peers
    first = bw.charge("out", PEER_A, "/p", 1 << 20, 0.0)
    second = bw.charge("out", PEER_B, "/p", 1 << 20, 0.0)
    assert second == pytest.approx(first + 1.0)


def test_limits_from_the_repo_config():
    limits = limits_from_config(BandwidthConfig(
        rate_in=5, peers={PEER_A: {"rate_out": 7}}))
    assert limits.rate_in == 5
    assert limits.for_peer(PEER_A) == PeerRates(0, 7)
    assert limits.for_peer(PEER_B) == PeerRates(0, 0)


@pytest.mark.parametrize("section", [
    BandwidthConfig(rate_in=-1),
    BandwidthConfig(peers={"not-a-peer": {"rate_in": 1}}),
    BandwidthConfig(peers={PEER_A: {"rate": 1}}),
    BandwidthConfig(peers={PEER_A: {"rate_in": "1MiB"}}),
    BandwidthConfig(peers={PEER_A: 5}),
])
def test_bad_bandwidth_config_is_a_config_error(section):
    with pytest.raises(ConfigError):
        limits_from_config(section)


def test_limited_says_whether_any_rate_applies():
    bw = Bandwidth(BandwidthLimits(peer_rate_out=10, per_peer={PEER_B: PeerRates(rate_in=5)}))
    assert bw.limited("out", PEER_A) and not bw.limited("in", PEER_A)
    assert bw.limited("in", PEER_B) and not bw.limited("out", PEER_B)  # its override exempts
    assert Bandwidth(BandwidthLimits(rate_in=1)).limited("in", PEER_A)
    assert not Bandwidth().limited("out", PEER_A)
