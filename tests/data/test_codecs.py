"""dag-pb, UnixFS and dag-cbor codecs: canonical round trips, strict decoding, fuzzing."""

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagcbor, dagjson, dagpb, unixfs
from blockmesh.data.dag.dagpb import Link, Node
from blockmesh.data.dag.unixfs import DataType, UnixFSData
from blockmesh.errors import DecodeError

A = CID.of(b"a", Codec.RAW)
B = CID.parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")


def test_dagpb_round_trip_sorts_links_and_puts_links_first():
    node = Node((Link(A, "b", 1), Link(B, "a", 12)), b"\x08\x01")
    raw = dagpb.encode(node)
    assert raw[0] == 0x12  # links (field 2) come before data (field 1)
    back = dagpb.decode(raw)
    assert [link.name for link in back.links] == ["a", "b"]
    assert dagpb.encode(back) == raw


def test_dagpb_rejects_data_before_links_and_unknown_fields():
    link = dagpb.encode_link(Link(A, "x", 1))
    with pytest.raises(DecodeError):
        dagpb.decode(b"\x0a\x00" + link)
    with pytest.raises(DecodeError):
        dagpb.decode(b"\x18\x01")
    with pytest.raises(DecodeError):
        dagpb.decode(b"\x12\x02\x12\x00")  # link without Hash


def test_unixfs_round_trip():
    value = UnixFSData(DataType.FILE, None, 300, (100, 200))
    assert unixfs.decode(unixfs.encode(value)) == value
    with pytest.raises(DecodeError):
        unixfs.decode(b"\x08\x09")  # unknown type
    with pytest.raises(DecodeError):
        unixfs.decode(b"\x18\x01")  # no type


@given(st.binary(max_size=200))
def test_dagpb_decoder_fuzz(raw):
    try:
        node = dagpb.decode(raw)
    except DecodeError:
        return
    assert isinstance(node, Node)


@given(st.binary(max_size=200))
def test_unixfs_decoder_fuzz(raw):
    with contextlib.suppress(DecodeError):
        unixfs.decode(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=10)
    | st.binary(max_size=10) | st.just(A),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_dagcbor_round_trip(value):
    raw = dagcbor.encode(value)
    assert dagcbor.decode(raw) == value


def test_dagcbor_rejects_non_canonical_and_foreign_tags():
    with pytest.raises(DecodeError):
        dagcbor.decode(bytes.fromhex("a2616202616101"))  # keys out of order
    with pytest.raises(DecodeError):
        dagcbor.decode(bytes.fromhex("1801"))  # 1 encoded in two bytes
    with pytest.raises(DecodeError):
        dagcbor.decode(bytes.fromhex("c100"))  # tag 1
    with pytest.raises(DecodeError):
        dagcbor.decode(bytes.fromhex("9f01ff"))  # indefinite length


@given(st.binary(max_size=100))
def test_dagcbor_decoder_fuzz(raw):
    with contextlib.suppress(DecodeError):
        dagcbor.decode(raw)


def test_dagcbor_links_and_json_form():
    value = {"child": A, "list": [B], "bytes": b"\x01"}
    assert dagcbor.links(value) == [A, B]
    as_json = dagjson.to_json(value)
    assert as_json["child"] == {"/": str(A)}
    assert dagjson.decode(json.dumps(as_json)) == value
