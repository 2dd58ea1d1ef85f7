"""When to announce which CIDs to the content routing, with no I/O (kubo's Reprovider).

Provider records expire (the DHT keeps them 48 h), so a node re-announces what it holds every
`interval` seconds, 22 h by default as in kubo, the first time shortly after start. What it
holds is chosen by kubo's strategy names: `all` (every block in the store), `pinned` (every
block of every pinned DAG) or `roots` (the pinned roots alone: a peer that finds a root fetches
the rest from the same provider). Roots that `add` and `pin` create are announced at once and
again at each round. The engine only decides; `node/providing.py` does the announcing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from blockmesh.data.cid import CID
from blockmesh.errors import BlockmeshError

STRATEGIES = ("all", "pinned", "roots")
DEFAULT_STRATEGY = "all"
DEFAULT_INTERVAL = 22 * 3600.0
#: kubo waits this long after start before its first round, so start-up is not slowed.
INITIAL_DELAY = 60.0
#: A round skipped for want of routing peers is tried again this much later.
RETRY_DELAY = 60.0
#: Roots waiting to be announced at once; beyond this they wait for the next round.
MAX_PENDING = 4096


class ReproviderError(BlockmeshError):
    """A reprovider setting that kubo's Reprovider does not know."""


@dataclass(frozen=True)
class KeySources:
    """Where the keys come from: the repo's blocks and pins, and a DAG's blocks under a root."""

    all_blocks: Callable[[], Iterable[CID]]
    pins: Callable[[], Iterable[tuple[CID, str]]]
    dag: Callable[[CID], Iterable[CID]]


def strategy_keys(strategy: str, sources: KeySources) -> Iterator[CID]:
    """Each CID `strategy` announces, once (by multihash, as provider records are keyed)."""
    seen: set[bytes] = set()

    def fresh(cids: Iterable[CID]) -> Iterator[CID]:
        for cid in cids:
            if cid.multihash not in seen:
                seen.add(cid.multihash)
                yield cid

    if strategy == "all":
        yield from fresh(sources.all_blocks())
    elif strategy == "roots":
        yield from fresh(cid for cid, _ in sources.pins())
    elif strategy == "pinned":
        for cid, kind in sources.pins():
            yield from fresh([cid] if kind == "direct" else sources.dag(cid))
    else:
        raise ReproviderError(f"unknown reprovider strategy {strategy!r} "
                              f"(one of {', '.join(STRATEGIES)})")


@dataclass
class Round:
    """What to announce now: `roots` just added or pinned, and whether a full round is due."""

    roots: list[CID]
    full: bool


@dataclass
class Reprovider:
    """Call `poll(now)` when woken; sleep until `next_wake(now)` or until `provide_now`."""

    strategy: str
    interval: float
    start: float
    initial_delay: float = INITIAL_DELAY
    retry_delay: float = RETRY_DELAY
    _pending: dict[bytes, CID] = field(default_factory=dict)
    _next_full: float | None = None
    last_full: float | None = None
    last_count: int = 0
    dropped: int = 0
    skipped_rounds: int = 0
    _hold_until: float = 0.0  # deferred roots wait until then

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ReproviderError(f"unknown reprovider strategy {self.strategy!r} "
                                  f"(one of {', '.join(STRATEGIES)})")
        if self.interval < 0:
            raise ReproviderError("reprovider interval must be >= 0 (0 turns it off)")
        if self.interval > 0:
            self._next_full = self.start + min(self.initial_delay, self.interval)

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def provide_now(self, roots: Iterable[CID]) -> bool:
        """Queue new roots for an immediate announcement; True if any was queued."""
        queued = False
        for cid in roots:
            if cid.multihash in self._pending:
                continue
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1  # the next full round announces it
                continue
            self._pending[cid.multihash] = cid
            queued = True
        return queued

    def poll(self, now: float) -> Round:
        roots: list[CID] = []
        if now >= self._hold_until:
            roots = list(self._pending.values())
            self._pending.clear()
        full = self._next_full is not None and now >= self._next_full
        if full:
            self._next_full = None  # set again by `finished`, so rounds never overlap
        return Round(roots, full)

    def finished(self, now: float, count: int) -> None:
        """A full round ended, having announced `count` CIDs: the next is `interval` later."""
        self.last_full = now
        self.last_count = count
        if self.interval > 0:
            self._next_full = now + self.interval

    def skipped(self, now: float, job: Round) -> None:
        """`job` found nobody to announce to: its roots wait and its full round (if it was
        one) comes again `retry_delay` later, not a whole interval later, so a node that finds
        peers a minute after start announces then."""
        self.provide_now(job.roots)
        self._hold_until = now + self.retry_delay
        if job.full:
            self.skipped_rounds += 1
            if self.interval > 0:
                self._next_full = now + min(self.retry_delay, self.interval)

    def next_wake(self, now: float) -> float | None:
        """Seconds until `poll` has work, None if only `provide_now` can create some."""
        waits = [max(0.0, self._next_full - now)] if self._next_full is not None else []
        if self._pending:
            waits.append(max(0.0, self._hold_until - now))
        return min(waits) if waits else None
