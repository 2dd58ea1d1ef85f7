"""The pin tracker and the auditor driven directly, with a clock passed in."""

from __future__ import annotations

import random

from pinset_ops import cid_of

from blockmesh.control.pinset.audit import Auditor
from blockmesh.control.pinset.tracker import (
    Allocated,
    Fetch,
    PinTracker,
    Report,
    TrackerParams,
    Unpin,
)
from blockmesh.control.proto import pinset_pb2 as pb

A, B, C = cid_of("a"), cid_of("b"), cid_of("c")


def reports(actions: list) -> list[tuple[object, int]]:
    return [(a.cid, a.state) for a in actions if isinstance(a, Report)]


def test_queued_pins_are_fetched_within_the_concurrency_limit() -> None:
    tracker = PinTracker(TrackerParams(max_concurrent_pins=2))
    actions = tracker.sync({A: Allocated(pb.QUEUED, ("node1",)), B: Allocated(pb.QUEUED),
                            C: Allocated(pb.QUEUED)}, now=0)
    fetches = [a for a in actions if isinstance(a, Fetch)]
    assert [f.cid for f in fetches] == [A, B] and fetches[0].holders == ("node1",)
    assert reports(actions) == [(A, pb.PINNING), (B, pb.PINNING)]
    after = tracker.fetched(A, now=1)
    assert reports(after) == [(A, pb.PINNED), (C, pb.PINNING)]
    assert [a.cid for a in after if isinstance(a, Fetch)] == [C]
    assert tracker.states() == {A: "pinned", B: "pinning", C: "pinning"}


def test_failures_back_off_and_recover_retries_at_once() -> None:
    tracker = PinTracker(TrackerParams(retry_base=10, retry_max=40), rng=random.Random(1))
    tracker.sync({A: Allocated(pb.QUEUED)}, now=0)
    failed = tracker.failed(A, "no provider", now=0)
    assert failed == [Report(A, pb.PIN_ERROR, "no provider")]
    first = tracker.next_deadline()
    assert first is not None and 5 <= first <= 10
    assert tracker.tick(now=first - 0.01) == []
    assert any(isinstance(a, Fetch) for a in tracker.tick(now=first))
    tracker.failed(A, "again", now=first)
    second = tracker.next_deadline()
    assert second is not None and 10 <= second - first <= 20
    # The log acknowledges the error; then an operator's recover resets it to queued.
    assert tracker.sync({A: Allocated(pb.PIN_ERROR)}, now=first + 1) == []
    retried = tracker.sync({A: Allocated(pb.QUEUED)}, now=first + 2)
    assert any(isinstance(a, Fetch) for a in retried)


def test_a_pin_no_longer_allocated_is_unpinned() -> None:
    tracker = PinTracker()
    tracker.sync({A: Allocated(pb.QUEUED)}, now=0)
    tracker.fetched(A, now=1)
    assert tracker.sync({}, now=2) == [Unpin(A)]
    assert tracker.fetched(A, now=3) == []  # a late outcome of a dropped pin changes nothing


def test_restart_reports_what_the_log_does_not_know() -> None:
    tracker = PinTracker(held=[A, B])
    actions = tracker.sync({A: Allocated(pb.QUEUED)}, now=0)
    assert Unpin(B) in actions  # held, but not allocated here any more
    assert reports(actions) == [(A, pb.PINNED)]
    assert not any(isinstance(a, Fetch) for a in actions)
    assert tracker.sync({A: Allocated(pb.PINNING)}, now=1) == []  # wait for our report
    assert tracker.sync({A: Allocated(pb.PINNED)}, now=2) == []


def test_an_unsent_report_is_sent_again() -> None:
    tracker = PinTracker()
    tracker.sync({A: Allocated(pb.QUEUED)}, now=0)
    tracker.fetched(A, now=1)
    tracker.unsent(A)
    assert reports(tracker.sync({A: Allocated(pb.PINNING)}, now=2)) == [(A, pb.PINNED)]


def test_auditor_picks_only_other_members_once_per_interval() -> None:
    auditor = Auditor("node0", interval=10, rng=random.Random(3))
    claims = [(A, "node0"), (A, "node1"), (B, "node2")]
    picked = []
    now = 0.0
    while now < 1000:
        request = auditor.tick(now, claims)
        if request is not None:
            picked.append(request)
        now += 1
    assert 60 < len(picked) < 160
    assert all(r.target != "node0" for r in picked)
    assert {(r.cid, r.target) for r in picked} == {(A, "node1"), (B, "node2")}
    alone = Auditor("node0", interval=1, rng=random.Random(4))
    assert all(alone.tick(t, [(A, "node0")]) is None for t in range(20))  # nobody else to audit
    assert auditor.next_child([]) is None and auditor.next_child([B]) == B
