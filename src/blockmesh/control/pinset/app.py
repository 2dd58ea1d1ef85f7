"""The pinset as a deterministic application of the PBFT log.

What IPFS Cluster keeps in Raft or a CRDT (the pins, their replication factors and where each is
allocated), every member here computes by executing the same committed operations in the same
order, so f members that crash or lie cannot make the honest ones disagree. Three rules follow
from that, and shape this module:

- **Nothing is taken on a member's word about another.** A member's reports (clock, free space,
  per-pin state, audits) are keyed by the identity that signed the request, so a member can only
  speak for itself; a claim about another member (an audit failure) counts only once f+1
  distinct members make it, so at least one honest member did.
- **Allocation is stored state, changed by ordered events.** It is computed when a pin is added,
  and changed when an allocated member is down for longer than the policy allows (measured with
  the cluster clock, see `clock.py`), when audits exclude a member, when an exclusion runs out,
  when a returning member makes a pin over-replicated, or on `recover`. Free-space changes alone
  never move data around.
- **Every input is bounded and every failure is a result**, never an exception: a malformed or
  forbidden operation answers BAD_REQUEST or FORBIDDEN on every replica alike and changes nothing.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError as ProtobufDecodeError

from blockmesh.control.pinset.allocator import rank
from blockmesh.control.pinset.clock import ClusterClock
from blockmesh.control.pinset.strikes import Strikes, strike
from blockmesh.control.proto import pinset_pb2 as pb
from blockmesh.data.cid import CID
from blockmesh.errors import BlockmeshError

MAX_OPERATION_SIZE = 8 * 1024
MAX_NAME = 255
MAX_TAGS = 16
MAX_TAG = 64
MAX_MESSAGE = 512
#: Status reports in one batch: a few dozen bytes each, within MAX_OPERATION_SIZE.
MAX_BATCH = 64


@dataclass(frozen=True)
class PinsetPolicy:
    """Cluster-wide settings, the same on every member (they come from cluster.toml)."""

    #: Replication factors of a pin that gives 0; -1 means every member (IPFS Cluster's default).
    replication_min: int = -1
    replication_max: int = -1
    #: An allocated member whose last heartbeat is older than this on the cluster clock is down,
    #: and its pins get a replacement.
    reallocate_after_ms: int = 60_000
    #: How long a member's first exclusion from a pin lasts on the cluster clock (each further
    #: one for the same pin lasts twice the previous, and strikes fade when the member stays
    #: quiet: see `strikes.py`); then it is eligible again and re-audited.
    exclusion_period_ms: int = 300_000

    def __post_init__(self) -> None:
        if self.exclusion_period_ms < 1:
            raise ValueError("exclusion_period_ms must be positive: strikes fade per period")


class _Refused(BlockmeshError):
    """An operation this replica answers with an error code (the same on every replica)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Status:
    state: int
    since_ms: int
    error: str = ""


@dataclass
class _Pin:
    cid: CID
    name: str
    replication_min: int
    replication_max: int
    added_ms: int
    expire_at_ms: int
    size: int
    allocations: list[str] = field(default_factory=list)
    #: member -> the cluster-clock time its exclusion from this pin ends.
    excluded: dict[str, int] = field(default_factory=dict)
    #: member -> the exclusions from this pin that count against it (they fade, and `recover`
    #: clears them): they set the length of its next exclusion, and members with fewer are
    #: preferred when a slot is filled.
    strikes: dict[str, Strikes] = field(default_factory=dict)
    #: target member -> the members that reported a failed audit of it.
    audit_failures: dict[str, set[str]] = field(default_factory=dict)
    statuses: dict[str, _Status] = field(default_factory=dict)


@dataclass
class _Member:
    last_seen_ms: int = 0
    free_space: int = 0
    tags: tuple[str, ...] = ()
    reported: bool = False


