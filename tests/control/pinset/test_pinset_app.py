"""The replicated pinset driven directly: allocation, re-allocation, audits, expiry, roles.

Every member executes the same committed operations, so the properties that matter are that
execution is deterministic (same log, same state, on every member) and that what a member may
change is limited to what it may speak for.
"""

from __future__ import annotations

import random

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
    pin_rm,
    pin_update,
    query,
    recover,
    result,
    status,
)

from blockmesh.control.pinset import PinsetApp, PinsetPolicy
from blockmesh.control.proto import pinset_pb2 as pb

X = cid_of("x")


def test_pin_add_allocates_replication_max_distinct_members() -> None:
    app = new_app()
    assert result(app.execute(pin_add(X, 2, 3, name="site"), WRITER)).code == pb.Result.OK
    placed = app.allocations(X)
    assert len(placed) == 3 and len(set(placed)) == 3 and set(placed) <= set(MEMBERS)
    view = result(app.execute(query(X), "reader")).pins[0]
    assert view.name == "site" and list(view.allocations) == list(placed)
    assert {m.member: m.state for m in view.members} == dict.fromkeys(placed, pb.QUEUED)
    for member in placed:
        assert X in app.allocated_to(member)


def test_default_factors_mean_every_member() -> None:
    app = new_app()
    app.execute(pin_add(X), WRITER)
    assert sorted(app.allocations(X)) == MEMBERS


def test_refusals_change_nothing() -> None:
    app = new_app()
    app.execute(pin_add(X, 1, 2), WRITER)
    before = app.state_digest()
    cases = [
        (pin_add(X, 1, 2), "reader", pb.Result.FORBIDDEN),
        (pin_rm(X), "reader", pb.Result.FORBIDDEN),
        (heartbeat(5), WRITER, pb.Result.FORBIDDEN),
        (status(X, pb.PINNED), WRITER, pb.Result.FORBIDDEN),
        (pin_add(X, 5, 5), WRITER, pb.Result.BAD_REQUEST),
        (pin_add(X, 3, 2), WRITER, pb.Result.BAD_REQUEST),
        (pin_add(X, -2, 2), WRITER, pb.Result.BAD_REQUEST),
        (b"\xff\x00garbage", WRITER, pb.Result.BAD_REQUEST),
        (b"", WRITER, pb.Result.BAD_REQUEST),
        (b"\x0a\x03\x0a\x01\x00", WRITER, pb.Result.BAD_REQUEST),  # pin_add with a bad CID
        (pin_rm(cid_of("y")), WRITER, pb.Result.NOT_FOUND),
        (status(cid_of("y"), pb.PINNED), "node0", pb.Result.NOT_FOUND),
        (audit(X, "node0", False), "node0", pb.Result.BAD_REQUEST),
        (audit(X, "nobody", False), "node0", pb.Result.BAD_REQUEST),
        (heartbeat(5, tags=tuple(str(k) for k in range(40))), "node0", pb.Result.BAD_REQUEST),
        (b"\x01" * 10_000, WRITER, pb.Result.BAD_REQUEST),
    ]
    for operation, sender, code in cases:
        answer = result(app.execute(operation, sender))
        assert answer.code == code, (sender, answer)
        assert app.state_digest() == before


def test_down_member_is_replaced_then_trimmed_when_it_returns() -> None:
    app = new_app(reallocate_after_ms=10_000)
    beat_all(app, 1_000)
    app.execute(pin_add(X, 2, 3), WRITER)
    placed = list(app.allocations(X))
    spare = next(m for m in MEMBERS if m not in placed)
    lost = placed[0]
    for member in placed:
        app.execute(status(X, pb.PINNED), member)
    others = [m for m in MEMBERS if m != lost]
    beat_all(app, 11_000, others)  # 10 s after lost's last beat: not yet down
    assert lost not in app.down_members() and spare not in app.allocations(X)
    beat_all(app, 11_001, others)
    assert lost in app.down_members()
    assert spare in app.allocations(X)
    app.execute(status(X, pb.PINNED), spare)
    # lost comes back: four live holders for a factor of three, every kept one pinned -> trim.
    beat_all(app, 12_000)
    assert lost not in app.down_members()
    assert len(app.allocations(X)) == 3
    for member in app.allocations(X):
        assert app.view(X).members[MEMBERS.index(member)].state == pb.PINNED


