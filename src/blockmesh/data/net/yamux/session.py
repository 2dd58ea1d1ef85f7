"""One Yamux connection as a state machine without I/O: bytes in, frames out.

The adapter (`trio_muxer`) feeds every decrypted chunk it reads to `receive` and writes whatever
`take_outgoing` returns; applications call `open_stream`, `send`, `read`, `close_write`, `reset`.
The clock is passed in. Nothing here awaits, so no frame needs a lock: one reader task parses
every frame of a connection and writers only append to one outgoing buffer, which the adapter
writes in one go (headers and payloads of many frames coalesced into few Noise messages).

Behaviour, from hashicorp/yamux spec.md and go-yamux's defaults:
* A stream opens with a WINDOW_UPDATE carrying SYN; the acceptor answers ACK at once. Stream ids
  are odd for the connection's initiator and even for the responder; a SYN with the wrong
  parity or for a live id is a protocol error.
* Each direction of a stream has the spec's 256 KiB window at first; our SYN or ACK adds
  `OPEN_WINDOW` - 256 KiB to it at once (a window update may ride on either), for the first
  `OPEN_WINDOW_STREAMS` streams open at a time. boxo's server writes every reply on a new
  stream, and a reply of one 256 KiB block is that block plus a few dozen bytes of framing:
  with the bare 256 KiB it waited for a window update of ours before its last bytes, a round
  trip and a socket write per block. Later grants follow
  `window.ReceiveWindow`: an update only once half the target is consumed (batched as go-yamux
  does), the target doubling up to 16 MiB when the reader drains a window within a few RTTs.
* A DATA frame longer than the credit the peer was granted is a protocol error: GO_AWAY with
  the protocol-error code and the connection ends. So a peer can never make us buffer beyond
  the windows we granted, and the bytes buffered per stream stay under 16 MiB.
* FIN half-closes (applied after the payload of the frame carrying it); RST aborts both
  directions and drops what was buffered. Frames for streams we no longer know are discarded
  (they cross our own RST or FIN on the wire).
* PING with SYN is answered with ACK and the same nonce; our own pings give the RTT.
* Inbound streams wait in an accept queue bounded by `accept_backlog` (go-yamux: 256), and a
  connection holds at most `max_streams` streams; one more is refused with RST, not buffered.
  A half-closed stream is kept until the peer closes its side too (go-yamux would also reset
  it after 5 minutes; here only the stream cap bounds them).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from blockmesh.data.net.errors import StreamError, StreamReset
from blockmesh.data.net.yamux.frame import (
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
    GO_AWAY_PROTOCOL_ERROR,
    HEADER_SIZE,
    TYPE_DATA,
    TYPE_GO_AWAY,
    TYPE_PING,
    TYPE_WINDOW_UPDATE,
    Header,
    YamuxProtocolError,
    decode_header,
    encode_header,
)
from blockmesh.data.net.yamux.window import INITIAL_WINDOW, MAX_WINDOW, ReceiveWindow

#: Largest DATA frame we cut. Frames are coalesced before encryption, so this only bounds how
#: long one stream holds the wire; larger frames mean fewer headers to parse at the receiver.
MAX_FRAME = 256 * 1024
ACCEPT_BACKLOG = 256
#: The receive window a new stream starts with, announced in its SYN or ACK: room for a
#: 256 KiB block and its message framing, so such a reply never waits on a window update.
OPEN_WINDOW = 2 * INITIAL_WINDOW
#: Only while fewer streams than this are open does a new one get OPEN_WINDOW (others start
#: at the spec's 256 KiB), so the larger start adds at most 64 x 256 KiB = 16 MiB to what a
#: peer can make one connection buffer without our reading (boxo keeps ~8 reply streams open).
OPEN_WINDOW_STREAMS = 64
#: Streams the peer may keep open on one connection (open or half-closed, unread data
#: included): each can hold up to its window, so this bounds what one peer can make us buffer
#: before any window grows: 1,024 x 256 KiB + 16 MiB = 272 MiB per connection.
MAX_STREAMS = 1024

#: Answers (PING ACKs, RSTs for refused SYNs) queued at most between two socket writes.
MAX_QUEUED_REPLIES = 4096


class SessionClosed(StreamError):
    """The connection is shutting down (GO_AWAY sent or received); no new streams."""


@dataclass(eq=False)
class YamuxStream:
    """One stream's state. `user` belongs to the adapter (its stream object)."""

    id: int
    send_window: int = INITIAL_WINDOW
    credit: int = INITIAL_WINDOW  # what the peer may still send us
    window: ReceiveWindow = field(default_factory=ReceiveWindow)
    chunks: deque[bytes | bytearray] = field(default_factory=deque)
    buffered: int = 0
    local_fin: bool = False
    remote_fin: bool = False
    reset: bool = False
    user: Any = None  # Any, not object: mypyc cannot build a dataclass field of type object

    @property
    def readable(self) -> bool:
        """A read would return at once: data, EOF or reset."""
        return bool(self.chunks) or self.remote_fin or self.reset


