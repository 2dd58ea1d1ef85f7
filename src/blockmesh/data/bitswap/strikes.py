"""Which peers misbehaved, so the adapter can disconnect them and refuse them later.

Engines only flag; closing connections is the adapter's job. The memory of flagged peers is
bounded (oldest forgotten first) so a stream of fresh bad identities cannot grow it forever.
"""

from __future__ import annotations

from collections import OrderedDict

from blockmesh.data.bitswap.protocol import PeerId


class PeerStrikes:
    def __init__(self, max_strikes: int, max_remembered: int) -> None:
        self._max_strikes = max_strikes
        self._max_remembered = max_remembered
        self._strikes: dict[PeerId, int] = {}
        self._flagged: OrderedDict[PeerId, str] = OrderedDict()

    def strike(self, peer: PeerId, reason: str) -> bool:
        """Count one offence; True once the peer has reached the limit and is flagged."""
        if peer in self._flagged:
            return True
        count = self._strikes.get(peer, 0) + 1
        if count >= self._max_strikes:
            self.flag(peer, reason)
            return True
        self._strikes[peer] = count
        return False

    def flag(self, peer: PeerId, reason: str) -> None:
        """Flag at once (for offences with no honest explanation, such as flooding)."""
        self._strikes.pop(peer, None)
        self._flagged[peer] = reason
        self._flagged.move_to_end(peer)
        while len(self._flagged) > self._max_remembered:
            self._flagged.popitem(last=False)

    def count(self, peer: PeerId) -> int:
        return self._max_strikes if peer in self._flagged else self._strikes.get(peer, 0)

    def is_flagged(self, peer: PeerId) -> bool:
        return peer in self._flagged

    def flagged(self) -> dict[PeerId, str]:
        """Flagged peers and why, oldest first."""
        return dict(self._flagged)
