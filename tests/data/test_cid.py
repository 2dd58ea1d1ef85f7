"""CIDs and varints: vectors, text and binary round trips, garbage refused with typed errors."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data import varint
from blockmesh.data.cid import CID, Codec, HashCode, Multihash, digest
from blockmesh.errors import DecodeError, HashMismatch, InvalidCID, UnsupportedError

HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def test_v0_round_trip_and_v1_upgrade():
    cid = CID.parse(HELLO_V0)
    assert cid.version == 0 and cid.codec == Codec.DAG_PB and str(cid) == HELLO_V0
    v1 = cid.to_v1()
    assert str(v1) == "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby"
    assert CID.parse(str(v1)) == v1
    assert CID.parse(v1.encode("base58btc")) == v1
    assert CID.decode(bytes(v1)) == v1


def test_raw_cid_of_bytes_matches_kubo():
    assert str(CID.of(b"hello world\n")) == (
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")


def test_identity_and_blake3_decode_and_verify():
    ident = CID(1, Codec.RAW, digest(b"abc", HashCode.IDENTITY))
    assert CID.parse(str(ident)) == ident and ident.hash_code == HashCode.IDENTITY
    ident.verify(b"abc")
    b3 = CID.of(b"data", Codec.RAW, 1, HashCode.BLAKE3)
    assert CID.parse(str(b3)).hash_code == HashCode.BLAKE3
    b3.verify(b"data")
    with pytest.raises(HashMismatch):
        b3.verify(b"other")


@pytest.mark.parametrize("text", ["", "xyz", "Qm123", "bafy", "zzzz", "Qm" + "1" * 44,
                                  "b" + "a" * 10, "f0171"])
def test_invalid_cid_strings(text):
    with pytest.raises(InvalidCID):
        CID.parse(text)


def test_unsupported_hash_and_v0_rules():
    with pytest.raises(UnsupportedError):
        CID.of(b"x", Codec.RAW, 0)
    with pytest.raises(UnsupportedError):
        digest(b"x", 0x13)


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trip(value):
    assert varint.decode(varint.encode(value)) == (value, len(varint.encode(value)))


def test_varint_rejects_non_minimal_and_overlong():
    with pytest.raises(varint.VarintError):
        varint.decode(b"\x80\x00")
    with pytest.raises(varint.VarintError):
        varint.decode(b"\xff" * 10)
    with pytest.raises(varint.VarintError):
        varint.decode(b"\x80")


@given(st.binary(max_size=80))
def test_binary_cid_decoder_never_crashes(raw):
    try:
        cid = CID.decode(raw)
    except DecodeError:
        return
    assert bytes(cid) == raw


@given(st.binary(max_size=60))
def test_multihash_decoder_never_crashes(raw):
    try:
        mh = Multihash.decode(raw)
    except DecodeError:
        return
    assert mh.encode() == raw


@given(st.text(max_size=70))
def test_text_cid_parser_never_crashes(text):
    with contextlib.suppress(DecodeError):
        CID.parse(text)
