"""DHT messages over libp2p streams: one request (and reply) per outbound stream, many per
inbound stream, every read under a deadline and every frame under the 4 MiB cap.

go-libp2p-kad-dht reuses one stream per peer for its requests and its server reads requests
from a stream until the peer closes it, so the server here loops too; the client opens a fresh
stream per request, which go's server accepts the same way.
"""

from __future__ import annotations

import trio

from blockmesh.data.net import Stream
from blockmesh.data.routing.kad.messages import (
    FrameReader,
    KadDecodeError,
    Message,
    decode_message,
    frame,
)
from blockmesh.errors import BlockmeshError

READ_CHUNK = 64 << 10


class RpcTimeout(BlockmeshError):
    """A DHT peer did not answer within the deadline."""


async def read_message(stream: Stream, reader: FrameReader) -> Message | None:
    """The next message on `stream`, or None at a clean end of stream between messages."""
    pending: list[bytes] = []
    while not pending:
        data = await stream.read(min(READ_CHUNK, reader.want))
        if not data:
            if not reader.idle:
                raise KadDecodeError(f"DHT stream from {stream.peer_id} ended inside a message")
            return None
        pending = reader.feed(data)
    if len(pending) > 1:
        raise KadDecodeError(f"{stream.peer_id} sent a second DHT message before our reply")
    return decode_message(pending[0])


async def request(stream: Stream, msg: Message, *, expect_reply: bool,
                  timeout: float) -> Message | None:
    """Write `msg` and, if asked, read one reply; all within `timeout` seconds."""
    with trio.move_on_after(timeout):
        await stream.write(frame(msg))
        if not expect_reply:
            return None
        reply = await read_message(stream, FrameReader())
        if reply is None:
            raise KadDecodeError(f"{stream.peer_id} closed the DHT stream without a reply")
        return reply
    raise RpcTimeout(f"DHT peer {stream.peer_id} did not answer within {timeout:g} s")
