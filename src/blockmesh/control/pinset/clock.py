"""The cluster clock: a time that every member reads alike and that f liars cannot steer.

PBFT orders operations but gives them no time, and a pinset needs one (pin expiry, "member
down for longer than X"). Members put their wall clock in their heartbeats; the cluster clock is
the (f+1)-th largest of the latest values, never moving backwards. With at most f Byzantine
members, at least one honest member's clock is at or above it, so liars cannot push it ahead of
every honest clock; and while f+1 honest members keep reporting, it keeps advancing, so liars
cannot stop it either.
"""

from __future__ import annotations

from collections.abc import Sequence


class ClusterClock:
    def __init__(self, members: Sequence[str], f: int) -> None:
        self._latest = dict.fromkeys(members, 0)
        self._f = f
        self._now = 0

    @property
    def now_ms(self) -> int:
        return self._now

    def report(self, member: str, time_ms: int) -> int:
        """Take a member's clock reading; returns the cluster clock after it."""
        if time_ms > self._latest[member]:
            self._latest[member] = time_ms
            ordered = sorted(self._latest.values(), reverse=True)
            self._now = max(self._now, ordered[self._f])
        return self._now
