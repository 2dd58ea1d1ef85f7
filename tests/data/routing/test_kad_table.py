"""Routing table and provider store, driven directly with a clock passed in."""

from __future__ import annotations

import os

import pytest

from blockmesh.data.routing.kad.dht import server_modes
from blockmesh.data.routing.kad.providers import ProviderStore
from blockmesh.data.routing.kad.table import (
    LAN,
    LAN_PROTOCOL,
    REFRESH_INTERVAL,
    WAN,
    WAN_PROTOCOL,
    RoutingTable,
    common_prefix_len,
    is_private_addr,
    is_public_addr,
    key_of,
)
from blockmesh.errors import UnsupportedError


def _ids(n: int) -> list[bytes]:
    return [os.urandom(34) for _ in range(n)]


def test_nearest_is_by_xor_of_sha256_keys():
    me = os.urandom(34)
    table = RoutingTable(me)
    peers = _ids(200)
    for p in peers:
        table.add(p, 0.0)
    target = key_of(b"some key")
    expected = sorted((p for p in peers if p in table), key=lambda p: key_of(p) ^ target)[:20]
    assert table.nearest(target, 20) == expected
    assert not table.add(me, 0.0) and me not in table


def test_buckets_hold_k_and_a_full_bucket_keeps_its_members_unless_one_fails():
    me = os.urandom(34)
    table = RoutingTable(me, k=3)
    bucket0 = [p for p in _ids(64) if common_prefix_len(key_of(me), key_of(p)) == 0][:5]
    assert [table.add(p, 0.0) for p in bucket0] == [True, True, True, False, False]
    assert table.bucket_sizes() == {0: 3}
    table.mark_failed(bucket0[1])
    assert table.add(bucket0[3], 1.0)  # replaces the failing member
    assert bucket0[1] not in table and bucket0[3] in table
    table.mark_failed(bucket0[0])
    table.mark_alive(bucket0[0])  # an answer clears the strike
    assert not table.add(bucket0[4], 2.0)
    table.mark_failed(bucket0[2])
    table.mark_failed(bucket0[2])  # max_failures in a row: out
    assert bucket0[2] not in table and len(table) == 2


def test_refresh_schedule_follows_the_clock():
    me = os.urandom(34)
    table = RoutingTable(me)
    for p in _ids(50):
        table.add(p, 0.0)
    due = table.due_refreshes(0.0)
    assert due == list(range(table.max_cpl() + 2))
    for cpl in due:
        table.refreshed(cpl, 0.0)
    assert table.due_refreshes(REFRESH_INTERVAL - 1) == []
    assert table.due_refreshes(REFRESH_INTERVAL) == due
    for cpl in (0, 3, 7):
        assert common_prefix_len(table.self_key, key_of(table.random_key_in_bucket(cpl))) == cpl


def test_private_and_public_addresses_follow_go_multiaddr():
    for addr in ("/ip4/127.0.0.1/tcp/1", "/ip4/10.1.2.3/tcp/1", "/ip4/192.168.1.1/tcp/1",
                 "/ip4/100.64.0.1/tcp/1", "/ip6/::1/tcp/1", "/ip6/fe80::1/tcp/1",
                 "/ip6/::ffff:127.0.0.1/tcp/1", "/ip6/::ffff:10.0.0.1/tcp/1"):
        assert is_private_addr(addr) and not is_public_addr(addr), addr
    for addr in ("/ip4/8.8.8.8/tcp/1", "/ip6/2001:4860::8888/tcp/1"):
        assert is_public_addr(addr) and not is_private_addr(addr), addr
    for addr in ("/ip4/0.0.0.0/tcp/1", "/ip4/224.0.0.251/udp/5353", "/dns4/example.com/tcp/1"):
        assert not is_public_addr(addr) and not is_private_addr(addr), addr