class Session:
    """The Yamux state of one connection. `client` is True for the connection's initiator."""

    def __init__(self, *, client: bool, max_window: int = MAX_WINDOW,
                 accept_backlog: int = ACCEPT_BACKLOG, max_frame: int = MAX_FRAME,
                 max_streams: int = MAX_STREAMS, open_window: int = OPEN_WINDOW) -> None:
        if not INITIAL_WINDOW <= open_window <= max_window:
            raise ValueError(f"open_window {open_window} must lie in "
                             f"[{INITIAL_WINDOW}, max_window {max_window}]")
        self.client = client
        self.max_window = max_window
        self.open_window = open_window
        self.accept_backlog = accept_backlog
        self.max_streams = max_streams
        self.max_frame = max_frame
        self.streams: dict[int, YamuxStream] = {}
        self.accept_queue: deque[YamuxStream] = deque()
        self.touched: set[YamuxStream] = set()  # streams whose readability/window changed
        self.remote_go_away: int | None = None
        self.local_go_away: int | None = None
        self.rtt = 0.0  # of the last answered ping; 0 until one is
        self.last_pong = -1.0  # when it was answered
        self.pong_received = False  # set on each answer; the adapter clears it
        self._next_id = 1 if client else 2
        self._out: list[bytes | memoryview] = []
        self.outgoing_bytes = 0
        self._replies = 0  # PING answers and SYN refusals queued since the last take
        self._partial = bytearray()  # a header split across chunks
        self._data_left = 0  # payload bytes of the current DATA frame still to come
        self._data_stream: YamuxStream | None = None  # None: discard them
        self._data_fin = False
        self._ping_nonce = 0
        self._ping_sent: dict[int, float] = {}

    # --- output -------------------------------------------------------------------------------

    def _queue(self, type_: int, flags: int, stream_id: int, length: int) -> None:
        self._out.append(encode_header(type_, flags, stream_id, length))
        self.outgoing_bytes += HEADER_SIZE

    def take_outgoing(self) -> bytes:
        """Every queued frame as one buffer (b"" when none), emptying the queue."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        self.outgoing_bytes = 0
        self._replies = 0
        return out

    def _reply(self, type_: int, flags: int, stream_id: int, length: int) -> None:
        """Queue a frame the peer's own frame asked for, unless MAX_QUEUED_REPLIES are already
        waiting: a peer that sends PINGs or SYNs and never reads would otherwise grow our
        queue at its own send rate. A dropped answer costs only that peer (its ping goes
        unanswered, its refused stream learns of it by its own timeout)."""
        if self._replies < MAX_QUEUED_REPLIES:
            self._replies += 1
            self._queue(type_, flags, stream_id, length)

    def take_touched(self) -> set[YamuxStream]:
        touched, self.touched = self.touched, set()
        return touched

    # --- application side ---------------------------------------------------------------------

    def open_stream(self) -> YamuxStream:
        if self.remote_go_away is not None or self.local_go_away is not None:
            raise SessionClosed("the yamux connection is going away")
        stream = self._new_stream(self._next_id)
        self._next_id += 2
        self.streams[stream.id] = stream
        self._queue(TYPE_WINDOW_UPDATE, FLAG_SYN, stream.id, stream.credit - INITIAL_WINDOW)
        return stream

    def _new_stream(self, stream_id: int) -> YamuxStream:
        """A stream's state, its window OPEN_WINDOW while few streams are open (the caller
        announces `credit` - INITIAL_WINDOW in the SYN or ACK)."""
        start = self.open_window if len(self.streams) < OPEN_WINDOW_STREAMS else INITIAL_WINDOW
        return YamuxStream(stream_id, credit=start,
                           window=ReceiveWindow(target=start, maximum=self.max_window))

    def accept(self) -> YamuxStream | None:
        return self.accept_queue.popleft() if self.accept_queue else None

    def send(self, stream: YamuxStream, data: bytes | memoryview) -> int:
        """Queue as much of `data` as the stream's send window allows; returns how much."""
        if stream.reset:
            raise StreamReset(f"yamux stream {stream.id} was reset")
        if stream.local_fin:
            raise StreamError(f"yamux stream {stream.id} is closed for writing")
        allowed = min(len(data), stream.send_window)
        view = memoryview(data)
        offset = 0
        while offset < allowed:
            size = min(allowed - offset, self.max_frame)
            self._out.append(encode_header(TYPE_DATA, 0, stream.id, size))
            self._out.append(view[offset:offset + size] if size < len(data) else data)
            offset += size
        stream.send_window -= allowed
        self.outgoing_bytes += allowed + HEADER_SIZE * ((allowed + self.max_frame - 1)
                                                        // self.max_frame)
        return allowed

    def read(self, stream: YamuxStream, limit: int, *, now: float) -> bytes | bytearray:
        """Up to `limit` buffered bytes (b"" when none), granting window as go-yamux does."""
        chunks = stream.chunks
        if not chunks or limit <= 0:
            return b""
        first = chunks[0]
        if len(first) > limit:
            out = first[:limit]
            chunks[0] = first[limit:]
        else:
            chunks.popleft()
            if chunks and len(first) + len(chunks[0]) <= limit:
                parts = [first]
                total = len(first)
                while chunks and total + len(chunks[0]) <= limit:
                    part = chunks.popleft()
                    parts.append(part)
                    total += len(part)
                out = b"".join(parts)
            else:
                out = first
        stream.buffered -= len(out)
        if not stream.remote_fin and not stream.reset:
            increment = stream.window.grant(credit=stream.credit, buffered=stream.buffered,
                                            now=now, rtt=self.rtt)
            if increment:
                stream.credit += increment
                self._queue(TYPE_WINDOW_UPDATE, 0, stream.id, increment)
        return out

    def close_write(self, stream: YamuxStream) -> None:
        """Half-close: the peer reads EOF after what we sent."""
        if stream.local_fin or stream.reset:
            return
        stream.local_fin = True
        self._queue(TYPE_WINDOW_UPDATE, FLAG_FIN, stream.id, 0)
        if stream.remote_fin:
            self.streams.pop(stream.id, None)

    def reset(self, stream: YamuxStream) -> None:
        """Abort both directions; buffered data is dropped."""
        if stream.reset:
            return
        if self.streams.pop(stream.id, None) is not None:
            self._queue(TYPE_WINDOW_UPDATE, FLAG_RST, stream.id, 0)
        self._drop(stream)

    def ping(self, now: float) -> int:
        self._ping_nonce = (self._ping_nonce + 1) & 0xFFFFFFFF
        self._ping_sent[self._ping_nonce] = now
        if len(self._ping_sent) > 16:  # unanswered pings are forgotten, oldest first
            del self._ping_sent[next(iter(self._ping_sent))]
        self._queue(TYPE_PING, FLAG_SYN, 0, self._ping_nonce)
        return self._ping_nonce

    def go_away(self, code: int) -> None:
        if self.local_go_away is None:
            self.local_go_away = code
            self._queue(TYPE_GO_AWAY, 0, 0, code)

    def abort(self) -> None:
        """The connection is gone: every stream is reset locally (nothing more is sent)."""
        for stream in list(self.streams.values()):
            self._drop(stream)
        self.streams.clear()
        for stream in self.accept_queue:
            self._drop(stream)
        self.accept_queue.clear()

    def _drop(self, stream: YamuxStream) -> None:
        stream.reset = True
        stream.chunks.clear()
        stream.buffered = 0
        self.touched.add(stream)

    # --- network side -------------------------------------------------------------------------

    def receive(self, data: bytes | bytearray, now: float) -> None:
        """Process one chunk of the decrypted byte stream (any split of it is fine).

        `data` is a bytearray when it comes from py-libp2p's Noise decryption; stream reads
        hand its slices on as they are. Raises YamuxProtocolError after queuing
        GO_AWAY(protocol error): the adapter flushes the queue and closes the connection.
        """
        try:
            self._receive(data, now)
        except YamuxProtocolError:
            self.go_away(GO_AWAY_PROTOCOL_ERROR)
            raise

    def _receive(self, data: bytes | bytearray, now: float) -> None:
        end = len(data)
        pos = 0
        while pos < end:
            if self._data_left:
                take = min(self._data_left, end - pos)
                stream = self._data_stream
                if stream is not None and not stream.reset:
                    stream.chunks.append(data if take == end else data[pos:pos + take])
                    stream.buffered += take
                    self.touched.add(stream)
                pos += take
                self._data_left -= take
                if not self._data_left and self._data_fin and stream is not None \
                        and not stream.reset:
                    self._remote_fin(stream)
                continue
            if self._partial or end - pos < HEADER_SIZE:
                need = HEADER_SIZE - len(self._partial)
                self._partial += data[pos:pos + need]
                pos += min(need, end - pos)
                if len(self._partial) < HEADER_SIZE:
                    return
                header = decode_header(self._partial)
                self._partial.clear()
            else:
                header = decode_header(data, pos)
                pos += HEADER_SIZE
            self._on_header(header, now)

    def _on_header(self, header: Header, now: float) -> None:
        type_, flags, stream_id, length = header
        if type_ == TYPE_PING:
            if flags & FLAG_SYN:
                self._reply(TYPE_PING, FLAG_ACK, 0, length)
            elif flags & FLAG_ACK and (sent := self._ping_sent.pop(length, None)) is not None:
                self.rtt = max(now - sent, 1e-6)
                self.last_pong = now
                self.pong_received = True
            return
        if type_ == TYPE_GO_AWAY:
            self.remote_go_away = length
            return
        stream = self.streams.get(stream_id)
        if flags & FLAG_SYN:
            stream = self._on_syn(stream_id, stream)
        if type_ == TYPE_DATA:
            if stream is not None and length > stream.credit:
                raise YamuxProtocolError(
                    f"yamux stream {stream_id}: {length}-byte frame over the {stream.credit} "
                    f"bytes of window granted")
            if stream is not None and stream.remote_fin and length:
                self.reset(stream)  # data after the peer's own FIN: the stream is broken
                stream = None
            if stream is not None:
                stream.credit -= length
            self._data_left = length
            self._data_stream = stream
            self._data_fin = bool(flags & FLAG_FIN)
        elif stream is not None:
            stream.send_window += length
            self.touched.add(stream)
        if stream is None:
            return
        if flags & FLAG_RST:
            self.streams.pop(stream_id, None)
            self._drop(stream)
            self._data_stream = None
        elif flags & FLAG_FIN and (type_ != TYPE_DATA or not length):
            self._remote_fin(stream)

    def _on_syn(self, stream_id: int, existing: YamuxStream | None) -> YamuxStream | None:
        if existing is not None:
            raise YamuxProtocolError(f"yamux SYN for stream {stream_id}, which is open")
        if (stream_id % 2 == 1) == self.client:
            raise YamuxProtocolError(f"yamux SYN for stream {stream_id}, one of our ids")
        if (self.local_go_away is not None or len(self.accept_queue) >= self.accept_backlog
                or len(self.streams) >= self.max_streams):
            self._reply(TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)
            return None
        stream = self._new_stream(stream_id)
        self.streams[stream_id] = stream
        self.accept_queue.append(stream)
        self._queue(TYPE_WINDOW_UPDATE, FLAG_ACK, stream_id, stream.credit - INITIAL_WINDOW)
        return stream

    def _remote_fin(self, stream: YamuxStream) -> None:
        stream.remote_fin = True
        self.touched.add(stream)
        if stream.local_fin:
            self.streams.pop(stream.id, None)
