"""Exponential backoff with full jitter: the delay before the next attempt at something that
failed (a dial), drawn uniformly from [0, min(cap, base * factor**attempts)].

Full jitter (rather than a fixed doubling) spreads the redials of many nodes that lost the same
peer at the same moment, so a restarted peer is not hit by all of them at once. The random
source is passed in, so a test with a seeded `random.Random` sees one exact schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Seconds: the first ceiling, its growth per failure, and the most it ever reaches."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")


class Backoff:
    """One target's backoff state: how many attempts failed since the last success."""

    def __init__(self, policy: BackoffPolicy, rng: random.Random) -> None:
        self.policy = policy
        self._rng = rng
        self.failures = 0

    def ceiling(self) -> float:
        """The largest delay the next draw may give (it grows until it reaches the cap)."""
        policy = self.policy
        # Stop multiplying once capped, so a peer down for days cannot overflow the float.
        exponent = min(self.failures, 64)
        return min(policy.cap, policy.base * policy.factor**exponent)

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        delay = self._rng.uniform(0.0, self.ceiling())
        self.failures += 1
        return delay

    def reset(self) -> None:
        """The target was reached: the next loss starts again from `base`."""
        self.failures = 0
