"""Audits: members check, over Bitswap, that the members saying "pinned" can serve the data.

A member's "pinned" is a claim, and a lying member could make it to take allocations it never
stores. So every member audits: each interval it picks one (pin, member) pair at random among
the members whose state in the log is pinned, asks that member alone for the pin's root and
then for a random path of children down the DAG, each block verified by its hash, and reports
the outcome through the log. A member is excluded from a pin once f+1 distinct members report a
failed audit of it, so at least one honest member saw it fail.

What a passed audit proves: the audited member served those randomly chosen blocks, byte for
byte, within the audit's timeout. What it does not prove: that the member stores them itself
(it could fetch them from another holder while answering; a timeout shorter than a fetch
makes that harder, never impossible), nor that it holds the blocks nobody asked for (sampling a
fresh random path each time makes long-term cheating unlikely, not impossible). A member that
is merely slow can fail an audit, so an exclusion is a term, not a verdict: it ends on the
cluster clock (`exclusion_period`, doubling at each repeat for the same pin, repeats fading
when the member stays quiet: see `strikes.py`), then the member is eligible and audited afresh;
`recover` lets an operator end it sooner (see `app.py`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from blockmesh.data.cid import CID

#: Blocks one audit asks for along its random path (the root included).
MAX_AUDIT_BLOCKS = 4


@dataclass(frozen=True)
class AuditRequest:
    cid: CID
    target: str


class Auditor:
    """Decides when to audit whom; the daemon fetches and reports (this module does no I/O)."""

    def __init__(self, member: str, interval: float, rng: random.Random | None = None) -> None:
        self.member = member
        self.interval = interval
        self._rng = rng or random.Random()
        self._next: float | None = None

    def tick(self, now: float, claims: Sequence[tuple[CID, str]]) -> AuditRequest | None:
        """`claims`: (pin, member) pairs whose state in the log is pinned."""
        if self._next is None:
            self._next = now + self._rng.uniform(0, self.interval)  # members spread out
        if now < self._next:
            return None
        self._next = now + self.interval * self._rng.uniform(0.5, 1.5)
        others = [claim for claim in claims if claim[1] != self.member]
        if not others:
            return None
        cid, target = self._rng.choice(others)
        return AuditRequest(cid, target)

    def next_child(self, links: Sequence[CID]) -> CID | None:
        """The next block of the random path: one of a node's links, or None at a leaf."""
        return self._rng.choice(links) if links else None
