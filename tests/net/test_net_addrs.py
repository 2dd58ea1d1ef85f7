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


@pytest.mark.parametrize("text, peer", [
    # The libp2p peer-id spec's own example of the CIDv1 text form.
    ("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",
     "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"),
    # The base36 form kubo prints for IPNS names (`--ipns-base base36`) of an Ed25519 key.
    ("k51qzi5uqu5dl6oarf87ywlh6tqrnoyitxn6ttcmvwujqjssgx2dmnehqeen0l", ED25519_PEER),
])
def test_cid_peer_ids_read_as_base58(text, peer):
    assert parse_peer_id(text) == peer


@pytest.mark.parametrize("text", [
    "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",  # a raw-codec CID
    "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # dag-pb
    "kzzzzzzzz",
])
def test_cids_of_other_codecs_are_not_peer_ids(text):
    with pytest.raises(InvalidMultiaddr):
        parse_peer_id(text)


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
