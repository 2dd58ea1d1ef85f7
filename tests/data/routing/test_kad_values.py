"""The DHT's value store, driven directly: validation by namespace, selection, age, caps."""

from __future__ import annotations

import pytest

from blockmesh.cli.routing import MAX_VALUE_SIZE as CLI_MAX_VALUE_SIZE
from blockmesh.data.net import Identity
from blockmesh.data.routing import ipns, pubkey, records
from blockmesh.data.routing.errors import RecordError
from blockmesh.data.routing.kad.dht import peer_bytes
from blockmesh.data.routing.kad.values import MAX_RECORD_AGE, ValueStore

NOW = 1_800_000_000.0
PEER = b"remote peer"


def _name(identity: Identity, sequence: int, lifetime_s: float = 3600.0) -> bytes:
    return ipns.create(identity, b"/ipfs/bafkqaaa", sequence=sequence,
                       eol_ns=int((NOW + lifetime_s) * 1e9))


def test_ipns_values_are_validated_and_only_a_better_one_replaces_the_held_one():
    me = Identity.generate()
    key = ipns.routing_key(peer_bytes(me.peer_id))
    store = ValueStore()
    store.put(key, _name(me, 2), now=0.0, unix_now=NOW, sender=PEER)
    with pytest.raises(RecordError, match="better"):
        store.put(key, _name(me, 1), now=1.0, unix_now=NOW, sender=PEER)
    store.put(key, _name(me, 3), now=2.0, unix_now=NOW, sender=PEER)
    assert ipns.parse(store.get(key, now=3.0, unix_now=NOW))[0].sequence == 3
    with pytest.raises(RecordError):  # signed by someone else
        store.put(key, _name(Identity.generate(), 9), now=4.0, unix_now=NOW, sender=PEER)
    with pytest.raises(RecordError):  # no validator for the namespace
        store.put(b"/v/anything", b"x", now=4.0, unix_now=NOW, sender=PEER)
    assert len(store) == 1


def test_public_keys_must_match_their_peer_id():
    me, other = Identity.generate(), Identity.generate()
    raw = pubkey.PublicKey(pubkey.ED25519, me.public_key).serialize()
    store = ValueStore()
    store.put(b"/pk/" + peer_bytes(me.peer_id), raw, now=0.0, unix_now=NOW, sender=PEER)
    with pytest.raises(RecordError, match="does not match"):
        store.put(b"/pk/" + peer_bytes(other.peer_id), raw, now=0.0, unix_now=NOW,
                  sender=PEER)


def test_values_age_out_expire_and_are_bounded():
    a, b = Identity.generate(), Identity.generate()
    key_a = ipns.routing_key(peer_bytes(a.peer_id))
    key_b = ipns.routing_key(peer_bytes(b.peer_id))
    store = ValueStore(max_records=1)
    store.put(key_a, _name(a, 1, lifetime_s=100.0), now=0.0, unix_now=NOW, sender=PEER)
    with pytest.raises(RecordError, match="full"):
        store.put(key_b, _name(b, 1), now=0.0, unix_now=NOW, sender=PEER)
    assert store.get(key_a, now=1.0, unix_now=NOW + 101) is None  # past its EOL: dropped
    store.put(key_b, _name(b, 1), now=0.0, unix_now=NOW, sender=PEER)
    assert store.get(key_b, now=MAX_RECORD_AGE - 1, unix_now=NOW) is not None
    assert store.gc(MAX_RECORD_AGE) == 1 and len(store) == 0


def _pk(identity: Identity) -> tuple[bytes, bytes]:
    raw = pubkey.PublicKey(pubkey.ED25519, identity.public_key).serialize()
    return b"/pk/" + peer_bytes(identity.peer_id), raw


def test_one_peer_holds_at_most_its_quota_and_our_own_values_sit_outside_every_cap():
    store = ValueStore(max_records=3, max_per_peer=2)
    keys = [_pk(Identity.generate()) for _ in range(5)]
    for key, raw in keys[:2]:
        store.put(key, raw, now=0.0, unix_now=NOW, sender=b"a")
    with pytest.raises(RecordError, match="quota"):
        store.put(*keys[2], now=0.0, unix_now=NOW, sender=b"a")
    assert store.refused_peer_quota == 1 and store.held_by(b"a") == 2
    store.put(*keys[0], now=1.0, unix_now=NOW, sender=b"a")  # a held key: renewed
    store.put(*keys[0], now=2.0, unix_now=NOW, sender=b"b")  # b republishes it: now b's
    assert store.held_by(b"a") == 1 and store.held_by(b"b") == 1
    store.put(*keys[2], now=2.0, unix_now=NOW, sender=b"c")
    with pytest.raises(RecordError, match="full"):
        store.put(*keys[3], now=2.0, unix_now=NOW, sender=b"d")
    assert store.refused_full == 1 and len(store) == 3
    for key, raw in keys[3:]:  # ours go in however full the store is
        store.put_own(key, raw, now=3.0, unix_now=NOW)
    assert store.own() == 2 and store.get(keys[4][0], now=4.0, unix_now=NOW) == keys[4][1]


def test_a_remote_peer_cannot_replace_our_own_value_with_an_older_one():
    me = Identity.generate()
    key = ipns.routing_key(peer_bytes(me.peer_id))
    store = ValueStore()
    store.put_own(key, _name(me, 5), now=0.0, unix_now=NOW)
    with pytest.raises(RecordError, match="better"):
        store.put(key, _name(me, 4), now=1.0, unix_now=NOW, sender=PEER)
    store.put(key, _name(me, 6), now=2.0, unix_now=NOW, sender=PEER)  # newer: served
    assert ipns.parse(store.get(key, now=3.0, unix_now=NOW))[0].sequence == 6
    assert store.gc(MAX_RECORD_AGE) == 1 and store.own() == 0  # ours ages out too
    assert store.gc(MAX_RECORD_AGE + 2.0) == 1 and len(store) == 0


def test_the_cli_value_cap_is_the_records_cap():
    assert CLI_MAX_VALUE_SIZE == records.MAX_VALUE_SIZE
