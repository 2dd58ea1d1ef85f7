"""Property tests: any bytes give a message or a typed error; encode → decode is the identity."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.bitswap import (
    BitswapConfig,
    BitswapError,
    Block,
    Entry,
    FrameDecoder,
    Message,
    MessageReader,
    Presence,
    PresenceType,
    ProtocolVersion,
    WantType,
    decode_message,
    encode_frames,
    encode_message,
)
from blockmesh.data.cid import CID, Codec, HashCode

SMALL = BitswapConfig(max_message_size=64 * 1024, max_block_size=16 * 1024,
                      max_entries_per_message=64, max_presences_per_message=64,
                      max_blocks_per_message=16)

datas = st.binary(max_size=300)


@st.composite
def cids(draw):
    data = draw(st.binary(max_size=16))
    version = draw(st.sampled_from([0, 1]))
    if version == 0:
        return CID.of(data, Codec.DAG_PB, 0)
    return CID.of(data, draw(st.sampled_from(list(Codec))),
                  1, draw(st.sampled_from([HashCode.SHA2_256, HashCode.BLAKE3])))


@st.composite
def blocks(draw):
    data = draw(datas)
    codec = draw(st.sampled_from(list(Codec)))
    version = 0 if codec == Codec.DAG_PB and draw(st.booleans()) else 1
    hash_code = HashCode.SHA2_256 if version == 0 else draw(
        st.sampled_from([HashCode.SHA2_256, HashCode.BLAKE3]))
    return Block(CID.of(data, codec, version, hash_code), data)


entries = st.builds(Entry, cids(), st.integers(-(1 << 31), (1 << 31) - 1), st.booleans(),
                    st.sampled_from(list(WantType)), st.booleans())
presences = st.builds(Presence, cids(), st.sampled_from(list(PresenceType)))
messages = st.builds(
    Message,
    st.lists(entries, max_size=8).map(tuple),
    st.booleans(),
    st.lists(blocks(), max_size=4).map(tuple),
    st.lists(presences, max_size=8).map(tuple),
    st.integers(0, (1 << 31) - 1),
)


@given(st.binary(max_size=2000))
def test_random_bytes_never_raise_untyped(data):
    with contextlib.suppress(BitswapError):
        decode_message(data, SMALL)


@given(messages, st.binary(max_size=40), st.integers(0, 400))
def test_mutated_messages_never_raise_untyped(msg, junk, cut):
    body = bytearray(encode_message(msg))
    if body:
        body[cut % len(body)] ^= 0xFF
    for candidate in (bytes(body), bytes(body[:cut]), bytes(body) + junk):
        with contextlib.suppress(BitswapError):
            decode_message(candidate, SMALL)


@given(st.lists(st.binary(max_size=64), max_size=20))
def test_frame_decoder_never_raises_untyped(pieces):
    dec = FrameDecoder(max_frame_size=100)
    for piece in pieces:
        try:
            for body in dec.feed(piece):
                assert len(body) <= 100
        except BitswapError:
            return


@given(messages)
def test_roundtrip_1_2_0(msg):
    assert decode_message(encode_message(msg)) == msg


@given(messages, st.sampled_from(list(ProtocolVersion)), st.integers(1, 50))
def test_framed_roundtrip_in_any_pieces(msg, version, step):
    frames = encode_frames(msg, version, 600)
    stream = b"".join(frames)
    reader = MessageReader()
    out = []
    for i in range(0, len(stream), step):
        out += reader.feed(stream[i : i + step])
    got_blocks = sum((m.blocks for m in out), ())
    if version is ProtocolVersion.V1_0_0:  # 1.0.0 names every block as CIDv0 dag-pb
        assert [b.data for b in got_blocks] == [b.data for b in msg.blocks]
    else:
        assert got_blocks == msg.blocks
    got_entries = sum((m.entries for m in out), ())
    if version.supports_have:
        assert got_entries == msg.entries
        assert sum((m.presences for m in out), ()) == msg.presences
    else:
        kept = [e for e in msg.entries if e.cancel or e.want_type is WantType.BLOCK]
        assert [e.cid for e in got_entries] == [e.cid for e in kept]
    if out:
        assert out[0].full == msg.full and not any(m.full for m in out[1:])
