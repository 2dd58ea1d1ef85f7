"""Strikes fade on the cluster clock, and a liar gains from that only a bounded amount.

A strike fades after QUIET_PERIODS_PER_STRIKE exclusion periods of eligibility without a new
exclusion, counted from the end of the last exclusion; a member excluded again sooner keeps
every strike, so its term still doubles.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pinset_ops import MEMBERS, WRITER, audit, beat_all, cid_of, new_app, pin_add, result

from blockmesh.control.pinset import PinsetApp, PinsetPolicy
from blockmesh.control.pinset.strikes import QUIET_PERIODS_PER_STRIKE, Strikes, strike
from blockmesh.control.proto import pinset_pb2 as pb

X = cid_of("x")
PERIOD = 1_000
QUIET = QUIET_PERIODS_PER_STRIKE * PERIOD
NEVER_DOWN = 10**12


def _app(reallocate_after_ms: int = NEVER_DOWN) -> PinsetApp:
    app = new_app(reallocate_after_ms=reallocate_after_ms, exclusion_period_ms=PERIOD)
    beat_all(app, 1_000)
    app.execute(pin_add(X, 4, 4), WRITER)  # every member: an excluded one leaves a gap
    return app


def _exclude(app: PinsetApp, target: str) -> int:
    """Two fresh failed audits (f+1 = 2); returns the cluster-clock time the term ends."""
    for auditor in [m for m in MEMBERS if m != target][:2]:
        assert result(app.execute(audit(X, target, False), auditor)).code == pb.Result.OK
    assert target not in app.allocations(X)
    error = next(m.error for m in app.view(X).members if m.member == target)
    return int(error.rsplit("excluded until ", 1)[1])


def _readmit(app: PinsetApp, member: str, until: int) -> None:
    beat_all(app, until - 1)
    assert member not in app.allocations(X)
    beat_all(app, until)
    assert member in app.allocations(X)


def _excluded_twice() -> tuple[PinsetApp, int]:
    """node2 excluded twice in a row, as in one overload; returns the end of its second term."""
    app = _app()
    first_end = _exclude(app, "node2")
    _readmit(app, "node2", first_end)
    second_end = _exclude(app, "node2")
    assert second_end - app.now_ms == 2 * PERIOD
    _readmit(app, "node2", second_end)
    return app, second_end


@pytest.mark.parametrize(("quiet", "next_term"), [
    (QUIET - 1, 4 * PERIOD),  # not yet: the third exclusion doubles again
    (QUIET, 2 * PERIOD),  # one strike faded: as if excluded once before
    (2 * QUIET - 1, 2 * PERIOD),
    (2 * QUIET, PERIOD),  # both faded: a clean record
    (10 * QUIET, PERIOD),  # and never below clean
])
def test_an_honest_member_excluded_twice_sheds_one_strike_per_quiet_stretch(
        quiet: int, next_term: int) -> None:
    """Quiet time counts from the end of the second term, not from the exclusion: counted from
    the exclusion, the first strike would fade 2 periods early."""
    app, second_end = _excluded_twice()
    beat_all(app, second_end + quiet)
    assert _exclude(app, "node2") - app.now_ms == next_term


def test_a_repeat_offender_caught_within_the_quiet_time_keeps_doubling() -> None:
    """A liar that serves just long enough not to be caught for QUIET - 1 after each return
    still gets twice the term each time: nothing fades without a whole quiet stretch."""
    app = _app()
    terms = []
    for _ in range(6):
        until = _exclude(app, "node3")
        terms.append(until - app.now_ms)
        _readmit(app, "node3", until)
        beat_all(app, until + QUIET - 1)
    assert terms == [PERIOD * 2**k for k in range(6)]


@pytest.mark.parametrize("faded", [False, True])
def test_a_faded_member_is_no_longer_last_when_a_slot_is_filled(faded: bool) -> None:
    """Replication 2 of 4: the member best placed by rendezvous is excluded and its slot goes to
    the third. When a holder goes down, the struck member gets the slot over the fourth (never
    excluded) only if its strike has faded by then."""
    app = new_app(reallocate_after_ms=10_000, exclusion_period_ms=PERIOD)
    beat_all(app, 1_000)
    app.execute(pin_add(X, 2, 2), WRITER)
    struck = app.allocations(X)[0]  # the rendezvous favourite of this pin
    until = _exclude(app, struck)
    down_at = until + QUIET - (0 if faded else 1)
    lost = next(m for m in app.allocations(X) if m != struck)
    clean = next(m for m in MEMBERS if m not in (struck, *app.allocations(X)))
    others = [m for m in MEMBERS if m != lost]
    # The last beat of `lost`, after the others', so the clock is already there when it counts.
    beat_all(app, down_at - 10_001, [*others, lost])
    assert struck not in app.allocations(X) and not app.down_members()
    for time_ms in range(down_at - 5_001, down_at, 5_000):
        beat_all(app, time_ms, others)
    beat_all(app, down_at, others)
    assert app.down_members() == {lost}
    live = set(app.allocations(X)) - {lost}  # a down member stays listed until it returns
    assert len(live) == 2 and (struck if faded else clean) in live


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0, PERIOD, QUIET - 1, QUIET, QUIET + 1, 2 * QUIET, 3 * QUIET + 7]),
                min_size=1, max_size=30))
def test_fading_buys_a_liar_at_most_one_return_per_quiet_stretch(waits: list[int]) -> None:
    """The bound docs/pinset.md states: within a time T of its first exclusion, a liar caught at
    any pace returns at most log2(T / PERIOD + 1) + T / QUIET times (the first term alone: the
    doubling bound; the second: one per strike faded)."""
    app = _app()
    first = app.now_ms
    until = _exclude(app, "node1")
    for returns, wait in enumerate(waits, start=1):
        _readmit(app, "node1", until)
        horizon = app.now_ms - first
        assert returns <= math.log2(horizon / PERIOD + 1) + horizon // QUIET
        beat_all(app, until + wait)
        until = _exclude(app, "node1")


def test_strikes_decided_before_the_clock_started_fade_from_their_shifted_term() -> None:
    app = new_app(reallocate_after_ms=NEVER_DOWN, exclusion_period_ms=PERIOD)
    app.execute(pin_add(X, 4, 4), WRITER)
    _exclude(app, "node0")  # the cluster clock is still 0: the term ends at PERIOD
    start = 1_700_000_000_000
    beat_all(app, start)
    _readmit(app, "node0", start + PERIOD)
    beat_all(app, start + PERIOD + QUIET - 1)
    # Measured from the unshifted end (PERIOD), the strike would have faded long ago.
    assert _exclude(app, "node0") - app.now_ms == 2 * PERIOD


def test_a_record_reads_the_same_from_any_replica_at_any_time() -> None:
    """The count is a pure function of the record and the cluster clock (no timer to fire)."""
    record = strike(strike(None, 0, PERIOD), PERIOD, PERIOD)
    assert record == Strikes(2, PERIOD + 2 * PERIOD)
    reads = [record.count_at(t, PERIOD) for t in (0, 3 * PERIOD, 3 * PERIOD + QUIET - 1,
                                                  3 * PERIOD + QUIET, 3 * PERIOD + 2 * QUIET)]
    assert reads == [2, 2, 2, 1, 0]
    assert record.shifted(5).count_at(3 * PERIOD + QUIET, PERIOD) == 2


def test_a_policy_without_a_positive_period_is_refused() -> None:
    """Fading divides by the period: a zero would fail every replica's execution alike."""
    with pytest.raises(ValueError, match="exclusion_period_ms"):
        PinsetPolicy(exclusion_period_ms=0)
