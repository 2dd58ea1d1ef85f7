"""Multiaddr and peer-id parsing at the adapter's edge, and NetConfig validation."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.net import InvalidMultiaddr, NetConfig, parse_peer_addr, parse_peer_id

ED25519_PEER = "12D3KooWPKqXorhsvBdR7isoegC88z5edMEivxymZdaPttVLzcZ2"
RSA_PEER = "QmSk2QBNbTiNa8Zzd68euN4DhMXfkMyoNRzhfXUMW7Gctq"


def test_full_multiaddr_splits_into_transport_and_peer():
    addr = parse_peer_addr(f"/ip4/127.0.0.1/tcp/4001/p2p/{ED25519_PEER}")
    assert addr.peer_id == ED25519_PEER
    assert addr.transport == "/ip4/127.0.0.1/tcp/4001"
    assert str(addr) == f"/ip4/127.0.0.1/tcp/4001/p2p/{ED25519_PEER}"


@pytest.mark.parametrize("peer", [ED25519_PEER, RSA_PEER])
def test_both_peer_id_kinds_are_accepted(peer):
    assert parse_peer_id(peer) == peer


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "/ip4/127.0.0.1/tcp/4001",  # no peer id: a dial would not know whom it reaches
        f"/p2p/{ED25519_PEER}",  # nothing to dial
        "/ip4/127.0.0.1/tcp/4001/p2p/xyz",
        "/ip4/300.0.0.1/tcp/4001/p2p/" + ED25519_PEER,
        "/ip4/127.0.0.1/tcp/4001/p2p/" + "1" * 2000,
    ],
)
def test_bad_multiaddrs_are_typed_errors(text):
    with pytest.raises(InvalidMultiaddr):
        parse_peer_addr(text)


@pytest.mark.parametrize("peer", ["1111", RSA_PEER[:-1], "0OIl", "", "Qm" + "1" * 200])
def test_strings_that_name_no_key_are_not_peer_ids(peer):
    with pytest.raises(InvalidMultiaddr):
        parse_peer_id(peer)


@given(st.text(max_size=200))
def test_parse_peer_addr_raises_only_invalid_multiaddr(text):
    with contextlib.suppress(InvalidMultiaddr):
        parse_peer_addr(text)


@given(st.binary(max_size=60).map(lambda b: "/ip4/127.0.0.1/tcp/1/p2p/" + b.hex()))
def test_hex_junk_peer_ids_raise_only_invalid_multiaddr(text):
    with contextlib.suppress(InvalidMultiaddr):
        parse_peer_addr(text)


@pytest.mark.parametrize(
    "change",
    [
        {"listen_addrs": ()},
        {"dial_timeout": 0},
        {"ping_timeout": -1},
        {"max_read_size": 0},
        {"max_inbound_streams_per_peer": 0},
        {"event_buffer": 0},
    ],
)
def test_config_rejects_unbounded_or_empty_values(change):
    with pytest.raises(ValueError):
        NetConfig(**change)
