"""One member's pin tracker: drives its local pins toward what the committed pinset allocates.

IPFS Cluster's pin tracker, without I/O: the member daemon feeds it the committed allocation
(after every executed block), the outcome of each fetch, and the clock; it answers with actions
— fetch this DAG over Bitswap, unpin that one, report a state change through the log. Its local
states are IPFS Cluster's: queued -> pinning -> pinned, or pin_error with the reason and a retry
after an exponential backoff with jitter; unpinning when a pin is no longer allocated here.

The member's state in the log lags its local state by one consensus round, so a report is sent
once for each local change and re-sent only when the log disagrees after it was acknowledged
(after a restart, or after `recover` reset a failed pin to queued, which also retries at once).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from blockmesh.control.proto import pinset_pb2 as pb
from blockmesh.data.cid import CID

QUEUED, PINNING, PINNED, PIN_ERROR = "queued", "pinning", "pinned", "pin_error"
_LOG_STATE = {QUEUED: pb.QUEUED, PINNING: pb.PINNING, PINNED: pb.PINNED, PIN_ERROR: pb.PIN_ERROR}


@dataclass(frozen=True)
class TrackerParams:
    #: DAG fetches one member runs at once; the rest wait queued.
    max_concurrent_pins: int = 4
    #: First retry of a failed pin after this many seconds, doubling up to retry_max.
    retry_base: float = 2.0
    retry_max: float = 300.0


@dataclass(frozen=True)
class Fetch:
    """Fetch the whole DAG of `cid` and pin it; `holders` are members that report it pinned."""

    cid: CID
    holders: tuple[str, ...]


@dataclass(frozen=True)
class Unpin:
    cid: CID


@dataclass(frozen=True)
class Report:
    """Submit this member's state for `cid` to the log."""

    cid: CID
    state: int
    error: str = ""


Action = Fetch | Unpin | Report


@dataclass(frozen=True)
class Allocated:
    """What the committed pinset says about one pin allocated to this member."""

    state: int  # this member's state as the log has it (pb.PinState)
    holders: tuple[str, ...] = ()  # other members whose state is pinned


@dataclass
class _Local:
    state: str
    attempts: int = 0
    retry_at: float = 0.0
    error: str = ""
    reported: int | None = None  # the state last submitted and not yet seen in the log
    holders: tuple[str, ...] = field(default=())


class PinTracker:
    def __init__(self, params: TrackerParams | None = None, *, held: Iterable[CID] = (),
                 rng: random.Random | None = None) -> None:
        """`held`: the cluster pins the local repo already holds (a restart resumes from them);
        pins the user made locally outside the cluster are not the tracker's to touch."""
        self.params = params or TrackerParams()
        self._rng = rng or random.Random()
        self._held = set(held)
        self._pins: dict[CID, _Local] = {}

    def states(self) -> dict[CID, str]:
        return {cid: local.state for cid, local in self._pins.items()}

    def sync(self, allocated: Mapping[CID, Allocated], now: float) -> list[Action]:
        """Take the committed allocation for this member; returns what to do."""
        actions: list[Action] = []
        for cid in [c for c in self._pins if c not in allocated]:
            local = self._pins.pop(cid)
            if local.state in (PINNED, PINNING):
                self._held.discard(cid)
                actions.append(Unpin(cid))
        for cid in [c for c in self._held if c not in allocated]:
            self._held.discard(cid)
            actions.append(Unpin(cid))
        for cid, committed in allocated.items():
            local = self._pins.get(cid)
            if local is None:
                local = _Local(PINNED if cid in self._held else QUEUED)
                self._pins[cid] = local
            local.holders = committed.holders
            if local.reported is not None and committed.state == local.reported:
                local.reported = None  # the log has what we said
            elif local.reported is None and local.state == PIN_ERROR \
                    and committed.state == pb.QUEUED:
                local.retry_at = now  # recovered by an operator: try again now
            if local.reported is None and committed.state != _LOG_STATE[local.state] \
                    and local.state != QUEUED:
                actions.append(self._report(cid, local))
        actions += self._start_fetches(now)
        return actions

    def fetched(self, cid: CID, now: float) -> list[Action]:
        local = self._pins.get(cid)
        if local is None or local.state != PINNING:
            return []  # no longer allocated here, and already unpinned by sync
        local.state, local.attempts, local.error = PINNED, 0, ""
        self._held.add(cid)
        return [self._report(cid, local), *self._start_fetches(now)]

    def failed(self, cid: CID, error: str, now: float) -> list[Action]:
        local = self._pins.get(cid)
        if local is None or local.state != PINNING:
            return []
        local.attempts += 1
        delay = min(self.params.retry_max, self.params.retry_base * 2 ** (local.attempts - 1))
        local.state, local.error = PIN_ERROR, error
        local.retry_at = now + delay * self._rng.uniform(0.5, 1.0)
        return [self._report(cid, local), *self._start_fetches(now)]

    def unsent(self, cid: CID) -> None:
        """A report for `cid` did not reach the log (the submit failed): send it again."""
        local = self._pins.get(cid)
        if local is not None:
            local.reported = None

    def tick(self, now: float) -> list[Action]:
        return self._start_fetches(now)

    def next_deadline(self) -> float | None:
        """When a failed pin is next due for a retry (for the caller's timer)."""
        due = [p.retry_at for p in self._pins.values() if p.state == PIN_ERROR]
        return min(due) if due else None

    def _start_fetches(self, now: float) -> list[Action]:
        running = sum(1 for p in self._pins.values() if p.state == PINNING)
        actions: list[Action] = []
        for cid, local in self._pins.items():
            if running >= self.params.max_concurrent_pins:
                break
            due = local.state == QUEUED or (local.state == PIN_ERROR and local.retry_at <= now)
            if due:
                local.state = PINNING
                running += 1
                actions += [self._report(cid, local), Fetch(cid, local.holders)]
        return actions

    @staticmethod
    def _report(cid: CID, local: _Local) -> Report:
        local.reported = _LOG_STATE[local.state]
        return Report(cid, local.reported, local.error if local.state == PIN_ERROR else "")
