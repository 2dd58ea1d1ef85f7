"""The Bitswap message: what it holds, its protobuf encoding per protocol version, strict decoding.

Field numbers follow boxo's `bitswap/message/pb/message.proto` (the spec's wire format). Payload
blocks arrive as a CID prefix plus bytes: the decoder rebuilds each CID by hashing the bytes, so
a block that leaves the decoder always hashes to the CID it carries.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

from blockmesh.data import pbwire, varint
from blockmesh.data.bitswap import wire
from blockmesh.data.bitswap.config import DEFAULT_CONFIG, BitswapConfig
from blockmesh.data.bitswap.errors import (
    BadCID,
    BadPrefix,
    BlockTooLarge,
    MalformedMessage,
    MessageTooLarge,
    TooManyItems,
    UnsupportedPrefix,
)
from blockmesh.data.bitswap.protocol import ProtocolVersion
from blockmesh.data.cid import CID, Codec, HashCode, Multihash, digest
from blockmesh.errors import InvalidCID

# Message
_F_WANTLIST, _F_BLOCKS, _F_PAYLOAD, _F_PRESENCES, _F_PENDING = 1, 2, 3, 4, 5
# Message.Wantlist
_F_ENTRIES, _F_FULL = 1, 2
# Message.Wantlist.Entry
_F_E_BLOCK, _F_E_PRIORITY, _F_E_CANCEL, _F_E_TYPE, _F_E_DONT_HAVE = 1, 2, 3, 4, 5
# Message.Block
_F_B_PREFIX, _F_B_DATA = 1, 2
# Message.BlockPresence
_F_P_CID, _F_P_TYPE = 1, 2

# Hash functions whose full digest this node can recompute from block bytes.
_REBUILDABLE_HASHES: dict[int, int] = {HashCode.SHA2_256: 32, HashCode.BLAKE3: 32}
_KNOWN_CODECS = frozenset(int(c) for c in Codec)


class WantType(IntEnum):
    BLOCK = 0
    HAVE = 1


class PresenceType(IntEnum):
    HAVE = 0
    DONT_HAVE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One wantlist entry. Higher priority is served first."""

    cid: CID
    priority: int = 1
    cancel: bool = False
    want_type: WantType = WantType.BLOCK
    send_dont_have: bool = False


@dataclass(frozen=True, slots=True)
class Presence:
    cid: CID
    type: PresenceType


@dataclass(frozen=True, slots=True, eq=False)
class Block:
    cid: CID
    data: bytes

    def __eq__(self, other: object) -> bool:  # a HashedBlock equals a Block of the same bytes
        return isinstance(other, Block) and self.cid == other.cid and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.cid, self.data))


class _Token:
    """The private proof that a HashedBlock came from `hash_of`."""


_HASHED = _Token()


@dataclass(frozen=True, slots=True, eq=False)
class HashedBlock(Block):
    """A received block whose CID this process computed from its bytes, so it needs no second
    hash: a wanted CID with the same multihash is verified by the lookup itself. Only `hash_of`
    (the decoder's path) makes one; constructing it directly with other CIDs raises."""

    token: _Token | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.token is not _HASHED:
            raise TypeError("a HashedBlock is made only by HashedBlock.hash_of")

    @classmethod
    def hash_of(cls, cid: CID, data: bytes) -> HashedBlock:
        """`cid` must be the output of hashing `data` (cid_from_prefix or CID.of)."""
        return cls(cid, data, _HASHED)


@dataclass(frozen=True, slots=True)
class Message:
    entries: tuple[Entry, ...] = ()
    full: bool = False
    blocks: tuple[Block, ...] = ()
    presences: tuple[Presence, ...] = ()
    pending_bytes: int = 0


# -- CID prefixes ---------------------------------------------------------------------------------
def prefix_of(cid: CID) -> bytes:
    """version, codec, multihash function and digest length: the CID minus its digest."""
    mh = Multihash.decode(cid.multihash)
    return (varint.encode(cid.version) + varint.encode(cid.codec) + varint.encode(mh.code)
            + varint.encode(len(mh.digest)))


def cid_from_prefix(prefix: bytes | memoryview, data: bytes) -> CID:
    """Rebuild a block's CID from its prefix by hashing `data`."""
    try:
        version, pos = varint.decode(prefix, 0)
        codec, pos = varint.decode(prefix, pos)
        hash_code, pos = varint.decode(prefix, pos)
        length, pos = varint.decode(prefix, pos)
    except varint.VarintError as exc:
        raise BadPrefix(f"bad CID prefix: {exc}") from None
    if pos != len(prefix):
        raise BadPrefix("trailing bytes after CID prefix")
    if version not in (0, 1):
        raise UnsupportedPrefix(f"CID version {version} in block prefix")
    if hash_code not in _REBUILDABLE_HASHES:
        raise UnsupportedPrefix(f"hash function 0x{hash_code:x} in block prefix")
    if length != _REBUILDABLE_HASHES[hash_code]:
        raise UnsupportedPrefix(f"truncated or extended digest length {length} in block prefix")
    if version == 0 and (codec != Codec.DAG_PB or hash_code != HashCode.SHA2_256):
        raise BadPrefix("a CIDv0 prefix must be dag-pb with sha2-256")
    if codec not in _KNOWN_CODECS:
        raise UnsupportedPrefix(f"codec 0x{codec:x} in block prefix")
    return CID(version, codec, digest(data, hash_code))


