"""The DHT value store engine: validated puts, newer-wins, age and validity expiry, bounds."""

from __future__ import annotations

import time

import pytest
from libp2p.peer.id import ID

from blockmesh.data.net.identity import Identity
from blockmesh.data.routing import ipns
from blockmesh.data.routing.errors import RecordError
from blockmesh.data.routing.valuestore import ValueStore

WALL = time.time()
NS = 10**9


def _name(identity: Identity) -> bytes:
    return ipns.routing_key(ID.from_base58(identity.peer_id).to_bytes())


def _record(identity: Identity, seq: int, life: float = 3600.0) -> bytes:
    return ipns.create(identity, b"/ipfs/bafkqaddwgevxmmraojswg33smq", sequence=seq,
                       eol_ns=int((WALL + life) * NS))


def test_newer_replaces_older_and_older_is_refused() -> None:
    me = Identity.generate()
    store = ValueStore()
    store.put(_name(me), _record(me, 1), now=0.0, wall=WALL)
    store.put(_name(me), _record(me, 2), now=1.0, wall=WALL)
    assert store.get(_name(me), now=1.0, wall=WALL) == _record(me, 2)
    with pytest.raises(RecordError, match="newer"):
        store.put(_name(me), _record(me, 1), now=2.0, wall=WALL)
    store.put(_name(me), _record(me, 2), now=3.0, wall=WALL)  # the same again: a refresh


def test_values_expire_by_age_and_by_validity() -> None:
    me, other = Identity.generate(), Identity.generate()
    store = ValueStore(max_age=100.0)
    store.put(_name(me), _record(me, 1), now=0.0, wall=WALL)
    assert store.get(_name(me), now=100.0, wall=WALL) is not None
    assert store.get(_name(me), now=100.1, wall=WALL) is None and len(store) == 0
    store.put(_name(other), _record(other, 1, life=10.0), now=0.0, wall=WALL)
    assert store.get(_name(other), now=1.0, wall=WALL + 11.0) is None and len(store) == 0


def test_invalid_values_and_a_full_store_are_refused() -> None:
    me, other = Identity.generate(), Identity.generate()
    store = ValueStore(max_records=1, max_age=10.0)
    with pytest.raises(RecordError):
        store.put(_name(other), _record(me, 1), now=0.0, wall=WALL)  # signed by the wrong key
    store.put(_name(me), _record(me, 1), now=0.0, wall=WALL)
    with pytest.raises(RecordError, match="full"):
        store.put(_name(other), _record(other, 1), now=5.0, wall=WALL)
    store.put(_name(other), _record(other, 1), now=11.0, wall=WALL)  # the old one aged out
    assert len(store) == 1
