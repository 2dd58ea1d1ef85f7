"""How a replica left behind in an old view learns the view the others are in.

A replica restarted from its store (or cut off during a view change) wakes up in the last view
it installed. Left alone it would stay there until its request timer expired and it started a
view change of its own, which costs a timeout and, if the others need its vote meanwhile,
makes them time out too and change view once more.

Votes tell it sooner. An honest replica sends PRE_PREPARE, PREPARE and COMMIT only in a view
it installed, so signed votes in views at or above w from f+1 distinct replicas prove that at
least one honest replica installed a view >= w, from a NEW_VIEW that replica holds. The
engine then moves to w with a VIEW_CHANGE: a replica that installed w answers a VIEW_CHANGE
for its own view with its NEW_VIEW (the primary's signature and 2f+1 VIEW_CHANGEs travel with
it), which the lagging replica checks like any other before it enters w. No new view is
formed; the others' views do not move.
"""

from __future__ import annotations

from collections.abc import Callable

from blockmesh.control.proto import pbft_pb2 as pb

#: Message types an honest replica sends only in a view it installed.
VOTES = frozenset({pb.PRE_PREPARE, pb.PREPARE, pb.COMMIT})


class PeerViews:
    """The highest view each other replica was seen voting in (by verified signatures)."""

    def __init__(self, f: int) -> None:
        self._f = f
        self._views: dict[str, int] = {}

    def observe(self, vote: pb.PBFTMessage, view: int,
                verify: Callable[[pb.PBFTMessage], None]) -> int | None:
        """The view to join, if `vote` (a VOTES message above `view`, this replica's) makes
        f+1 replicas seen voting above `view`: the highest w that f+1 of them reached. `verify`
        raises on a bad signature; it runs only for a vote that raises what is known of its
        sender, so replayed and repeated votes cost nothing."""
        if vote.view <= self._views.get(vote.node_id, -1):
            return None
        verify(vote)
        self._views[vote.node_id] = vote.view
        seen = sorted(self._views.values(), reverse=True)
        if len(seen) <= self._f or seen[self._f] <= view:
            return None
        return seen[self._f]
