"""A member's record of exclusions from one pin: it sets the next term and fades when quiet.

The k-th exclusion of a member from a pin lasts `exclusion_period * 2**(k-1)`, so a member that
keeps failing audits spends ever longer out. But a member that is merely slow also fails audits
now and then (under load, 10 s is not always enough), and if strikes never faded, an honest
member excluded twice during one overload would carry the doubled term, and its last place when
slots are filled, for good. So a strike fades after `QUIET_PERIODS_PER_STRIKE` exclusion periods
of cluster-clock time in which the member was eligible and was not excluded again.

Why this rule and not a shorter one, and what it costs against a liar:

- Quiet time starts when the exclusion ends, never while the member is out: a long term is not
  itself forgiveness, so the doubling still bites.
- A new exclusion restarts the quiet time from its end and drops the progress towards the next
  fade: a member excluded again within `QUIET_PERIODS_PER_STRIKE` periods of its return keeps
  every strike, so a liar caught each time it returns is treated exactly as if nothing faded.
- Each fade takes its own quiet stretch, disjoint from every other and from every term, so over
  a time T a member sheds at most T / (QUIET_PERIODS_PER_STRIKE * exclusion_period) strikes, and
  each shed strike buys it at most one re-admission more than the doubling alone allows. With the
  defaults (5 minutes, 12 periods) that is at most one extra re-admission per hour, each one after
  an hour in which f+1 members never reported a failed audit of it.

Fading needs no timer: the count is read off the cluster clock (`count_at`), so every replica
computes the same value at the same point of the log, and a replay computes it again.
"""

from __future__ import annotations

from dataclasses import dataclass

#: A member's k-th exclusion from one pin lasts exclusion_period_ms * 2**(k-1), doubling at most
#: this many times (1024 periods: about 3.5 days with the default 5 minutes), so a member
#: that keeps failing stays out for long stretches yet never for good without an operator.
MAX_EXCLUSION_DOUBLINGS = 10
#: Exclusion periods of eligibility without a new exclusion that fade one strike: an hour with
#: the default period, 120 audit intervals of every member, in which a member that does not
#: serve a pin it holds is very likely caught, so fading rewards members that do.
QUIET_PERIODS_PER_STRIKE = 12


@dataclass(frozen=True)
class Strikes:
    """How many exclusions count against a member, and since when it has been quiet."""

    count: int
    #: Cluster-clock time its quiet stretch began: the end of its last exclusion. Strikes fade
    #: one per QUIET_PERIODS_PER_STRIKE periods from here.
    quiet_since_ms: int

    def count_at(self, now_ms: int, period_ms: int) -> int:
        """The strikes that still count at `now_ms` on the cluster clock."""
        quiet = now_ms - self.quiet_since_ms
        if quiet <= 0:
            return self.count
        return max(0, self.count - quiet // (QUIET_PERIODS_PER_STRIKE * period_ms))

    def shifted(self, by_ms: int) -> Strikes:
        """The same record with its times `by_ms` later (when the cluster clock starts)."""
        return Strikes(self.count, self.quiet_since_ms + by_ms)


def strike(record: Strikes | None, now_ms: int, period_ms: int) -> Strikes:
    """The record after one more exclusion at `now_ms`; its term ends at `quiet_since_ms`."""
    count = (record.count_at(now_ms, period_ms) if record is not None else 0) + 1
    term = period_ms * 2 ** min(count - 1, MAX_EXCLUSION_DOUBLINGS)
    return Strikes(count, now_ms + term)
