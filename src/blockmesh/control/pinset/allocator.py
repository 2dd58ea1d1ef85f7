"""Which members hold a pin: weighted rendezvous hashing in integer arithmetic.

Every honest member must compute the same allocation from the same committed state, on any
machine. Weighted rendezvous hashing (highest random weight with the logarithmic method)
gives each member the score `w / -ln(h)` with `h` a hash of (pin, member) in (0, 1], and the
highest scores win: a member's chance to be chosen is proportional to its weight, and adding or
removing one member moves only the pins it wins or loses. Floating-point logarithms may differ in
the last bit between C libraries, so `-log2(h)` is computed here in Q32 fixed point with integers
alone and scores are compared as exact fractions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from fractions import Fraction

_FRACTION_BITS = 32
_ONE = 1 << 64  # fixed-point 1.0 for the mantissa squaring below
#: Free space counts in MiB, capped so that one member claiming an absurd free space (a liar,
#: or a huge disk) is at most this many times likelier to win than a member with 1 MiB free.
WEIGHT_UNIT = 1 << 20
MAX_WEIGHT = 1 << 24  # 16 TiB in MiB


def neg_log2_q32(value: int, bits: int = 64) -> int:
    """-log2(value / 2**bits) in Q32 fixed point, for 1 <= value <= 2**bits."""
    if not 1 <= value <= 1 << bits:
        raise ValueError("value out of range")
    integer = value.bit_length() - 1  # floor(log2(value))
    # Mantissa in [1, 2) as a 64-bit fraction; each squaring yields one more bit of log2.
    mantissa = (value << 64) >> integer
    fraction = 0
    for _ in range(_FRACTION_BITS):
        mantissa = (mantissa * mantissa) >> 64
        fraction <<= 1
        if mantissa >= 2 * _ONE:
            mantissa >>= 1
            fraction |= 1
    log2_value = (integer << _FRACTION_BITS) | fraction
    return (bits << _FRACTION_BITS) - log2_value


def _hash_point(key: bytes, member: str) -> int:
    """A 64-bit hash of (key, member), mapped to 1 .. 2**64 so its logarithm is finite."""
    digest = hashlib.sha256(len(key).to_bytes(2, "big") + key + member.encode()).digest()
    return int.from_bytes(digest[:8], "big") + 1


def weight_of(free_space: int) -> int:
    return max(1, min(free_space // WEIGHT_UNIT, MAX_WEIGHT))


def rank(key: bytes, members: Iterable[tuple[str, int]]) -> list[str]:
    """Members ordered best first for `key`; each pair is (member, free space in bytes).

    Ties (equal exact scores) fall back to the member name, so the order is total.
    """
    scored = []
    for member, free_space in members:
        distance = neg_log2_q32(_hash_point(key, member))
        # Smaller -ln(h) / w is a higher score w / -ln(h).
        scored.append((Fraction(distance, weight_of(free_space)), member))
    scored.sort()
    return [member for _, member in scored]