def test_trim_waits_until_the_kept_holders_are_pinned() -> None:
    app = new_app(reallocate_after_ms=10_000)
    beat_all(app, 1_000)
    app.execute(pin_add(X, 3, 3), WRITER)
    lost = app.allocations(X)[0]
    beat_all(app, 20_000, [m for m in MEMBERS if m != lost])
    assert len(app.allocations(X)) == 4  # lost stays listed while down, plus its replacement
    beat_all(app, 21_000)  # back, but nobody has said pinned yet: keep all four
    assert len(app.allocations(X)) == 4
    for member in MEMBERS:
        app.execute(status(X, pb.PINNED), member)
    assert len(app.allocations(X)) == 3


def test_audits_need_f_plus_one_accusers() -> None:
    app = new_app()
    app.execute(pin_add(X, 2, 2), WRITER)
    target = app.allocations(X)[0]
    accusers = [m for m in MEMBERS if m != target]
    app.execute(audit(X, target, False), accusers[0])  # one liar alone (f = 1): nothing
    assert target in app.allocations(X)
    app.execute(audit(X, target, True), accusers[0])
    app.execute(audit(X, target, False), accusers[1])
    assert target in app.allocations(X)  # the first withdrew: still one accuser
    app.execute(audit(X, target, False), accusers[2])
    assert target not in app.allocations(X) and len(app.allocations(X)) == 2
    assert next(m for m in app.view(X).members if m.member == target).state == pb.PIN_ERROR
    assert X not in app.allocated_to(target)
    app.execute(recover(X), WRITER)  # the operator clears the exclusion
    assert result(app.execute(query(X), "reader")).pins[0].allocations


def test_expiry_follows_the_cluster_clock() -> None:
    app = new_app()
    beat_all(app, 1_000)
    app.execute(pin_add(X, 1, 1, expire_in_ms=5_000), WRITER)
    assert app.view(X).expire_at_ms == 6_000
    beat_all(app, 5_999)
    assert app.view(X) is not None
    beat_all(app, 6_000)
    assert app.view(X) is None and not any(app.allocated_to(m) for m in MEMBERS)


def test_pin_update_keeps_options_and_placement() -> None:
    app = new_app()
    app.execute(pin_add(X, 1, 2, name="v1"), WRITER)
    placed = app.allocations(X)
    y = cid_of("y")
    assert result(app.execute(pin_update(X, y), WRITER)).code == pb.Result.OK
    assert app.view(X) is None
    assert app.allocations(y) == placed and app.view(y).name == "v1"


def test_full_members_are_not_chosen_for_big_pins() -> None:
    app = new_app()
    for k, member in enumerate(MEMBERS):
        app.execute(heartbeat(1_000, free_space=(k + 1) << 30), member)
    app.execute(pin_add(X, 1, 2, size=3 << 30), WRITER)
    assert set(app.allocations(X)) == {"node2", "node3"}


def test_a_liar_cannot_stall_the_clock_or_fake_others_reports() -> None:
    app = new_app(reallocate_after_ms=10_000)
    app.execute(pin_add(X, 3, 3), WRITER)
    liar = "node3"
    app.execute(heartbeat(10**15), liar)
    for t in (1_000, 2_000):
        beat_all(app, t, ["node0", "node1", "node2"])
    assert app.now_ms == 2_000
    # A member's status report is its own: node3 saying "pinned" changes only node3's entry.
    honest_view = {m.member: m.state for m in app.view(X).members if m.member != liar}
    app.execute(status(X, pb.PINNED), liar)
    assert {m.member: m.state for m in app.view(X).members if m.member != liar} == honest_view


OPS = st.sampled_from(["add", "rm", "update", "beat", "status", "audit", "recover", "garbage"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(OPS, st.integers(0, 5), st.sampled_from([*MEMBERS, WRITER, "reader"]),
                          st.integers(0, 3)), max_size=80))
def test_same_log_same_state_on_every_member(steps: list[tuple[str, int, str, int]]) -> None:
    """Members that execute one log agree, whatever the log holds (liars' reports included)."""
    apps = [new_app(reallocate_after_ms=3_000) for _ in MEMBERS]
    clock = 0
    log = []
    for kind, k, sender, extra in steps:
        cid = cid_of(f"pin{k}")
        clock += 700 * extra
        log.append((_operation(kind, cid, sender, extra, clock), sender))
    for operation, sender in log:
        answers = {app.execute(operation, sender) for app in apps}
        assert len(answers) == 1
    assert len({app.state_digest() for app in apps}) == 1
    for cid in {cid_of(f"pin{k}") for k in range(6)}:
        placed = apps[0].allocations(cid)
        assert len(set(placed)) == len(placed)


