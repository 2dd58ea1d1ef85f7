"""Traffic by peer group, accumulated from ledger snapshots that come and go with peers."""

from __future__ import annotations

from blockmesh.data.bitswap.ledger import LedgerSnapshot
from blockmesh.observe.observer import CLUSTER, OTHER, PeerGroups


def ledger(sent: int, received: int) -> LedgerSnapshot:
    return LedgerSnapshot(bytes_sent=sent * 10, bytes_received=received * 10, blocks_sent=sent,
                          blocks_received=received, exchanged=sent + received, wantlist_size=0)


def group_of(peer: str) -> str:
    return CLUSTER if peer.startswith("m") else OTHER


def test_deltas_go_to_each_peers_group_and_only_grow() -> None:
    groups = PeerGroups()
    groups.update({"m1": ledger(2, 1), "x1": ledger(0, 5)}, group_of)
    groups.update({"m1": ledger(3, 1), "x1": ledger(0, 7)}, group_of)
    assert (groups.groups[CLUSTER].blocks_sent, groups.groups[CLUSTER].blocks_received) == (3, 1)
    assert groups.groups[OTHER].blocks_received == 7
    assert groups.groups[OTHER].bytes_received == 70

    # x1 disconnects (its ledger is gone): what it moved stays counted.
    groups.update({"m1": ledger(3, 1)}, group_of)
    assert groups.groups[OTHER].blocks_received == 7
    # x1 comes back with a fresh ledger: counted from zero again, nothing subtracted.
    groups.update({"m1": ledger(3, 1), "x1": ledger(0, 2)}, group_of)
    assert groups.groups[OTHER].blocks_received == 9
    # A ledger smaller than before between two samples (a reconnect in between) also restarts.
    groups.update({"m1": ledger(1, 0), "x1": ledger(0, 2)}, group_of)
    assert groups.groups[CLUSTER].blocks_sent == 4