# -- encoding -------------------------------------------------------------------------------------
def encode_entry(entry: Entry, version: ProtocolVersion) -> bytes | None:
    """The Entry sub-message, or None when this version cannot express it (a want-have before
    1.2.0: sending it as a want-block would fetch a whole block the caller only asked about)."""
    has = version.supports_have
    if entry.want_type is WantType.HAVE and not entry.cancel and not has:
        return None
    body = pbwire.len_field(_F_E_BLOCK, bytes(entry.cid))
    if entry.priority:
        body += pbwire.varint_field(_F_E_PRIORITY, wire.from_int32(entry.priority))
    if entry.cancel:
        body += pbwire.varint_field(_F_E_CANCEL, 1)
    if has and entry.want_type is WantType.HAVE:
        body += pbwire.varint_field(_F_E_TYPE, WantType.HAVE)
    if has and entry.send_dont_have:
        body += pbwire.varint_field(_F_E_DONT_HAVE, 1)
    return pbwire.len_field(_F_ENTRIES, body)


def encode_block(block: Block, version: ProtocolVersion) -> bytes:
    return b"".join(encode_block_parts(block, version))


def encode_block_parts(block: Block, version: ProtocolVersion) -> tuple[bytes, bytes]:
    """`encode_block` as (the field's keys and lengths, the block's own bytes): a reply is
    joined once into its frame instead of copied at every level of nesting (five copies of
    each 256 KiB block before)."""
    data = block.data
    head = pbwire.key(_F_B_DATA if version.uses_payload else _F_BLOCKS, pbwire.LEN) \
        + pbwire.encode_varint(len(data))
    if not version.uses_payload:
        return head, data
    head = pbwire.len_field(_F_B_PREFIX, prefix_of(block.cid)) + head
    return (pbwire.key(_F_PAYLOAD, pbwire.LEN) + pbwire.encode_varint(len(head) + len(data))
            + head, data)


def encode_presence(presence: Presence, version: ProtocolVersion) -> bytes | None:
    if not version.supports_have:
        return None
    body = pbwire.len_field(_F_P_CID, bytes(presence.cid))
    if presence.type is PresenceType.DONT_HAVE:
        body += pbwire.varint_field(_F_P_TYPE, PresenceType.DONT_HAVE)
    return pbwire.len_field(_F_PRESENCES, body)


def encode_wantlist(entry_fields: list[bytes], full: bool) -> bytes:
    body = b"".join(entry_fields)
    if full:
        body += pbwire.varint_field(_F_FULL, 1)
    return pbwire.len_field(_F_WANTLIST, body)


def encode_pending(pending_bytes: int, version: ProtocolVersion) -> bytes:
    if not version.supports_have or pending_bytes <= 0:
        return b""
    return pbwire.varint_field(_F_PENDING, wire.from_int32(min(pending_bytes, (1 << 31) - 1)))


def encode_message(msg: Message, version: ProtocolVersion = ProtocolVersion.V1_2_0) -> bytes:
    """The protobuf body (no length prefix); parts the version cannot carry are left out."""
    entries = [e for e in (encode_entry(x, version) for x in msg.entries) if e is not None]
    parts = []
    if entries or msg.full:
        parts.append(encode_wantlist(entries, msg.full))
    parts.extend(encode_block(b, version) for b in msg.blocks)
    parts.extend(p for p in (encode_presence(x, version) for x in msg.presences) if p is not None)
    parts.append(encode_pending(msg.pending_bytes, version))
    return b"".join(parts)


# -- decoding -------------------------------------------------------------------------------------
def _read_cid(raw: memoryview, what: str) -> CID:
    try:
        return CID.decode(bytes(raw))
    except InvalidCID as exc:
        raise BadCID(f"{what}: {exc}") from None


