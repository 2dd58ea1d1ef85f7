"""Decoding identify replies: go-libp2p's split replies merge, garbage is a typed error."""

from __future__ import annotations

import contextlib

import multiaddr
import pytest
from hypothesis import given
from hypothesis import strategies as st
from libp2p.identity.identify.pb.identify_pb2 import Identify

from blockmesh.data import varint
from blockmesh.data.net import ProtocolViolation, decode_identify

PEER = "QmSk2QBNbTiNa8Zzd68euN4DhMXfkMyoNRzhfXUMW7Gctq"


def _piece(message: Identify) -> bytes:
    body = message.SerializeToString()
    return varint.encode(len(body)) + body


def _kubo_like() -> Identify:
    return Identify(
        protocol_version="ipfs/0.1.0",
        agent_version="kubo/0.22.0/",
        listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/4001").to_bytes()],
        observed_addr=multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/5555").to_bytes(),
        protocols=["/ipfs/bitswap/1.2.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"],
    )


def test_single_piece_reply():
    info = decode_identify(PEER, _piece(_kubo_like()))
    assert info.peer_id == PEER
    assert info.protocols == ("/ipfs/bitswap/1.2.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0")
    assert info.agent_version == "kubo/0.22.0/"
    assert info.listen_addrs == ("/ip4/127.0.0.1/tcp/4001",)
    assert info.observed_addr == "/ip4/127.0.0.1/tcp/5555"


def test_split_reply_merges_like_go_libp2p_sends_it():
    first = _kubo_like()
    second = Identify(signedPeerRecord=b"record", protocols=["/x/"])
    info = decode_identify(PEER, _piece(first) + _piece(second))
    assert info.protocols[-1] == "/x/"
    assert info.agent_version == "kubo/0.22.0/"


def test_unknown_address_is_skipped_not_fatal():
    message = _kubo_like()
    message.listen_addrs.append(b"\xff\xff\xff\x0f garbage")
    assert decode_identify(PEER, _piece(message)).listen_addrs == ("/ip4/127.0.0.1/tcp/4001",)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x05abc",  # truncated piece
        b"\xff" * 12,  # overlong varint
        b"\x02\xff\xff",  # not a protobuf
        b"\x00" * 11,  # too many (empty) pieces
        _piece(Identify(protocols=["/p"] * 1025)),
        _piece(Identify(protocols=["/" + "p" * 1024])),
    ],
)
def test_malformed_replies_are_protocol_violations(data):
    with pytest.raises(ProtocolViolation):
        decode_identify(PEER, data)


@given(st.binary(max_size=300))
def test_decoder_raises_only_protocol_violation(data):
    with contextlib.suppress(ProtocolViolation):
        decode_identify(PEER, data)
