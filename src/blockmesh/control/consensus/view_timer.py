"""How long a replica waits for progress before it suspects the primary.

PBFT doubles the timeout with every view change that follows another without progress, so
that correct replicas eventually wait long enough for a slow but correct primary. Snapping it
back to the base value on the first execution after a view change undoes that on a cluster
that is slow rather than faulty: with every replica short of CPU, a round took longer than the
base timeout, each new view executed a batch or two, the timeout went back to the base and the
next slow round started another view change (22 views in 90 s and 23 blocks, with replicas
throttled to a fifth of a CPU in bursts longer than the 1 s timeout).

So the timeout comes down one halving at a time, at a stable checkpoint, and only when no wait
for progress since the last step came near the halved value: the cluster has shown for a whole
checkpoint interval that the shorter timer would not have fired. A faulty primary is still
replaced after at most the current timeout, which is what PBFT's backoff already accepts.
"""

from __future__ import annotations

#: A wait counts as near the lower timeout beyond this fraction of it.
MARGIN = 0.5


class ViewTimeout:
    """The request and NEW_VIEW timeout: base * 2**level, capped."""

    def __init__(self, base: float, cap: float) -> None:
        self._base = base
        self._cap = cap
        self._level = 0
        self._slowest = 0.0

    @property
    def current(self) -> float:
        return self._at(self._level)

    def _at(self, level: int) -> float:
        return min(self._base * 2 ** min(level, 32), self._cap)

    def view_changed(self) -> None:
        """A view change started: wait twice as long before the next one."""
        self._level += 1
        self._slowest = 0.0

    def progressed(self, waited: float) -> None:
        """A sequence executed after the request timer had run for `waited` seconds."""
        self._slowest = max(self._slowest, waited)

    def checkpoint(self) -> None:
        """A checkpoint became stable: come down a step if the lower timeout had room."""
        if self._level > 0 and self._slowest < MARGIN * self._at(self._level - 1):
            self._level -= 1
        self._slowest = 0.0