class PinsetApp:
    """The replicated pinset of a cluster whose replicas are `members` (committee order)."""

    def __init__(self, members: Sequence[str], writers: Collection[str] = (),
                 policy: PinsetPolicy | None = None,
                 member_clients: Mapping[str, str] | None = None) -> None:
        """`member_clients` maps the client identity a member daemon signs with to its member
        id; a request signed as a member id itself counts as that member too."""
        if len(set(members)) != len(members) or not members:
            raise ValueError("members must be distinct and non-empty")
        self.members = tuple(members)
        self.f = (len(members) - 1) // 3
        self.policy = policy or PinsetPolicy()
        self._speaks_for = {m: m for m in members} | dict(member_clients or {})
        self._writers = frozenset(writers) | frozenset(self._speaks_for)
        self._clock = ClusterClock(self.members, self.f)
        self._pins: dict[bytes, _Pin] = {}
        self._info = {m: _Member() for m in self.members}
        self._down: set[str] = set()
        self._started_ms = 0  # the cluster clock's first value
        self._by_member: dict[str, set[bytes]] = {m: set() for m in self.members}
        self._expiries: list[tuple[int, bytes]] = []
        #: (end of an exclusion, pin, member); stale entries are skipped when popped.
        self._readmissions: list[tuple[int, bytes, str]] = []

    # ------------------------------------------------------------------ the Application side

    def execute(self, operation: bytes, client_id: str = "") -> bytes:
        """Apply one committed operation signed by `client_id`; returns a serialized Result."""
        try:
            result = self._dispatch(_decode(operation), client_id)
        except _Refused as refused:
            result = pb.Result(code=refused.code, message=str(refused))
        self._after_clock_moved()
        return result.SerializeToString(deterministic=True)

    def _dispatch(self, op: pb.Operation, sender: str) -> pb.Result:
        kind = op.WhichOneof("op")
        if kind in ("heartbeat", "status", "audit", "statuses"):
            member = self._speaks_for.get(sender)
            if member is None:
                raise _Refused(pb.Result.FORBIDDEN, f"only members may send {kind}")
            if kind == "heartbeat":
                self._heartbeat(member, op.heartbeat)
            elif kind == "status":
                self._status(member, op.status)
            elif kind == "statuses":
                self._statuses(member, op.statuses)
            else:
                self._audit(member, op.audit)
        elif kind in ("pin_add", "pin_remove", "pin_update", "recover") \
                and sender not in self._writers:
            raise _Refused(pb.Result.FORBIDDEN, f"{sender!r} may not change the pinset")
        elif kind == "pin_add":
            self._pin_add(op.pin_add)
        elif kind == "pin_remove":
            self._remove(_cid(op.pin_remove.cid))
        elif kind == "pin_update":
            self._pin_update(op.pin_update)
        elif kind == "recover":
            self._recover(_cid(op.recover.cid))
        elif kind == "query":
            return pb.Result(code=pb.Result.OK, pins=self._query(op.query.cid))
        else:
            raise _Refused(pb.Result.BAD_REQUEST, "empty operation")
        return pb.Result(code=pb.Result.OK)

    # ------------------------------------------------------------------ pins

    def _pin_add(self, add: pb.PinAdd) -> None:
        cid = _cid(add.cid)
        if len(add.name.encode()) > MAX_NAME:
            raise _Refused(pb.Result.BAD_REQUEST, f"pin name longer than {MAX_NAME} bytes")
        rmin, rmax = self._factors(add.replication_min, add.replication_max)
        now = self._clock.now_ms
        expire_at = now + add.expire_in_ms if add.expire_in_ms else 0
        key = bytes(cid)
        pin = self._pins.get(key)
        if pin is None:
            pin = _Pin(cid, add.name, rmin, rmax, now, expire_at, add.size)
            self._pins[key] = pin
        else:  # re-pinning changes the options and keeps what is already placed
            pin.name, pin.replication_min, pin.replication_max = add.name, rmin, rmax
            pin.expire_at_ms, pin.size = expire_at, add.size or pin.size
        if expire_at:
            heapq.heappush(self._expiries, (expire_at, key))
        self._reconcile(pin)

    def _factors(self, rmin: int, rmax: int) -> tuple[int, int]:
        n = len(self.members)
        rmin = rmin or self.policy.replication_min
        rmax = rmax or self.policy.replication_max
        rmin = n if rmin == -1 else rmin
        rmax = n if rmax == -1 else min(rmax, n)
        if rmin < 1 or rmax < 1:
            raise _Refused(pb.Result.BAD_REQUEST, "replication factors must be -1 or positive")
        if rmin > n:
            raise _Refused(pb.Result.BAD_REQUEST,
                           f"replication_min {rmin} is more than the {n} members")
        if rmin > rmax:
            raise _Refused(pb.Result.BAD_REQUEST, "replication_min is above replication_max")
        return rmin, rmax

    def _remove(self, cid: CID) -> None:
        pin = self._pins.pop(bytes(cid), None)
        if pin is None:
            raise _Refused(pb.Result.NOT_FOUND, f"{cid} is not pinned")
        self._set_allocations(pin, [])

    def _pin_update(self, update: pb.PinUpdate) -> None:
        old = self._pin(_cid(update.from_cid))
        new_cid = _cid(update.to_cid)
        if bytes(new_cid) not in self._pins:
            # The new version goes where the old one is, so members fetch only the difference.
            pin = _Pin(new_cid, old.name, old.replication_min, old.replication_max,
                       self._clock.now_ms, old.expire_at_ms, 0)
            self._pins[bytes(new_cid)] = pin
            if pin.expire_at_ms:
                heapq.heappush(self._expiries, (pin.expire_at_ms, bytes(new_cid)))
            self._set_allocations(pin, list(old.allocations))
            self._reconcile(pin)
        self._remove(old.cid)

    def _recover(self, cid: CID) -> None:
        pin = self._pin(cid)
        pin.excluded.clear()
        pin.strikes.clear()
        pin.audit_failures.clear()
        for member, status in pin.statuses.items():
            if status.state == pb.PIN_ERROR and member in pin.allocations:
                pin.statuses[member] = _Status(pb.QUEUED, self._clock.now_ms)
        self._reconcile(pin)

    def _pin(self, cid: CID) -> _Pin:
        pin = self._pins.get(bytes(cid))
        if pin is None:
            raise _Refused(pb.Result.NOT_FOUND, f"{cid} is not pinned")
        return pin

    # ------------------------------------------------------------------ members' reports

    def _heartbeat(self, member: str, beat: pb.Heartbeat) -> None:
        if len(beat.tags) > MAX_TAGS or any(len(t.encode()) > MAX_TAG for t in beat.tags):
            raise _Refused(pb.Result.BAD_REQUEST, f"at most {MAX_TAGS} tags of {MAX_TAG} bytes")
        now = self._clock.report(member, beat.time_ms)
        info = self._info[member]
        info.last_seen_ms, info.free_space = now, beat.free_space
        info.tags, info.reported = tuple(sorted(set(beat.tags))), True

    def _status(self, member: str, report: pb.StatusReport) -> None:
        cid, state = _checked_status(report)
        self._apply_status(member, self._pin(cid), state, report.error)

    def _statuses(self, member: str, batch: pb.StatusBatch) -> None:
        """All or nothing for malformed reports; reports of pins since removed are skipped."""
        if len(batch.reports) > MAX_BATCH:
            raise _Refused(pb.Result.BAD_REQUEST, f"more than {MAX_BATCH} reports in a batch")
        checked = [(_checked_status(r), r.error) for r in batch.reports]
        for (cid, state), error in checked:
            pin = self._pins.get(bytes(cid))
            if pin is not None:
                self._apply_status(member, pin, state, error)

    def _apply_status(self, member: str, pin: _Pin, state: int, error: str) -> None:
        pin.statuses[member] = _Status(state, self._clock.now_ms, _clip(error, MAX_MESSAGE))
        self._reconcile(pin)

    def _audit(self, auditor: str, report: pb.AuditReport) -> None:
        pin = self._pin(_cid(report.cid))
        target = report.target
        if target not in self._info or target == auditor:
            raise _Refused(pb.Result.BAD_REQUEST, "an audit names another member")
        if target in pin.excluded:
            # Already out: accusations now would count against its next term, which must be
            # earned by f+1 failures of audits made after it is eligible again.
            return
        failures = pin.audit_failures.setdefault(target, set())
        if report.ok:
            failures.discard(auditor)
        else:
            failures.add(auditor)
        if len(failures) >= self.f + 1:
            # f+1 distinct accusers include an honest one: the target failed a real audit.
            self._exclude(pin, target, failures)
            self._reconcile(pin)
        elif not failures:
            del pin.audit_failures[target]

    def _exclude(self, pin: _Pin, member: str, accusers: set[str]) -> None:
        """Exclude for a term that doubles with each repeat not yet faded: an honest member that
        was merely slow is back soon, a member that keeps failing spends ever longer out."""
        now = self._clock.now_ms
        record = strike(pin.strikes.get(member), now, self.policy.exclusion_period_ms)
        pin.strikes[member] = record
        until = record.quiet_since_ms
        pin.excluded[member] = until
        del pin.audit_failures[member]  # spent: the next exclusion needs f+1 new failures
        heapq.heappush(self._readmissions, (until, bytes(pin.cid), member))
        pin.statuses[member] = _Status(
            pb.PIN_ERROR, now,
            f"failed audits by {', '.join(sorted(accusers))}; excluded until {until}")

    # ------------------------------------------------------------------ time-driven changes

    def _after_clock_moved(self) -> None:
        now = self._clock.now_ms
        if not self._started_ms and now:
            # The clock started here (f+1 members reported): members not heard from yet get
            # the whole period from now, not from the epoch their unset time would mean, and
            # exclusions decided before it started get their whole term from now too.
            self._started_ms = now
            self._readmissions = [(until + now, key, m) for until, key, m in self._readmissions]
            for pin in self._pins.values():
                pin.excluded = {m: until + now for m, until in pin.excluded.items()}
                pin.strikes = {m: record.shifted(now) for m, record in pin.strikes.items()}
        while self._expiries and self._expiries[0][0] <= now:
            expire_at, key = heapq.heappop(self._expiries)
            pin = self._pins.get(key)
            if pin is not None and pin.expire_at_ms == expire_at:
                self._remove(pin.cid)
        readmitted: set[bytes] = set()
        while self._readmissions and self._readmissions[0][0] <= now:
            until, key, member = heapq.heappop(self._readmissions)
            pin = self._pins.get(key)
            if pin is not None and pin.excluded.get(member) == until:
                del pin.excluded[member]
                readmitted.add(key)
        for key in sorted(readmitted):
            self._reconcile(self._pins[key])
        limit = self.policy.reallocate_after_ms
        down = {m for m in self.members
                if now - max(self._info[m].last_seen_ms, self._started_ms) > limit}
        if down == self._down:
            return
        changed = down ^ self._down
        self._down = down
        affected = set().union(*(self._by_member[m] for m in changed))
        if changed - down:  # someone came back: pins that lacked members may place it now
            affected |= {key for key, pin in self._pins.items()
                         if len(self._live(pin.allocations)) < pin.replication_max}
        for key in sorted(affected):
            self._reconcile(self._pins[key])

    # ------------------------------------------------------------------ allocation

    def _live(self, members: Iterable[str]) -> list[str]:
        return [m for m in members if m not in self._down]

    def _reconcile(self, pin: _Pin) -> None:
        """Bring the pin's allocation to replication_max live, eligible members, if it can."""
        target = pin.replication_max
        allocations = [m for m in pin.allocations if m not in pin.excluded]
        live = self._live(allocations)
        if len(live) < target:
            candidates = [(m, self._info[m].free_space) for m in self.members
                          if m not in allocations and m not in pin.excluded
                          and m not in self._down and self._has_room(m, pin)]
            added = self._ranked(pin, candidates)[:target - len(live)]
            allocations += added
            for member in added:
                current = pin.statuses.get(member)
                if current is None or current.state not in (pb.PINNED, pb.PINNING):
                    pin.statuses[member] = _Status(pb.QUEUED, self._clock.now_ms)
        elif len(live) > target:
            # Over-replicated (a member came back): keep the best placed holders, and only drop
            # the others once those kept all say pinned, so the pin never dips below its factor.
            order = self._ranked(pin, [(m, self._info[m].free_space) for m in live])
            pinned = [m for m in order if self._state(pin, m) == pb.PINNED]
            keep = (pinned + [m for m in order if m not in pinned])[:target]
            if all(self._state(pin, m) == pb.PINNED for m in keep):
                allocations = [m for m in allocations if m in keep or m in self._down]
        self._set_allocations(pin, allocations)

    def _ranked(self, pin: _Pin, candidates: list[tuple[str, int]]) -> list[str]:
        """Rendezvous order, members with fewer exclusions from this pin first: a member back
        from an exclusion takes a slot only when no member with a cleaner record can, so a
        liar is re-admitted only where the pin would otherwise lack a holder."""
        return sorted(rank(bytes(pin.cid), candidates), key=lambda m: self._strikes(pin, m))

    def _strikes(self, pin: _Pin, member: str) -> int:
        record = pin.strikes.get(member)
        if record is None:
            return 0
        return record.count_at(self._clock.now_ms, self.policy.exclusion_period_ms)

    def _has_room(self, member: str, pin: _Pin) -> bool:
        info = self._info[member]
        return not (pin.size and info.reported and info.free_space < pin.size)

    def _state(self, pin: _Pin, member: str) -> int:
        status = pin.statuses.get(member)
        return status.state if status is not None else pb.QUEUED

    def _set_allocations(self, pin: _Pin, allocations: list[str]) -> None:
        key = bytes(pin.cid)
        for member in pin.allocations:
            self._by_member[member].discard(key)
        for member in allocations:
            self._by_member[member].add(key)
        pin.allocations = allocations

    # ------------------------------------------------------------------ reading the state

    @property
    def now_ms(self) -> int:
        return self._clock.now_ms

    def down_members(self) -> frozenset[str]:
        return frozenset(self._down)

    def allocations(self, cid: CID) -> tuple[str, ...]:
        pin = self._pins.get(bytes(cid))
        return tuple(pin.allocations) if pin is not None else ()

    def allocated_to(self, member: str) -> list[CID]:
        """The pins `member` should hold, in a stable order (what its pin tracker drives)."""
        return [self._pins[key].cid for key in sorted(self._by_member[member])]

    def view(self, cid: CID) -> pb.PinView | None:
        pin = self._pins.get(bytes(cid))
        return _view(pin) if pin is not None else None

    def pins(self) -> list[pb.PinView]:
        return [_view(self._pins[key]) for key in sorted(self._pins)]

    def _query(self, raw_cid: bytes) -> list[pb.PinView]:
        if not raw_cid:
            return self.pins()
        return [_view(self._pin(_cid(raw_cid)))]

    def state_digest(self) -> bytes:
        """SHA-256 of everything execution decides: equal on members that executed one log."""
        h = hashlib.sha256(self._clock.now_ms.to_bytes(8, "big"))
        for view in self.pins():
            data = view.SerializeToString(deterministic=True)
            h.update(len(data).to_bytes(4, "big") + data)
            pin = self._pins[view.cid]
            h.update(repr((sorted(pin.excluded.items()), sorted(pin.strikes.items()),
                           sorted((m, sorted(a)) for m, a in pin.audit_failures.items())))
                     .encode())
        for member in self.members:
            info = self._info[member]
            h.update(repr((member, info.last_seen_ms, info.free_space, info.tags,
                           member in self._down)).encode())
        return h.digest()


