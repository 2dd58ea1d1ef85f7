"""The DHT protobuf: go's field numbers, round trips, caps, and only typed errors on garbage."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockmesh.data import varint
from blockmesh.data.routing.kad.messages import (
    MAX_ADDRS,
    MAX_MESSAGE_SIZE,
    MAX_PEERS,
    Connectedness,
    FrameReader,
    KadDecodeError,
    KadMessageTooLarge,
    Message,
    MessageType,
    PeerInfo,
    Record,
    decode_message,
    encode_message,
    frame,
)
from blockmesh.errors import BlockmeshError


def test_field_numbers_match_go_dht_proto():
    # type=1 varint, key=2, closerPeers=8 {id=1, addrs=2, connection=3}, providerPeers=9
    msg = Message(MessageType.GET_PROVIDERS, key=b"k",
                  closer_peers=(PeerInfo(b"p", (b"\x04\x7f\0\0\x01",), Connectedness.CONNECTED),),
                  provider_peers=(PeerInfo(b"q"),))
    assert encode_message(msg) == bytes.fromhex(
        "0803" "12016b" "420c" "0a0170" "1205047f000001" "1801" "4a03" "0a0171")
    record = Message(MessageType.PUT_VALUE, key=b"k", record=Record(b"k", b"v", "t"))
    # PUT_VALUE is 0; Record{key=1, value=2, timeReceived=5}
    assert encode_message(record) == bytes.fromhex("0800" "12016b" "1a09" "0a016b" "120176"
                                                    "2a0174")


def test_round_trip():
    msg = Message(MessageType.FIND_NODE, key=b"\x12\x20" + bytes(32),
                  closer_peers=tuple(PeerInfo(bytes([i]) * 34, (b"\x04\x7f\0\0\x01\x06\x0f\xa1",))
                                     for i in range(20)),
                  cluster_level=3)
    assert decode_message(encode_message(msg)) == msg


def test_go_omits_zero_type_and_unknown_fields_are_skipped():
    # A PUT_VALUE from go has no type field at all; field 15 (unknown) is skipped.
    assert decode_message(bytes.fromhex("12016b" "7801")).type is MessageType.PUT_VALUE


@pytest.mark.parametrize("body, error", [
    (bytes.fromhex("0809"), "unknown DHT message type"),
    (bytes.fromhex("0a00"), "wire type"),  # type as a LEN field
    (bytes.fromhex("4200"), "without an id"),  # closer peer with no id
    (bytes.fromhex("12ff"), "malformed"),  # truncated length
])
def test_bad_messages_are_typed_errors(body, error):
    with pytest.raises(KadDecodeError, match=error):
        decode_message(body)


def test_counts_are_capped():
    peer = b"\x42\x03\x0a\x01\x70"
    with pytest.raises(KadMessageTooLarge):
        decode_message(b"\x08\x04" + peer * (MAX_PEERS + 1))
    addr = b"\x12\x01\x00"
    many = b"\x0a\x01\x70" + addr * (MAX_ADDRS + 1)
    with pytest.raises(KadMessageTooLarge):
        decode_message(b"\x08\x04\x42" + varint.encode(len(many)) + many)
    with pytest.raises(KadMessageTooLarge):
        encode_message(Message(MessageType.FIND_NODE,
                               closer_peers=(PeerInfo(b"p"),) * (MAX_PEERS + 1)))


def test_frame_reader_splits_and_refuses_oversized_prefix_early():
    frames = frame(Message(MessageType.PING)) + frame(Message(MessageType.FIND_NODE, key=b"x"))
    reader = FrameReader()
    bodies = [b for i in range(len(frames)) for b in reader.feed(frames[i:i + 1])]
    assert [decode_message(b).type for b in bodies] == [MessageType.PING, MessageType.FIND_NODE]
    assert reader.idle
    reader = FrameReader()
    with pytest.raises(KadMessageTooLarge):
        reader.feed(b"\x80\x80\x80\x80")  # refused before the prefix ends
    with pytest.raises(KadMessageTooLarge):
        reader.feed(b"")  # and the reader stays dead


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_decode_only_raises_blockmesh_errors(data):
    with contextlib.suppress(BlockmeshError):
        decode_message(data)
    with contextlib.suppress(BlockmeshError):
        FrameReader(max_size=256).feed(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=1, max_size=40),
                          st.lists(st.binary(max_size=30), max_size=4)), max_size=8),
       st.binary(max_size=80))
def test_fuzz_round_trip(peers, key):
    msg = Message(MessageType.GET_PROVIDERS, key=key,
                  provider_peers=tuple(PeerInfo(p, tuple(a)) for p, a in peers))
    assert decode_message(encode_message(msg)) == msg


def test_a_complete_prefix_one_over_the_cap_is_refused():
    with pytest.raises(KadMessageTooLarge):
        FrameReader().feed(varint.encode(MAX_MESSAGE_SIZE + 1))
