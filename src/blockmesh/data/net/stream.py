"""One libp2p stream as the rest of blockmesh sees it: bounded reads, typed errors, plain bytes.

py-libp2p streams raise a dozen exception types from three layers (NetStream, the muxer, the
raw connection) and return end-of-stream as an exception; here EOF is `b""` and every failure is
a `StreamError` (`StreamReset` when the stream is gone for good).

py-libp2p's Yamux forgets a stream as soon as the peer resets it, and a read then reports plain
EOF; `read` looks at the muxed stream's own reset flag so a reset is not mistaken for a clean end.

A Yamux write that finds the peer's receive window shut too long fails (30 s,
`net/yamux/trio_muxer.py`; py-libp2p's own muxer gave up after 5 s and marked the stream reset
locally only). `write` resets the stream on the wire whenever a write fails, so both ends agree
the stream is dead.

Every byte read or written is counted by the host's `Bandwidth`, which also says how long to
wait so the configured rates hold: a write waits before it goes out, a read after its bytes
came in, before the next read (which leaves the muxer's window to hold the sender back).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import trio
from libp2p.abc import INetStream
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.network.stream.exceptions import StreamReset as Libp2pStreamReset

from blockmesh.data.net.bandwidth import Bandwidth
from blockmesh.data.net.errors import StreamError, StreamReset

Direction = Literal["inbound", "outbound"]

#: Under a bandwidth limit, writes go out in pieces this large (one Yamux frame's worth).
LIMITED_WRITE_PIECE = 64 << 10


class Stream:
    """A negotiated stream to `peer_id` speaking `protocol`.

    Use it from one reader task and one writer task at a time. `close_write` half-closes
    (the peer reads EOF, we may still read); `close` ends our use of the stream; `reset`
    aborts it in both directions.
    """

    def __init__(
        self,
        raw: INetStream,
        *,
        peer_id: str,
        protocol: str,
        direction: Direction,
        max_read_size: int,
        bandwidth: Bandwidth | None = None,
    ) -> None:
        self._raw = raw
        self.peer_id = peer_id
        self.protocol = protocol
        self.direction: Direction = direction
        self._max_read_size = max_read_size
        self._eof = False
        self._bandwidth = bandwidth
        self._read_again_at = 0.0  # when the bandwidth limit lets the next read go

    def __repr__(self) -> str:
        return f"<Stream {self.direction} {self.protocol} {self.peer_id}>"

    async def read(self, max_bytes: int | None = None) -> bytes:
        """Up to `max_bytes` (capped by the host's `max_read_size`) once any are available;
        `b""` once the peer has closed its side."""
        limit = self._max_read_size if max_bytes is None else min(max_bytes, self._max_read_size)
        if limit < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._eof:
            return b""
        if self._read_again_at > trio.current_time():
            await trio.sleep_until(self._read_again_at)
        try:
            data = await self._raw.read(limit)
        except StreamEOF as exc:
            if getattr(getattr(self._raw, "muxed_stream", None), "reset_received", False):
                raise StreamReset(f"stream {self.protocol} from {self.peer_id} was reset") from exc
            self._eof = True
            return b""
        except Libp2pStreamReset as exc:
            raise StreamReset(f"stream {self.protocol} from {self.peer_id} was reset") from exc
        except Exception as exc:
            raise StreamError(f"read on {self.protocol} from {self.peer_id} failed: {exc}") from exc
        if not data:
            self._eof = True
        elif self._bandwidth is not None:
            # The bytes are charged now and the wait falls on the next read, so a read that
            # is cancelled while waiting never loses bytes already taken from the stream.
            now = trio.current_time()
            wait = self._bandwidth.charge("in", self.peer_id, self.protocol, len(data), now)
            self._read_again_at = now + wait
        return data

    async def read_exactly(self, n: int) -> bytes:
        """Exactly `n` bytes; StreamError if the stream ends first."""
        parts: list[bytes] = []
        remaining = n
        while remaining > 0:
            chunk = await self.read(remaining)
            if not chunk:
                raise StreamError(
                    f"{self.protocol} from {self.peer_id} ended {remaining} bytes short of {n}"
                )
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._bandwidth is None:
            await self._write(data)
        elif not self._bandwidth.limited("out", self.peer_id):
            self._bandwidth.charge("out", self.peer_id, self.protocol, len(data),
                                   trio.current_time())
            await self._write(data)
        else:
            # Under a limit, a large write goes out a piece at a time as the bucket allows,
            # a steady flow rather than a long pause and then all of it at once.
            view = memoryview(bytes(data))
            for start in range(0, len(view), LIMITED_WRITE_PIECE):
                piece = view[start:start + LIMITED_WRITE_PIECE]
                wait = self._bandwidth.charge("out", self.peer_id, self.protocol, len(piece),
                                              trio.current_time())
                if wait > 0:
                    await trio.sleep(wait)
                await self._write(piece)

    async def _write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._raw.write(bytes(data))
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self._raw.reset()
            if isinstance(exc, Libp2pStreamReset):
                raise StreamReset(f"stream {self.protocol} to {self.peer_id} was reset") from exc
            raise StreamError(f"write on {self.protocol} to {self.peer_id} failed: {exc}") from exc

    async def close_write(self) -> None:
        """Send EOF; reading stays possible."""
        try:
            await self._raw.close_write()
        except Exception as exc:
            raise StreamError(f"closing {self.protocol} to {self.peer_id} failed: {exc}") from exc

    async def close(self) -> None:
        """Finish with the stream (send EOF and release it). Never raises: a stream whose
        connection is already gone is closed too."""
        with contextlib.suppress(Exception):
            await self._raw.close()

    async def reset(self) -> None:
        """Abort both directions; the peer's reads and writes fail. Never raises."""
        with contextlib.suppress(Exception):
            await self._raw.reset()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            await self.close()
        else:
            await self.reset()
