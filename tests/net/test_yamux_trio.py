"""Our Yamux's trio adapter over an in-memory byte pipe: the far end is either another
YamuxConnection or a hand-driven peer that writes raw frames."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamError, MuxedStreamReset

from blockmesh.data.net.yamux import trio_muxer
from blockmesh.data.net.yamux.frame import (
    FLAG_FIN,
    FLAG_SYN,
    HEADER_SIZE,
    TYPE_DATA,
    TYPE_GO_AWAY,
    TYPE_WINDOW_UPDATE,
    decode_header,
    encode_header,
)
from blockmesh.data.net.yamux.session import OPEN_WINDOW
from blockmesh.data.net.yamux.trio_muxer import YamuxConnection
from blockmesh.data.net.yamux.window import INITIAL_WINDOW

WAIT = 10


class _Pipe:
    """The part of a secured connection the muxer uses, over one end of a memory stream."""

    def __init__(self, stream: trio.abc.Stream, initiator: bool) -> None:
        self.stream = stream
        self.is_initiator = initiator

    async def read(self, n: int | None = None) -> bytes:
        return await self.stream.receive_some(n or 65536)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def close(self) -> None:
        await self.stream.aclose()

    def get_remote_address(self) -> None:
        return None


async def _read_frames(stream: trio.abc.Stream, until_type: int) -> list[tuple[int, int, int]]:
    """Raw frames (type, flags, stream id) from the muxer until one of `until_type`."""
    buf, seen = bytearray(), []
    while True:
        chunk = await stream.receive_some(65536)
        assert chunk, "the muxer closed before sending the frame"
        buf += chunk
        while len(buf) >= HEADER_SIZE:
            header = decode_header(bytes(buf[:HEADER_SIZE]))
            size = HEADER_SIZE + (header.length if header.type == TYPE_DATA else 0)
            if len(buf) < size:
                break
            del buf[:size]
            seen.append((header.type, header.flags, header.stream_id))
            if header.type == until_type:
                return seen


async def test_two_connections_carry_a_stream_both_ways_and_eof():
    left, right = trio.testing.memory_stream_pair()
    a = YamuxConnection(_Pipe(left, True), "b", is_initiator=True)  # type: ignore[arg-type]
    b = YamuxConnection(_Pipe(right, False), "a", is_initiator=False)  # type: ignore[arg-type]
    payload = bytes(range(256)) * 4096  # 1 MiB, four initial windows
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.start)
            nursery.start_soon(b.start)
            await a.event_started.wait()
            await b.event_started.wait()
            outbound = await a.open_stream()

            async def write_all() -> None:
                await outbound.write(payload)
                await outbound.close()

            nursery.start_soon(write_all)
            inbound = await b.accept_stream()
            got = bytearray()
            with pytest.raises(MuxedStreamEOF):
                while True:
                    got += await inbound.read(100_000)
            assert got == payload
            await inbound.write(b"thanks")
            assert await outbound.read() == b"thanks"
            await a.close()
            await b.event_closed.wait()  # b saw the connection end
            with pytest.raises(MuxedStreamReset):
                await inbound.write(b"too late")
            nursery.cancel_scope.cancel()
    assert a.is_closed and b.is_closed


async def test_a_frame_past_the_granted_window_ends_the_connection_with_go_away():
    ours, theirs = trio.testing.memory_stream_pair()
    conn = YamuxConnection(_Pipe(ours, False), "peer", is_initiator=False)  # type: ignore[arg-type]
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.start)
            await theirs.send_all(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))
            stream = await conn.accept_stream()
            await theirs.send_all(encode_header(TYPE_DATA, 0, 1, OPEN_WINDOW + 1))
            frames = await _read_frames(theirs, TYPE_GO_AWAY)
            assert frames[-1] == (TYPE_GO_AWAY, 0, 0)
            with pytest.raises(MuxedStreamReset):
                await stream.read()
            await conn.event_closed.wait()
            nursery.cancel_scope.cancel()


async def test_a_write_to_a_window_never_reopened_fails_in_bounded_time(monkeypatch):
    monkeypatch.setattr(trio_muxer, "WINDOW_WAIT", 0.3)
    ours, theirs = trio.testing.memory_stream_pair()
    conn = YamuxConnection(_Pipe(ours, True), "peer", is_initiator=True)  # type: ignore[arg-type]
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.start)
            nursery.start_soon(_drain, theirs)  # reads everything, grants nothing
            await conn.event_started.wait()
            stream = await conn.open_stream()
            with pytest.raises(MuxedStreamError):
                await stream.write(bytes(INITIAL_WINDOW + 1))
            nursery.cancel_scope.cancel()


async def _drain(stream: trio.abc.Stream) -> None:
    while await stream.receive_some(65536):
        pass


async def test_a_reader_and_a_writer_waiting_on_one_stream_both_wake():
    """The writer parks on a shut window while the reader parks on an empty buffer: data must
    wake the reader, and a window update the writer."""
    ours, theirs = trio.testing.memory_stream_pair()
    conn = YamuxConnection(_Pipe(ours, True), "peer", is_initiator=True)  # type: ignore[arg-type]
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.start)
            await conn.event_started.wait()
            stream = await conn.open_stream()
            wrote = trio.Event()

            async def write() -> None:
                await stream.write(bytes(INITIAL_WINDOW + 10))
                wrote.set()

            nursery.start_soon(write)
            nursery.start_soon(_drain, theirs)
            await trio.sleep(0.05)  # the writer is parked on the window now
            with trio.fail_after(2):
                async with trio.open_nursery() as inner:
                    inner.start_soon(stream.read)
                    await trio.sleep(0.05)  # ... and the reader on the empty buffer
                    await theirs.send_all(encode_header(TYPE_DATA, 0, stream.stream_id, 2)
                                          + b"hi")
            assert not wrote.is_set()
            await theirs.send_all(encode_header(TYPE_WINDOW_UPDATE, 0, stream.stream_id, 10))
            with trio.fail_after(2):
                await wrote.wait()
            nursery.cancel_scope.cancel()


async def test_peek_leaves_bytes_take_consumes_exactly_and_wait_for_more_sees_eof():
    """What inbound negotiation relies on: it looks at the buffer, takes only its own bytes,
    and the handler reads the rest."""
    ours, theirs = trio.testing.memory_stream_pair()
    conn = YamuxConnection(_Pipe(ours, False), "peer", is_initiator=False)  # type: ignore[arg-type]
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.start)
            await theirs.send_all(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0)
                                  + encode_header(TYPE_DATA, 0, 1, 5) + b"hello")
            stream = await conn.accept_stream()
            await stream.wait_for_more(0)
            assert stream.peek(100) == b"hello" and stream.peek(3) == b"hel"
            stream.take(2)
            assert stream.peek(100) == b"llo"
            with pytest.raises(ValueError):
                stream.take(4)
            await theirs.send_all(encode_header(TYPE_DATA, FLAG_FIN, 1, 1) + b"!")
            await stream.wait_for_more(3)
            assert await stream.read() == b"llo!"
            with pytest.raises(MuxedStreamEOF):
                await stream.wait_for_more(0)
            nursery.cancel_scope.cancel()