def _view(pin: _Pin) -> pb.PinView:
    return pb.PinView(
        cid=bytes(pin.cid), name=pin.name, replication_min=pin.replication_min,
        replication_max=pin.replication_max, added_ms=pin.added_ms,
        expire_at_ms=pin.expire_at_ms, allocations=pin.allocations,
        members=[pb.MemberStatus(member=m, state=s.state, since_ms=s.since_ms, error=s.error)
                 for m, s in sorted(pin.statuses.items())])


def is_query(operation: bytes) -> bool:
    """True for an operation that changes nothing (what a reader identity may send)."""
    try:
        return _decode(operation).WhichOneof("op") == "query"
    except _Refused:
        return False


def _checked_status(report: pb.StatusReport) -> tuple[CID, int]:
    cid = _cid(report.cid)
    if report.state == pb.PIN_STATE_UNSPECIFIED or report.state not in pb.PinState.values():
        raise _Refused(pb.Result.BAD_REQUEST, "status without a known state")
    return cid, report.state


def _decode(operation: bytes) -> pb.Operation:
    if len(operation) > MAX_OPERATION_SIZE:
        raise _Refused(pb.Result.BAD_REQUEST, f"operation larger than {MAX_OPERATION_SIZE} bytes")
    try:
        return pb.Operation.FromString(operation)
    except ProtobufDecodeError:
        raise _Refused(pb.Result.BAD_REQUEST, "operation is not a pinset Operation") from None


def _cid(raw: bytes) -> CID:
    try:
        return CID.decode(raw)
    except BlockmeshError as exc:
        raise _Refused(pb.Result.BAD_REQUEST, f"not a CID: {exc}") from None


def _clip(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")
