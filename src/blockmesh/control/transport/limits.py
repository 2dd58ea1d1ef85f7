"""Pure helpers for pacing: reconnect backoff and inbound token buckets.

Both take the clock and randomness from the caller, so they are deterministic under test and
the transports stay the only code that sleeps.
"""

from __future__ import annotations

import random


class Backoff:
    """Exponential reconnect delays with jitter, bounded by `maximum`.

    The jitter keeps replicas that lost the same peer from redialling it in lockstep; drawing
    from [d/2, d] instead of [0, d] keeps a floor so a flapping peer is not hammered.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        multiplier: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial or multiplier < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and multiplier >= 1")
        self._initial = initial
        self._maximum = maximum
        self._multiplier = multiplier
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._initial * self._multiplier**self.attempt)
        self.attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class TokenBucket:
    """Allows `rate` units per second with bursts of `burst`; says how long to wait otherwise."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("a token bucket needs a positive rate and burst")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, amount: float, now: float) -> float:
        """Spend `amount` tokens; return 0 or the seconds to wait until the debt is repaid."""
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
