"""A token bucket with no I/O: bytes in, seconds to wait out. The caller owns the clock.

The bucket may go into debt. A 1 MiB write against a bucket that holds 100 KiB is charged
in full and the writer waits until the debt is paid, instead of being split into
bucket-sized pieces: the long-run rate is the same, a large write is never refused (so a
Bitswap block is slowed down, never failed), and concurrent callers line up by themselves:
each charge lands behind the debt of the ones before it.
"""

from __future__ import annotations

import math

#: A bucket holds this many seconds of its rate when idle: a short burst after a pause
#: goes out at once, and a long transfer runs at the rate within this much of its time.
DEFAULT_BURST_SECONDS = 0.1
#: The smallest bucket, whatever the rate: one Noise frame, so tiny rates still move a
#: frame at a time rather than a few bytes.
MIN_BURST_BYTES = 64 << 10


class TokenBucket:
    """`rate` tokens (bytes) per second, holding at most `burst`; starts full at `now`."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError("rate must be a positive number of bytes per second")
        if not (burst > 0 and math.isfinite(burst)):
            raise ValueError("burst must be a positive number of bytes")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    @classmethod
    def for_rate(cls, rate: float, now: float) -> TokenBucket:
        """A bucket of the default size for `rate`."""
        return cls(rate, max(rate * DEFAULT_BURST_SECONDS, MIN_BURST_BYTES), now)

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def charge(self, amount: int, now: float) -> float:
        """Take `amount` bytes now; seconds the caller must wait before they may move (0 when
        the bucket had them). A clock that goes backwards is treated as standing still."""
        if amount < 0:
            raise ValueError("amount must not be negative")
        self._refill(now)
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def available(self, now: float) -> float:
        """Tokens in the bucket at `now` (negative while in debt)."""
        self._refill(now)
        return self._tokens

    def full(self, now: float) -> bool:
        return self.available(now) >= self.burst