def _decode_entry(buf: memoryview) -> Entry:
    cid = None
    priority = 0
    cancel = send_dont_have = False
    want_type = WantType.BLOCK
    for field, wt, value in wire.fields(buf):
        if field == _F_E_BLOCK:
            cid = _read_cid(wire.as_view(wt, value, "entry.block"), "wantlist entry")
        elif field == _F_E_PRIORITY:
            priority = wire.to_int32(wire.as_int(wt, value, "entry.priority"))
        elif field == _F_E_CANCEL:
            cancel = wire.to_bool(wire.as_int(wt, value, "entry.cancel"), "entry.cancel")
        elif field == _F_E_TYPE:
            kind = wire.as_int(wt, value, "entry.wantType")
            if kind not in (WantType.BLOCK, WantType.HAVE):
                raise MalformedMessage(f"unknown want type {kind}")
            want_type = WantType(kind)
        elif field == _F_E_DONT_HAVE:
            flag = wire.as_int(wt, value, "entry.sendDontHave")
            send_dont_have = wire.to_bool(flag, "entry.sendDontHave")
    if cid is None:
        raise MalformedMessage("wantlist entry without a CID")
    return Entry(cid, priority, cancel, want_type, send_dont_have)


def _decode_presence(buf: memoryview) -> Presence:
    cid = None
    kind = PresenceType.HAVE
    for field, wt, value in wire.fields(buf):
        if field == _F_P_CID:
            cid = _read_cid(wire.as_view(wt, value, "presence.cid"), "block presence")
        elif field == _F_P_TYPE:
            raw = wire.as_int(wt, value, "presence.type")
            if raw not in (PresenceType.HAVE, PresenceType.DONT_HAVE):
                raise MalformedMessage(f"unknown presence type {raw}")
            kind = PresenceType(raw)
    if cid is None:
        raise MalformedMessage("block presence without a CID")
    return Presence(cid, kind)


def _check_block_size(size: int, config: BitswapConfig) -> None:
    if size > config.max_block_size:
        raise BlockTooLarge(f"block of {size} bytes exceeds {config.max_block_size}")


def _decode_payload(buf: memoryview, config: BitswapConfig) -> Block:
    prefix: memoryview | None = None
    data = b""
    for field, wt, value in wire.fields(buf):
        if field == _F_B_PREFIX:
            prefix = wire.as_view(wt, value, "block.prefix")
        elif field == _F_B_DATA:
            view = wire.as_view(wt, value, "block.data")
            _check_block_size(len(view), config)
            data = bytes(view)
    if prefix is None:
        raise BadPrefix("payload block without a CID prefix")
    return HashedBlock.hash_of(cid_from_prefix(prefix, data), data)


class _Counter:
    """Counts items of one kind across a message and raises past the bound."""

    def __init__(self, what: str, limit: int) -> None:
        self.what, self.limit, self.count = what, limit, 0

    def bump(self) -> None:
        self.count += 1
        if self.count > self.limit:
            raise TooManyItems(f"more than {self.limit} {self.what} in one message")


def _decode_wantlist(buf: memoryview, entries: list[Entry], counter: _Counter) -> bool:
    full = False
    for field, wt, value in wire.fields(buf):
        if field == _F_ENTRIES:
            counter.bump()
            entries.append(_decode_entry(wire.as_view(wt, value, "wantlist.entries")))
        elif field == _F_FULL:
            full = wire.to_bool(wire.as_int(wt, value, "wantlist.full"), "wantlist.full")
    return full


def decode_message(body: bytes | memoryview, config: BitswapConfig = DEFAULT_CONFIG) -> Message:
    """Parse one message body (without its length prefix). Raises only BitswapError subclasses.

    Every field of every version is accepted whatever protocol was negotiated, as boxo does: the
    `blocks` field of 1.0.0 is read as CIDv0 dag-pb blocks.
    """
    if len(body) > config.max_message_size:
        raise MessageTooLarge(f"message of {len(body)} bytes exceeds {config.max_message_size}")
    entries: list[Entry] = []
    blocks: list[Block] = []
    presences: list[Presence] = []
    full = False
    pending = 0
    n_entries = _Counter("wantlist entries", config.max_entries_per_message)
    n_blocks = _Counter("blocks", config.max_blocks_per_message)
    n_presences = _Counter("block presences", config.max_presences_per_message)
    for field, wt, value in wire.fields(body):
        if field == _F_WANTLIST:
            # protobuf merges a repeated singular sub-message, so a second wantlist appends
            full = _decode_wantlist(wire.as_view(wt, value, "wantlist"), entries, n_entries) or full
        elif field == _F_BLOCKS:
            n_blocks.bump()
            view = wire.as_view(wt, value, "blocks")
            _check_block_size(len(view), config)
            raw = bytes(view)
            blocks.append(HashedBlock.hash_of(CID.of(raw, Codec.DAG_PB, 0), raw))
        elif field == _F_PAYLOAD:
            n_blocks.bump()
            blocks.append(_decode_payload(wire.as_view(wt, value, "payload"), config))
        elif field == _F_PRESENCES:
            n_presences.bump()
            presences.append(_decode_presence(wire.as_view(wt, value, "blockPresences")))
        elif field == _F_PENDING:
            pending = max(0, wire.to_int32(wire.as_int(wt, value, "pendingBytes")))
    return Message(tuple(entries), full, tuple(blocks), tuple(presences), pending)