def _operation(kind: str, cid, sender: str, extra: int, clock: int) -> bytes:
    rng = random.Random(f"{kind}{cid}{sender}{extra}")
    if kind == "add":
        return pin_add(cid, rng.choice([0, 1, 2]), rng.choice([0, 2, 3, -1]),
                       expire_in_ms=rng.choice([0, 0, 2_000]), size=rng.choice([0, 1 << 30]))
    if kind == "rm":
        return pin_rm(cid)
    if kind == "update":
        return pin_update(cid, cid_of(f"pin{extra}"))
    if kind == "beat":
        return heartbeat(clock, free_space=rng.choice([0, 1 << 29, 1 << 40]))
    if kind == "status":
        return status(cid, rng.choice([pb.QUEUED, pb.PINNING, pb.PINNED, pb.PIN_ERROR]))
    if kind == "audit":
        return audit(cid, MEMBERS[extra], rng.random() < 0.3)
    if kind == "recover":
        return recover(cid)
    return rng.randbytes(rng.randrange(0, 40))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([4, 7, 10]), st.randoms(use_true_random=False),
       st.integers(min_value=5, max_value=60))
def test_allocations_agree_for_any_member_set_and_history(n, rng, steps):
    """Random committees and histories (members failing, returning, lying): every replica of
    the app ends in one state, placements stay within the members, and the liars (f of them,
    reporting huge free space, false pins and false audits) never exclude an honest member."""
    names = [f"m{k}" for k in range(n)]
    f = (n - 1) // 3
    liars = set(rng.sample(names, f))
    apps = [PinsetApp(names, writers=["w"], policy=PinsetPolicy(reallocate_after_ms=2_000))
            for _ in range(3)]
    cids = [cid_of(f"p{k}") for k in range(5)]
    clock = 0
    silent: set[str] = set()
    for _ in range(steps):
        clock += rng.choice([100, 700, 1_500])
        if rng.random() < 0.2:
            member = rng.choice(names)
            silent ^= {member}
        log = []
        for member in names:
            if member in silent:
                continue
            free = 1 << 60 if member in liars else rng.choice([1 << 30, 1 << 34])
            log.append((heartbeat(clock, free_space=free), member))
        cid = rng.choice(cids)
        log.append((pin_add(cid, 1, rng.choice([1, 2, 3])), "w"))
        for liar in liars:
            log.append((status(cid, pb.PINNED), liar))
            log.append((audit(cid, rng.choice([m for m in names if m != liar]), False), liar))
        if rng.random() < 0.1:
            log.append((pin_rm(rng.choice(cids)), "w"))
        for operation, sender in log:
            assert len({app.execute(operation, sender) for app in apps}) == 1
    assert len({app.state_digest() for app in apps}) == 1
    app = apps[0]
    for view in app.pins():
        assert set(view.allocations) <= set(names)
        for status_entry in view.members:
            if status_entry.state == pb.PIN_ERROR and status_entry.member not in liars:
                assert "failed audits" not in status_entry.error


def test_a_status_batch_is_all_or_nothing_and_skips_removed_pins() -> None:
    app = new_app()
    app.execute(pin_add(X, 4, 4), WRITER)
    y = cid_of("y")
    good = [pb.StatusReport(cid=bytes(X), state=pb.PINNED),
            pb.StatusReport(cid=bytes(y), state=pb.PINNED)]  # y is not pinned: skipped
    op = pb.Operation(statuses=pb.StatusBatch(reports=good)).SerializeToString()
    assert result(app.execute(op, "node1")).code == pb.Result.OK
    assert {m.member: m.state for m in app.view(X).members}["node1"] == pb.PINNED
    before = app.state_digest()
    bad = [pb.StatusReport(cid=bytes(X), state=pb.PINNED), pb.StatusReport(cid=b"\x01", state=3)]
    op = pb.Operation(statuses=pb.StatusBatch(reports=bad)).SerializeToString()
    assert result(app.execute(op, "node2")).code == pb.Result.BAD_REQUEST
    assert app.state_digest() == before


def test_members_not_heard_from_yet_are_not_down_when_the_clock_starts() -> None:
    """The clock jumps from 0 to wall-clock time at the first f+1 heartbeats; a member whose
    first heartbeat is not ordered yet must get the whole period from there."""
    app = new_app(reallocate_after_ms=10_000)
    beat_all(app, 1_700_000_000_000, ["node0", "node1"])
    assert app.now_ms == 1_700_000_000_000 and not app.down_members()
    app.execute(pin_add(X, 4, 4), WRITER)
    assert len(app.allocations(X)) == 4
    beat_all(app, 1_700_000_005_000, ["node0", "node1"])
    assert not app.down_members()
    beat_all(app, 1_700_000_010_001, ["node0", "node1"])
    assert app.down_members() == {"node2", "node3"}