def test_admission_needs_the_protocol_and_the_right_kind_of_address():
    loopback = ["/ip4/127.0.0.1/tcp/4001"]
    public = ["/ip4/8.8.8.8/tcp/4001"]
    assert LAN.admits([LAN_PROTOCOL, "/ipfs/bitswap/1.2.0"], loopback)
    assert not LAN.admits(["/ipfs/bitswap/1.2.0"], loopback)  # a client: not in any table
    assert not LAN.admits([LAN_PROTOCOL], public)
    assert WAN.admits([WAN_PROTOCOL], public + loopback)
    assert not WAN.admits([WAN_PROTOCOL], loopback)
    assert not WAN.admits([LAN_PROTOCOL], public)


def test_provider_records_expire_renew_and_are_bounded():
    store = ProviderStore(validity=100.0, max_per_key=2, max_records=3)
    assert store.add(b"k1", b"a", (), 0.0)
    assert store.add(b"k1", b"b", (), 10.0)
    assert [p for p, _ in store.get(b"k1", 50.0)] == [b"b", b"a"]
    assert store.add(b"k1", b"a", (), 60.0)  # renewed: now the newest
    assert store.add(b"k1", b"c", (), 61.0)  # per-key cap: the oldest (b) goes
    assert [p for p, _ in store.get(b"k1", 62.0)] == [b"c", b"a"]
    assert store.add(b"k2", b"a", (), 62.0) and len(store) == 3
    assert not store.add(b"k3", b"a", (), 63.0)  # total cap
    assert store.get(b"k1", 160.5) == [(b"c", ())]  # a expired at 160, c lives to 161
    assert store.gc(161.0) == 2 and len(store) == 1 and store.keys() == 1
    assert store.add(b"k3", b"a", (), 161.0)


def test_one_peer_holds_at_most_its_quota_and_our_own_records_sit_outside_every_cap():
    store = ProviderStore(validity=100.0, max_per_key=2, max_records=5, max_per_peer=2,
                          self_id=b"me")
    store.add_own(b"k1", 0.0)
    assert store.add(b"k1", b"a", (), 0.0) and store.add(b"k2", b"a", (), 0.0)
    assert not store.add(b"k3", b"a", (), 1.0)  # a's quota is spent
    assert store.refused_peer_quota == 1 and store.held_by(b"a") == 2
    assert store.add(b"k1", b"a", (), 2.0)  # a held record can still be renewed
    # The per-key cap evicts the oldest remote provider, never our own record.
    assert store.add(b"k1", b"b", (), 3.0) and store.add(b"k1", b"c", (), 4.0)
    assert store.get(b"k1", 5.0) == [(b"me", ()), (b"c", ()), (b"b", ())]
    assert store.held_by(b"a") == 1 and len(store) == 3
    assert store.add(b"k2", b"d", (), 5.0) and store.add(b"k3", b"d", (), 5.0)
    assert not store.add(b"k4", b"e", (), 6.0) and store.refused_full == 1  # 5 in all
    store.add_own(b"k4", 6.0)  # ours go in however full the store is
    store.add_own(b"k5", 6.0)
    assert store.own() == 3 and len(store) == 5 and store.keys() == 5
    assert store.get(b"k4", 7.0) == [(b"me", ())]
    assert store.gc(101.0) == 2  # a's k2 record and our first k1 record expired at 100
    assert store.held_by(b"a") == 0 and store.own() == 2
    assert store.get(b"k1", 101.0) == [(b"c", ()), (b"b", ())]


def test_modes_follow_kubos_routing_type_and_the_listen_addresses():
    assert server_modes("auto", ["/ip4/127.0.0.1/tcp/0"]) == (True, False)
    assert server_modes("auto", ["/ip4/0.0.0.0/tcp/4001"]) == (True, False)
    assert server_modes("auto", ["/ip4/8.8.8.8/tcp/4001"]) == (False, True)
    assert server_modes("auto", ["/ip4/10.0.0.2/tcp/1", "/ip6/2001:db9::1/tcp/1"]) == (True, True)
    assert server_modes("dhtserver", ["/ip4/127.0.0.1/tcp/0"]) == (True, True)
    assert server_modes("dhtclient", ["/ip4/8.8.8.8/tcp/4001"]) == (False, False)
    with pytest.raises(UnsupportedError):
        server_modes("fullrt", [])
