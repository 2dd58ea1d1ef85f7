"""Bitswap message codec and framing: round trips, interop with Google's protobuf runtime,
and the typed rejections a hostile peer must get."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from blockmesh.data import varint
from blockmesh.data.bitswap import (
    BadCID,
    BadPrefix,
    BitswapConfig,
    BitswapError,
    Block,
    BlockTooLarge,
    Entry,
    FrameDecoder,
    FrameTooLarge,
    MalformedMessage,
    Message,
    MessageReader,
    MessageTooLarge,
    Presence,
    PresenceType,
    ProtocolVersion,
    TooManyItems,
    UnsupportedPrefix,
    WantType,
    cid_from_prefix,
    decode_message,
    encode_frames,
    encode_message,
    frame,
    prefix_of,
    split_message,
)
from blockmesh.data.cid import CID, Codec, HashCode
from blockmesh.errors import DecodeError, UnsupportedError

V10, V11, V12 = ProtocolVersion.V1_0_0, ProtocolVersion.V1_1_0, ProtocolVersion.V1_2_0


def _pb_class():
    """boxo's message.proto rebuilt as a runtime descriptor: an independent encoder/decoder."""
    T = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="bitswap_test.proto", package="bt",
                                           syntax="proto3")
    msg = f.message_type.add(name="Message")
    wl = msg.nested_type.add(name="Wantlist")
    wl.enum_type.add(name="WantType").value.add(name="Block", number=0)
    wl.enum_type[0].value.add(name="Have", number=1)
    entry = wl.nested_type.add(name="Entry")
    for name, num, typ, extra in [("block", 1, T.TYPE_BYTES, {}), ("priority", 2, T.TYPE_INT32, {}),
                                  ("cancel", 3, T.TYPE_BOOL, {}),
                                  ("wantType", 4, T.TYPE_ENUM,
                                   {"type_name": ".bt.Message.Wantlist.WantType"}),
                                  ("sendDontHave", 5, T.TYPE_BOOL, {})]:
        entry.field.add(name=name, number=num, type=typ, label=T.LABEL_OPTIONAL, **extra)
    wl.field.add(name="entries", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                 type_name=".bt.Message.Wantlist.Entry")
    wl.field.add(name="full", number=2, type=T.TYPE_BOOL, label=T.LABEL_OPTIONAL)
    blk = msg.nested_type.add(name="Block")
    blk.field.add(name="prefix", number=1, type=T.TYPE_BYTES, label=T.LABEL_OPTIONAL)
    blk.field.add(name="data", number=2, type=T.TYPE_BYTES, label=T.LABEL_OPTIONAL)
    msg.enum_type.add(name="BlockPresenceType").value.add(name="Have", number=0)
    msg.enum_type[0].value.add(name="DontHave", number=1)
    bp = msg.nested_type.add(name="BlockPresence")
    bp.field.add(name="cid", number=1, type=T.TYPE_BYTES, label=T.LABEL_OPTIONAL)
    bp.field.add(name="type", number=2, type=T.TYPE_ENUM, label=T.LABEL_OPTIONAL,
                 type_name=".bt.Message.BlockPresenceType")
    msg.field.add(name="wantlist", number=1, type=T.TYPE_MESSAGE, label=T.LABEL_OPTIONAL,
                  type_name=".bt.Message.Wantlist")
    msg.field.add(name="blocks", number=2, type=T.TYPE_BYTES, label=T.LABEL_REPEATED)
    msg.field.add(name="payload", number=3, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                  type_name=".bt.Message.Block")
    msg.field.add(name="blockPresences", number=4, type=T.TYPE_MESSAGE, label=T.LABEL_REPEATED,
                  type_name=".bt.Message.BlockPresence")
    msg.field.add(name="pendingBytes", number=5, type=T.TYPE_INT32, label=T.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bt.Message"))


PB = _pb_class()


def _cids():
    raw = CID.of(b"hello")
    v0 = CID.of(b"node", Codec.DAG_PB, 0)
    cbor = CID.of(b"\xa0", Codec.DAG_CBOR, 1, HashCode.BLAKE3)
    return raw, v0, cbor


def _sample() -> Message:
    raw, v0, cbor = _cids()
    return Message(
        entries=(Entry(raw, 7, False, WantType.HAVE, True), Entry(v0, -5, True),
                 Entry(cbor, (1 << 31) - 1, False, WantType.BLOCK, True)),
        full=True,
        blocks=(Block(raw, b"hello"), Block(v0, b"node"), Block(cbor, b"\xa0")),
        presences=(Presence(raw, PresenceType.HAVE), Presence(cbor, PresenceType.DONT_HAVE)),
        pending_bytes=12345,
    )


def test_roundtrip_1_2_0_keeps_everything():
    msg = _sample()
    assert decode_message(encode_message(msg, V12)) == msg


def test_1_1_0_drops_have_entries_presences_and_pending():
    msg = _sample()
    out = decode_message(encode_message(msg, V11))
    _, v0, cbor = _cids()
    assert out.entries == (Entry(v0, -5, True), Entry(cbor, (1 << 31) - 1))  # sendDontHave gone
    assert out.blocks == msg.blocks
    assert out.presences == () and out.pending_bytes == 0 and out.full


def test_1_0_0_sends_raw_blocks_read_back_as_cidv0():
    msg = Message(blocks=(Block(CID.of(b"node", Codec.DAG_PB, 0), b"node"),))
    body = encode_message(msg, V10)
    pb = PB.FromString(body)
    assert list(pb.blocks) == [b"node"] and len(pb.payload) == 0
    assert decode_message(body) == msg


def test_google_protobuf_reads_what_we_write():
    msg = _sample()
    pb = PB.FromString(encode_message(msg, V12))
    assert pb.wantlist.full
    assert [bytes(e.block) for e in pb.wantlist.entries] == [bytes(e.cid) for e in msg.entries]
    assert [e.priority for e in pb.wantlist.entries] == [7, -5, (1 << 31) - 1]
    assert [e.wantType for e in pb.wantlist.entries] == [1, 0, 0]
    assert [e.cancel for e in pb.wantlist.entries] == [False, True, False]
    assert [p.type for p in pb.blockPresences] == [0, 1]
    assert [bytes(b.data) for b in pb.payload] == [b"hello", b"node", b"\xa0"]
    assert bytes(pb.payload[1].prefix) == bytes([0, 0x70, 0x12, 0x20])
    assert pb.pendingBytes == 12345


def test_we_read_what_google_protobuf_writes():
    raw, v0, cbor = _cids()
    pb = PB()
    e = pb.wantlist.entries.add(block=bytes(v0), priority=-1, wantType=1, sendDontHave=True)
    assert e.priority == -1
    pb.wantlist.full = True
    pb.payload.add(prefix=prefix_of(raw), data=b"hello")
    pb.blocks.append(b"node")
    pb.blockPresences.add(cid=bytes(cbor), type=1)
    pb.pendingBytes = 9
    out = decode_message(pb.SerializeToString())
    assert out.entries == (Entry(v0, -1, False, WantType.HAVE, True),)
    assert out.full
    assert set(out.blocks) == {Block(raw, b"hello"), Block(v0, b"node")}
    assert out.presences == (Presence(cbor, PresenceType.DONT_HAVE),)
    assert out.pending_bytes == 9


def test_unknown_fields_are_skipped():
    body = encode_message(_sample(), V12)
    extra = (varint.encode((9 << 3) | 0) + b"\x05" + varint.encode((10 << 3) | 5) + b"abcd"
             + varint.encode((11 << 3) | 1) + b"12345678" + varint.encode((12 << 3) | 2) + b"\x01z")
    assert decode_message(body + extra) == _sample()


def test_prefix_roundtrip_and_rebuild():
    for cid in _cids():
        data = {0x70: b"node", 0x55: b"hello", 0x71: b"\xa0"}[cid.codec]
        assert cid_from_prefix(prefix_of(cid), data) == cid


@pytest.mark.parametrize(("prefix", "error"), [
    (bytes([1, 0x55, 0x13, 64]), UnsupportedPrefix),  # sha2-512: not rebuildable here
    (bytes([1, 0x55, 0x00, 5]), UnsupportedPrefix),  # identity has nothing to hash
    (bytes([1, 0x55, 0x12, 20]), UnsupportedPrefix),  # truncated sha2-256
    (bytes([1, 0x7F, 0x12, 32]), UnsupportedPrefix),  # unknown codec
    (bytes([2, 0x55, 0x12, 32]), UnsupportedPrefix),  # CID version 2
    (bytes([0, 0x55, 0x12, 32]), BadPrefix),  # CIDv0 must be dag-pb
    (bytes([1, 0x55, 0x12]), BadPrefix),  # truncated
    (bytes([1, 0x55, 0x12, 32, 0]), BadPrefix),  # trailing byte
    (bytes([1, 0xD5, 0x00, 0x12, 32]), BadPrefix),  # non-minimal varint
])
def test_bad_prefixes_are_typed(prefix, error):
    with pytest.raises(error):
        cid_from_prefix(prefix, b"x")
    body = encode_message(Message()) + bytes([0x1A, len(prefix) + 5, 0x0A, len(prefix)]) + prefix \
        + b"\x12\x01x"
    with pytest.raises(error):
        decode_message(body)


def test_unsupported_prefix_is_also_an_unsupported_error():
    with pytest.raises(UnsupportedError):
        cid_from_prefix(bytes([1, 0x7F, 0x12, 32]), b"x")


def test_message_limit_checked_before_parsing():
    cfg = BitswapConfig(max_message_size=1000, max_block_size=500)
    with pytest.raises(MessageTooLarge):
        decode_message(b"\xff" * 1001, cfg)  # garbage, but too big is what is reported


def test_block_limits():
    cfg = BitswapConfig(max_message_size=10_000, max_block_size=100)
    big = b"x" * 101
    for version in (V10, V12):
        with pytest.raises(BlockTooLarge):
            decode_message(encode_message(Message(blocks=(Block(CID.of(big), big),)), version), cfg)


def test_count_limits():
    cfg = BitswapConfig(max_entries_per_message=3, max_presences_per_message=2,
                        max_blocks_per_message=1)
    cids = [CID.of(bytes([i])) for i in range(4)]
    with pytest.raises(TooManyItems):
        decode_message(encode_message(Message(entries=tuple(Entry(c) for c in cids))), cfg)
    with pytest.raises(TooManyItems):
        decode_message(encode_message(Message(
            presences=tuple(Presence(c, PresenceType.HAVE) for c in cids[:3]))), cfg)
    with pytest.raises(TooManyItems):
        decode_message(encode_message(Message(
            blocks=tuple(Block(c, bytes([i])) for i, c in enumerate(cids[:2])))), cfg)


@pytest.mark.parametrize(("body", "error"), [
    (b"\x0a\x05\x0a\x03\x0a\x01\x00", BadCID),  # entry with a 1-byte CID
    (b"\x0a\x02\x0a\x00", MalformedMessage),  # entry without a CID
    (b"\x22\x00", MalformedMessage),  # presence without a CID
    (b"\x28\x80", MalformedMessage),  # truncated varint
    (b"\x0a\x05\x00", MalformedMessage),  # field runs past the end
    (b"\x08\x01", MalformedMessage),  # wantlist with varint wire type
    (b"\x0b", MalformedMessage),  # group wire type
    (b"\x00\x00", MalformedMessage),  # field number 0
    (b"\x28" + b"\xff" * 10 + b"\x01", MalformedMessage),  # varint too long
    (b"\x1a\x00", BadPrefix),  # payload block without prefix
])
def test_garbage_is_typed(body, error):
    with pytest.raises(error):
        decode_message(body)


def test_bad_enum_and_bool_values():
    cid = bytes(CID.of(b"a"))
    entry = b"\x0a" + bytes([len(cid)]) + cid + b"\x20\x02"  # wantType 2
    with pytest.raises(MalformedMessage):
        decode_message(b"\x0a" + bytes([len(entry) + 2, 0x0a, len(entry)]) + entry)
    entry = b"\x0a" + bytes([len(cid)]) + cid + b"\x18\x02"  # cancel = 2
    with pytest.raises(MalformedMessage):
        decode_message(b"\x0a" + bytes([len(entry) + 2, 0x0a, len(entry)]) + entry)


def test_frame_decoder_handles_arbitrary_pieces():
    bodies = [encode_message(_sample(), V12), b"", encode_message(Message(full=True), V12)]
    stream = b"".join(frame(b) for b in bodies)
    for step in (1, 2, 7, 1000):
        dec = FrameDecoder()
        out = []
        for i in range(0, len(stream), step):
            out += dec.feed(stream[i : i + step])
        assert out == bodies
        assert dec.buffered == 0


def test_oversize_length_prefix_rejected_before_the_body():
    dec = FrameDecoder(max_frame_size=1000)
    with pytest.raises(FrameTooLarge):
        dec.feed(varint.encode(1001))
    with pytest.raises(FrameTooLarge):  # the stream stays dead
        dec.feed(b"\x00")
    dec = FrameDecoder()  # 4 MiB: four continuation bytes already mean >= 2**28
    assert dec.feed(b"\x80\x80\x80") == []
    with pytest.raises(FrameTooLarge):
        dec.feed(b"\x80")


def test_message_reader_decodes_frames():
    reader = MessageReader()
    data = b"".join(encode_frames(_sample(), V12))
    assert reader.feed(data[:10]) == []
    assert reader.feed(data[10:]) == [_sample()]


def test_split_keeps_each_part_under_the_limit():
    cids = [CID.of(i.to_bytes(4, "big")) for i in range(300)]
    blocks = tuple(Block(CID.of(bytes([i]) * 3000), bytes([i]) * 3000) for i in range(40))
    msg = Message(entries=tuple(Entry(c, 1, False, WantType.HAVE, True) for c in cids), full=True,
                  blocks=blocks, presences=tuple(Presence(c, PresenceType.HAVE) for c in cids))
    limit = 16 * 1024
    frames = encode_frames(msg, V12, limit)
    assert len(frames) > 1
    parts = [decode_message(f[len(varint.encode(varint.decode(f)[0])):]) for f in frames]
    assert all(len(f) <= limit + 3 for f in frames)
    assert [p.full for p in parts] == [True] + [False] * (len(parts) - 1)
    assert sum((p.entries for p in parts), ()) == msg.entries
    assert sum((p.blocks for p in parts), ()) == msg.blocks
    assert sum((p.presences for p in parts), ()) == msg.presences


def test_split_of_empty_full_wantlist_is_one_message():
    assert split_message(Message(full=True), V12) == [Message(full=True)]
    assert split_message(Message(), V12) == []
    # a 1.0.0 peer cannot take want-haves: nothing is left to send
    only_have = Message(entries=(Entry(CID.of(b"a"), 1, False, WantType.HAVE),))
    assert split_message(only_have, V10) == []


def test_split_refuses_an_item_that_cannot_fit():
    big = b"x" * 2000
    with pytest.raises(MessageTooLarge):
        split_message(Message(blocks=(Block(CID.of(big), big),)), V12, 1000)


def test_all_errors_are_decode_errors():
    for cls in (BadCID, BadPrefix, BlockTooLarge, FrameTooLarge, MalformedMessage,
                MessageTooLarge, TooManyItems, UnsupportedPrefix):
        assert issubclass(cls, BitswapError) and issubclass(cls, DecodeError)


def test_protocol_ids():
    from blockmesh.data.bitswap import PROTOCOL_IDS

    assert PROTOCOL_IDS[0] == "/ipfs/bitswap/1.2.0"
    assert ProtocolVersion.from_protocol_id("/ipfs/bitswap") is V10
    assert ProtocolVersion.from_protocol_id("/ipfs/bitswap/1.1.0") is V11
    assert V12.supports_have and V11.uses_payload and not V10.uses_payload
    with pytest.raises(UnsupportedError):
        ProtocolVersion.from_protocol_id("/ipfs/bitswap/9.9.9")
