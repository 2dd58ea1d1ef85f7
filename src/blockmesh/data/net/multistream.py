"""The listening side of multistream-select 1.0.0 on one stream, without I/O.

Every libp2p stream starts with it: the dialer sends `/multistream/1.0.0` and then proposes
protocols one at a time, each message a uvarint length and the text with a trailing newline;
the listener sends the same header, then echoes a protocol it serves or answers `na` (and
lists what it serves for `ls`). go-libp2p's dialers send the header and their one proposal
at once, before any answer ("lazy" negotiation), followed by the protocol's first bytes.

Why it is ours: py-libp2p's listener reads each message a varint byte at a time through three
stream layers and writes its header and its answer separately. boxo's server opens a new
stream for every Bitswap reply, so a 100 MiB fetch from kubo negotiates ~400 streams, and
that path cost more of the fetching process's CPU than decoding the blocks. Here the caller
shows the engine the bytes buffered on the stream (`feed`), takes exactly the bytes the
engine consumed, and writes the engine's whole answer in one write: the header and the echo
of a lazy dialer's proposal leave together. Bytes past the last whole message stay on the
stream for the protocol's handler.

Bounds: a message longer than `MAX_MESSAGE` bytes, a malformed one, or more than
`MAX_PROPOSALS` refused proposals end the negotiation with `MultistreamError`; the caller
also bounds it in time.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from blockmesh.data.net.errors import NetError
from blockmesh.data.varint import leb128

HEADER = "/multistream/1.0.0"
NOT_AVAILABLE = "na"
LIST = "ls"
#: Longest message read, newline included (protocol ids are short; go-multistream refuses
#: messages over 1 KiB too).
MAX_MESSAGE = 1024
#: Refused proposals (and `ls` requests) before the stream is given up on.
MAX_PROPOSALS = 32


class MultistreamError(NetError):
    """The dialer broke multistream-select: bad header, malformed or oversized message, or
    too many refused proposals."""


def encode_message(text: str) -> bytes:
    """One message: uvarint length, then `text` and a newline."""
    body = text.encode() + b"\n"
    return leb128(len(body)) + body


@dataclass(frozen=True)
class Step:
    """What one `feed` decided: take `consumed` bytes off the stream, write `reply` (may be
    empty), and, once `protocol` is set, hand the stream to that protocol's handler."""

    consumed: int
    reply: bytes
    protocol: str | None = None


class Listener:
    """One stream's negotiation, listener side. `protocols` are those served; `feed` is
    called with every byte buffered so far (not yet consumed) until it names a protocol."""

    def __init__(self, protocols: Collection[str]) -> None:
        self._protocols = protocols
        self._header_seen = False
        self._refused = 0
        self._done = False

    def feed(self, buffered: bytes | bytearray | memoryview) -> Step:
        """Consume every whole message at the front of `buffered` (stopping after the one that
        selects a protocol) and answer them; raises MultistreamError on a broken dialer."""
        if self._done:
            raise MultistreamError("the negotiation is already over")
        data = memoryview(buffered)
        pos = 0
        reply: list[bytes] = []
        while (found := self._message(data, pos)) is not None:
            text, pos = found
            if not self._header_seen:
                if text != HEADER:
                    raise MultistreamError(f"expected the {HEADER} header, got {text[:64]!r}")
                self._header_seen = True
                reply.append(encode_message(HEADER))
            elif text in self._protocols and text not in (HEADER, NOT_AVAILABLE, LIST):
                reply.append(encode_message(text))
                self._done = True
                return Step(pos, b"".join(reply), text)
            else:
                self._refused += 1
                if self._refused > MAX_PROPOSALS:
                    raise MultistreamError(f"more than {MAX_PROPOSALS} proposals refused")
                if text == LIST:  # one message of messages, as js-libp2p answers (and
                    # go-multistream did until it dropped `ls`)
                    body = b"".join(encode_message(p) for p in sorted(self._protocols)) + b"\n"
                    reply.append(leb128(len(body)) + body)
                else:
                    reply.append(encode_message(NOT_AVAILABLE))
        return Step(pos, b"".join(reply))

    @staticmethod
    def _message(data: memoryview, pos: int) -> tuple[str, int] | None:
        """The whole message at `pos` and the offset after it; None if it has not all arrived."""
        length = 0
        shift = 0
        at = pos
        while True:
            if at >= len(data):
                return None
            byte = data[at]
            at += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 14:  # a two-byte varint already exceeds MAX_MESSAGE
                raise MultistreamError("multistream message length is too long")
        if length > MAX_MESSAGE or length == 0 or (shift and length < 0x80):
            raise MultistreamError(f"bad multistream message length {length}")
        if len(data) - at < length:
            return None
        body = bytes(data[at:at + length])
        if not body.endswith(b"\n"):
            raise MultistreamError("multistream message does not end in a newline")
        try:
            text = body[:-1].decode()
        except UnicodeDecodeError as exc:
            raise MultistreamError("multistream message is not UTF-8") from exc
        return text, at + length
