"""Exclusions heal on the cluster clock, and a liar cannot ride that to keep an allocation.

An exclusion (f+1 distinct failed audits) lasts `exclusion_period_ms` on the cluster clock, twice
as long at each repeat for the same pin (repeats fade only after a quiet stretch: see
test_strike_fading.py); then the member is eligible again, a fresh f+1 failed audits are needed
to exclude it again, and it takes a slot only when no member with fewer exclusions from that pin
can.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pinset_ops import (
    MEMBERS,
    WRITER,
    audit,
    beat_all,
    cid_of,
    heartbeat,
    new_app,
    pin_add,
    recover,
    result,
    status,
)

from blockmesh.control.pinset import PinsetApp
from blockmesh.control.pinset.config import PinsetConfig
from blockmesh.control.pinset.strikes import MAX_EXCLUSION_DOUBLINGS
from blockmesh.control.proto import pinset_pb2 as pb
from blockmesh.errors import DecodeError

X = cid_of("x")
PERIOD = 50_000
#: Far beyond every test's clock: nobody is ever down here, only excluded.
NEVER_DOWN = 10**9


def _app() -> PinsetApp:
    app = new_app(reallocate_after_ms=NEVER_DOWN, exclusion_period_ms=PERIOD)
    beat_all(app, 1_000)
    return app


def _exclude(app: PinsetApp, target: str, accusers: int = 2) -> None:
    for auditor in [m for m in MEMBERS if m != target][:accusers]:
        assert result(app.execute(audit(X, target, False), auditor)).code == pb.Result.OK


def _state(app: PinsetApp, member: str) -> pb.MemberStatus:
    return next(m for m in app.view(X).members if m.member == member)


def test_an_exclusion_ends_after_its_period_on_the_cluster_clock() -> None:
    app = _app()
    app.execute(pin_add(X, 4, 4), WRITER)  # every member: an excluded one leaves a gap
    _exclude(app, "node2")
    assert "node2" not in app.allocations(X)
    entry = _state(app, "node2")
    assert entry.state == pb.PIN_ERROR and f"excluded until {1_000 + PERIOD}" in entry.error
    beat_all(app, 1_000 + PERIOD - 1)
    assert "node2" not in app.allocations(X)
    beat_all(app, 1_000 + PERIOD)
    assert "node2" in app.allocations(X) and X in app.allocated_to("node2")
    assert _state(app, "node2").state == pb.QUEUED  # it fetches again, then gets audited


def test_a_liar_is_excluded_again_only_by_fresh_audits_and_for_twice_as_long() -> None:
    app = _app()
    app.execute(pin_add(X, 4, 4), WRITER)
    _exclude(app, "node3")
    # Accusations while it is out do not count towards its next exclusion.
    app.execute(audit(X, "node3", False), "node0")
    beat_all(app, 1_000 + PERIOD)
    assert "node3" in app.allocations(X)
    app.execute(status(X, pb.PINNED), "node3")  # the liar claims it again
    app.execute(audit(X, "node3", False), "node1")  # one accuser of f+1 = 2: not enough
    assert "node3" in app.allocations(X)
    app.execute(audit(X, "node3", False), "node2")
    assert "node3" not in app.allocations(X)
    second_end = 1_000 + PERIOD + 2 * PERIOD
    assert f"excluded until {second_end}" in _state(app, "node3").error
    beat_all(app, second_end - 1)
    assert "node3" not in app.allocations(X)
    beat_all(app, second_end)
    assert "node3" in app.allocations(X)


def test_the_slow_member_returns_before_the_liar_and_the_pin_heals() -> None:
    """The observed failure: 4 members, replication 3; an honest slow member is excluded, then
    the liar, and only 2 eligible members remain. Without an operator the slow member comes
    back when its term ends and the pin has 3 holders again; the liar is not re-admitted while
    the pin does not need it."""
    app = _app()
    app.execute(pin_add(X, 3, 3), WRITER)
    slow, liar = app.allocations(X)[:2]
    _exclude(app, slow)
    assert len(app.allocations(X)) == 3 and slow not in app.allocations(X)
    beat_all(app, 20_000)
    _exclude(app, liar)
    assert sorted(app.allocations(X)) == sorted(set(MEMBERS) - {slow, liar})
    beat_all(app, 1_000 + PERIOD)
    assert slow in app.allocations(X) and len(app.allocations(X)) == 3
    beat_all(app, 20_000 + PERIOD)
    assert liar not in app.allocations(X) and len(app.allocations(X)) == 3


def test_a_returning_member_takes_a_slot_only_when_no_cleaner_member_can() -> None:
    app = new_app(reallocate_after_ms=10_000, exclusion_period_ms=PERIOD)
    beat_all(app, 1_000)
    app.execute(pin_add(X, 2, 2), WRITER)
    struck = app.allocations(X)[0]
    _exclude(app, struck)
    for time_ms in range(5_000, 55_001, 5_000):  # beats often enough that nobody is down
        beat_all(app, time_ms)
    assert not app.down_members()
    # Its term ended at 1_000 + PERIOD: eligible again, but the pin does not need it.
    assert struck not in app.allocations(X) and len(app.allocations(X)) == 2
    # A holder goes down: of the two members left, the one never excluded gets the slot,
    # whatever the rendezvous order says.
    lost = app.allocations(X)[0]
    clean = next(m for m in MEMBERS if m not in (struck, *app.allocations(X)))
    for time_ms in (60_000, 55_000 + 10_001):
        beat_all(app, time_ms, [m for m in MEMBERS if m != lost])
    assert app.down_members() == {lost}
    assert clean in app.allocations(X) and struck not in app.allocations(X)


def test_recover_clears_the_record_too() -> None:
    app = _app()
    app.execute(pin_add(X, 4, 4), WRITER)
    _exclude(app, "node1")
    app.execute(recover(X), WRITER)
    assert "node1" in app.allocations(X)
    _exclude(app, "node1")  # a first exclusion again: one period, not two
    assert f"excluded until {1_000 + PERIOD}" in _state(app, "node1").error


def test_a_liar_caught_each_time_holds_the_pin_a_logarithmic_number_of_times() -> None:
    """The bound docs/pinset.md states: its k-th re-admission comes no sooner than
    PERIOD * (2**k - 1) after its first exclusion, so over a time T it is re-admitted at most
    log2(T / PERIOD + 1) times (until the doubling cap, then once per 2**cap periods)."""
    app = _app()
    app.execute(pin_add(X, 4, 4), WRITER)  # every member: it is re-admitted at every chance
    liar = "node3"
    _exclude(app, liar)
    first = app.now_ms
    admissions: list[int] = []
    horizon = 300 * PERIOD
    for step in range(1, horizon // 5_000 + 1):
        beat_all(app, first + step * 5_000)
        if liar in app.allocations(X):
            admissions.append(app.now_ms - first)
            _exclude(app, liar)  # caught at once by two fresh audits
    assert admissions == [PERIOD * (2**k - 1) for k in range(1, len(admissions) + 1)]
    assert len(admissions) == 8  # 2**8 - 1 = 255 periods <= 300 < 511
    assert MAX_EXCLUSION_DOUBLINGS >= 8


def test_the_doubling_is_capped() -> None:
    app = new_app(reallocate_after_ms=NEVER_DOWN, exclusion_period_ms=1_000)
    beat_all(app, 1_000)
    app.execute(pin_add(X, 4, 4), WRITER)
    for _ in range(MAX_EXCLUSION_DOUBLINGS + 3):
        _exclude(app, "node0")
        start = app.now_ms
        beat_all(app, start + 1_000 * 2**MAX_EXCLUSION_DOUBLINGS)
        assert "node0" in app.allocations(X)


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(min_value=10, max_value=80))
def test_members_executing_one_log_agree_on_exclusions_and_their_ends(rng, steps) -> None:
    """Audits, claims and clock readings in any order: every replica excludes and re-admits
    the same members at the same cluster-clock times, and so allocates alike."""
    apps = [new_app(reallocate_after_ms=7_000, exclusion_period_ms=3_000) for _ in range(3)]
    cids = [cid_of(f"p{k}") for k in range(3)]
    log: list[tuple[bytes, str]] = []
    clock = 1_000
    for cid in cids:
        log.append((pin_add(cid, 1, rng.choice([2, 3, 4])), WRITER))
    for _ in range(steps):
        kind = rng.random()
        sender = rng.choice(MEMBERS)
        cid = rng.choice(cids)
        if kind < 0.4:
            clock += rng.choice([300, 1_000, 2_500])
            log.extend((heartbeat(clock), m) for m in MEMBERS if rng.random() < 0.9)
        elif kind < 0.8:
            target = rng.choice([m for m in MEMBERS if m != sender])
            log.append((audit(cid, target, rng.random() < 0.3), sender))
        elif kind < 0.95:
            log.append((status(cid, pb.PINNED), sender))
        else:
            log.append((recover(cid), WRITER))
    for operation, sender in log:
        assert len({app.execute(operation, sender) for app in apps}) == 1
        assert len({app.state_digest() for app in apps}) == 1
    for cid in cids:
        assert len({app.allocations(cid) for app in apps}) == 1


def test_same_history_replayed_later_gives_the_same_state() -> None:
    """Re-execution at start (the log is replayed) reaches, step by step, the state the live
    run had, exclusions and their ends included."""
    rng = random.Random(7)
    log: list[tuple[bytes, str]] = [(pin_add(X, 4, 4), WRITER)]
    for step in range(1, 200):
        log.extend((heartbeat(step * 1_000), m) for m in MEMBERS)
        auditor, target = rng.sample(MEMBERS, 2)
        log.append((audit(X, target, rng.random() < 0.4), auditor))
    live = new_app(exclusion_period_ms=5_000)
    digests = []
    readmissions = 0
    for operation, sender in log:
        before = len(live.allocations(X))
        live.execute(operation, sender)
        readmissions += len(live.allocations(X)) > before
        digests.append(live.state_digest())
    assert readmissions >= 3  # the history did exclude and re-admit members
    replayed = new_app(exclusion_period_ms=5_000)
    for (operation, sender), digest in zip(log, digests, strict=True):
        replayed.execute(operation, sender)
        assert replayed.state_digest() == digest


def test_the_period_comes_from_the_pinset_table_of_cluster_toml() -> None:
    assert PinsetConfig().policy().exclusion_period_ms == 300_000
    table = PinsetConfig(exclusion_period=42.5).to_table()
    assert table["exclusion_period"] == 42.5
    assert PinsetConfig.from_table(table).policy().exclusion_period_ms == 42_500
    assert PinsetConfig.from_table({}).exclusion_period == 300.0
    for bad in (0.5, 31 * 86400):
        with pytest.raises(DecodeError, match="exclusion_period"):
            PinsetConfig.from_table({"exclusion_period": bad})


def test_an_exclusion_decided_before_the_clock_started_lasts_its_term_from_the_start() -> None:
    app = new_app(reallocate_after_ms=NEVER_DOWN, exclusion_period_ms=PERIOD)
    app.execute(pin_add(X, 4, 4), WRITER)
    _exclude(app, "node0")  # the cluster clock is still 0 here
    beat_all(app, 1_700_000_000_000)
    assert "node0" not in app.allocations(X)
    beat_all(app, 1_700_000_000_000 + PERIOD)
    assert "node0" in app.allocations(X)
