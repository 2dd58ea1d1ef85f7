"""Length-prefixed framing on a Bitswap stream, and splitting replies that would not fit one frame.

The stream decoder takes bytes in whatever pieces the transport delivers and hands back whole
messages. It rejects a length prefix over the limit as soon as the prefix's bytes show it, before
buffering the body, so a peer cannot make this node hold more than one message's worth of bytes.
"""

from __future__ import annotations

from blockmesh.data import varint
from blockmesh.data.bitswap.config import DEFAULT_CONFIG, BitswapConfig
from blockmesh.data.bitswap.errors import (
    BitswapError,
    FrameTooLarge,
    MalformedMessage,
    MessageTooLarge,
)
from blockmesh.data.bitswap.message import (
    Message,
    decode_message,
    encode_block_parts,
    encode_entry,
    encode_pending,
    encode_presence,
    encode_wantlist,
)
from blockmesh.data.bitswap.protocol import ProtocolVersion

# Bytes a message adds around its items: the wantlist field's key, length and `full` flag
# (1 + 5 + 2) plus the pendingBytes field (1 + 10).
_ENVELOPE_OVERHEAD = 19


def frame(body: bytes) -> bytes:
    return varint.encode(len(body)) + body


class FrameDecoder:
    """Feed stream bytes in, get complete frame bodies out. After an error the stream is dead.

    Each body is copied once: sliced straight out of the fed chunk when it lies within one,
    else its pieces are joined when the last arrives (a 256 KiB block message comes in several
    reads). Only the length prefix, at most ten bytes, is gathered byte by byte.
    """

    def __init__(self, max_frame_size: int = DEFAULT_CONFIG.max_message_size) -> None:
        self._max = max_frame_size
        self._prefix = bytearray()  # the length prefix read so far
        self._value = 0  # its value so far
        self._need: int | None = None  # body length once the prefix is read
        self._parts: list[bytes] = []  # pieces of the body in progress
        self._have = 0
        self._failed: BitswapError | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        if self._failed is not None:
            raise self._failed
        out: list[bytes] = []
        view = memoryview(data)
        pos, end = 0, len(view)
        try:
            while pos < end or self._need == 0:
                if self._need is None:
                    pos = self._read_prefix(view, pos)
                    continue
                take = min(self._need - self._have, end - pos)
                if not self._parts and take == self._need:
                    out.append(bytes(view[pos:pos + take]))
                else:
                    self._parts.append(bytes(view[pos:pos + take]))
                    self._have += take
                    if self._have < self._need:
                        return out
                    out.append(b"".join(self._parts))
                    self._parts.clear()
                    self._have = 0
                pos += take
                self._need = None
        except BitswapError as exc:
            self._failed = exc
            self._parts.clear()
            raise
        return out

    @property
    def buffered(self) -> int:
        return len(self._prefix) + self._have

    def _read_prefix(self, view: memoryview, pos: int) -> int:
        """Take prefix bytes from `view[pos:]`; sets `_need` once the prefix is whole."""
        # Bound the value from below while the prefix is still incomplete: a run of continuation
        # bytes already worth more than the limit is rejected without waiting for the rest.
        prefix = self._prefix
        while pos < len(view):
            byte = view[pos]
            pos += 1
            i = len(prefix)
            prefix.append(byte)
            if i >= varint.MAX_VARINT_BYTES:
                raise FrameTooLarge(f"length prefix exceeds {self._max} bytes")
            self._value = (0 if i == 0 else self._value) | (byte & 0x7F) << (7 * i)
            if self._value > self._max or (byte >= 0x80 and 1 << (7 * (i + 1)) > self._max):
                raise FrameTooLarge(f"length prefix exceeds {self._max} bytes")
            if byte < 0x80:
                try:
                    length, _ = varint.decode(prefix)
                except varint.VarintError as exc:
                    raise MalformedMessage(f"bad length prefix: {exc}") from None
                prefix.clear()
                self._need = length
                return pos
        return pos


class MessageReader:
    """One inbound Bitswap stream: bytes in arbitrary pieces → decoded messages."""

    def __init__(self, config: BitswapConfig = DEFAULT_CONFIG) -> None:
        self._config = config
        self._frames = FrameDecoder(config.max_message_size)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        return [decode_message(body, self._config) for body in self._frames.feed(data)]


def _pack(msg: Message, version: ProtocolVersion,
          max_size: int) -> list[tuple[Message, list[bytes], int]]:
    """Cut `msg` into parts whose bodies fit `max_size`, encoding each item once: each part
    with its body as pieces (block bytes uncopied) and the body's length."""
    budget = max_size - _ENVELOPE_OVERHEAD
    # (kind, item, encoded pieces, their length) with kind 0 for entries, 1 for presences,
    # 2 for blocks
    items: list[tuple[int, object, tuple[bytes, ...], int]] = []
    for entry in msg.entries:
        encoded = encode_entry(entry, version)
        if encoded is not None:
            items.append((0, entry, (encoded,), len(encoded)))
    for presence in msg.presences:
        encoded = encode_presence(presence, version)
        if encoded is not None:
            items.append((1, presence, (encoded,), len(encoded)))
    for block in msg.blocks:
        head, data = encode_block_parts(block, version)
        items.append((2, block, (head, data), len(head) + len(data)))

    parts: list[tuple[Message, list[bytes], int]] = []
    groups: tuple[list, list, list] = ([], [], [])
    encoded_groups: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    pending = encode_pending(msg.pending_bytes, version)
    used = 0

    def flush() -> None:
        full = msg.full and not parts
        body: list[bytes] = []
        if encoded_groups[0] or full:
            body.append(encode_wantlist(encoded_groups[0], full))
        body += encoded_groups[2]
        body += encoded_groups[1]
        body.append(pending)
        parts.append((Message(tuple(groups[0]), full, tuple(groups[2]), tuple(groups[1]),
                              msg.pending_bytes), body, sum(len(piece) for piece in body)))
        for group in (*groups, *encoded_groups):
            group.clear()

    for kind, item, pieces, size in items:
        if size > budget:
            raise MessageTooLarge(f"one item needs {size} bytes, over the {max_size} limit")
        if used + size > budget:
            flush()
            used = 0
        groups[kind].append(item)
        encoded_groups[kind].extend(pieces)
        used += size
    if used or (msg.full and not parts):
        flush()
    return parts


def split_message(msg: Message, version: ProtocolVersion,
                  max_size: int = DEFAULT_CONFIG.max_message_size) -> list[Message]:
    """Cut `msg` into messages whose bodies each encode to at most `max_size` bytes.

    A full wantlist stays correct when cut: only the first part carries `full`, so the later
    parts add to the list it replaced instead of replacing it again. Nothing to send (say, only
    want-haves for a 1.0.0 peer) gives no message at all.
    """
    return [part for part, _, _ in _pack(msg, version, max_size)]


def encode_frames(msg: Message, version: ProtocolVersion,
                  max_size: int = DEFAULT_CONFIG.max_message_size) -> list[bytes]:
    """Length-prefixed bodies ready to write to a stream, each body at most `max_size` bytes
    (each frame joined from its pieces in one copy)."""
    return [b"".join([varint.encode(size), *body]) for _, body, size in _pack(msg, version,
                                                                             max_size)]
