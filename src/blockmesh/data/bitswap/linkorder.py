"""Where each block sits in the DAGs we served a peer, so a batch of wants goes out in walk order.

kubo's file reader asks for ten children of a node at a time and asks for the next ten only once
it has read the sixth, strictly in link order. The priorities its session puts on those ten are
a shuffle (boxo walks a Go map to build the message), so a server honouring priorities sends the
reader's next block last about as often as first, and the reader's next request waits for most
of the batch: the transfer stops and starts every ten blocks. The server has already sent this
peer the parent of those children, so it knows their real order; this module remembers it.

A position is the path of link indexes from the first parent we saw, so comparing two positions
compares places in a depth-first walk. Nothing here trusts the peer: positions only reorder
wants that arrived together in one message, and the table is bounded.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb
from blockmesh.errors import BlockmeshError

_PB_LINKS_TAG = 0x12  # dag-pb field 2 (Links), length-delimited: canonical blocks start with it

Position = tuple[int, ...]


class LinkOrder:
    """Positions of the children of dag-pb blocks sent to one peer, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._positions: dict[CID, Position] = {}
        self._roots = itertools.count()

    def __len__(self) -> int:
        return len(self._positions)

    def learn(self, cid: CID, block: bytes) -> None:
        """Record the order of `block`'s links; a no-op for leaves and other codecs."""
        position = self._positions.pop(cid, None)
        if cid.codec != Codec.DAG_PB or not block or block[0] != _PB_LINKS_TAG:
            return  # leaves (no Links field) are the common case: skip decoding them
        try:
            children = dagpb.decode(block).links
        except BlockmeshError:
            return
        base = position if position is not None else (next(self._roots),)
        for index, link in enumerate(children[: self._capacity]):
            self._positions.pop(link.cid, None)
            self._positions[link.cid] = (*base, index)
        while len(self._positions) > self._capacity:
            del self._positions[next(iter(self._positions))]

    def priorities(self, cids: Sequence[CID], priorities: Sequence[int]) -> list[int]:
        """The same priorities, handed out again so known CIDs rank in walk order among
        themselves; CIDs without a position keep their own."""
        known = [i for i, cid in enumerate(cids) if cid in self._positions]
        out = list(priorities)
        if len(known) < 2:
            return out
        ranked = sorted(known, key=lambda i: self._positions[cids[i]])
        for i, priority in zip(ranked, sorted((out[i] for i in known), reverse=True),
                               strict=True):
            out[i] = priority
        return out
