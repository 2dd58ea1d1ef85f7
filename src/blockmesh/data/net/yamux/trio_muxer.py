"""The trio adapter that puts `session.Session` behind py-libp2p 0.8.1's muxer interfaces.

py-libp2p builds the muxer for `/yamux/1.0.0` as `Yamux(secured_conn, peer_id, is_initiator=,
on_close=)` (its `MuxerMultistream.new_conn` names its own class, ignoring the muxer options),
so `host.py` puts `YamuxConnection` in that module's namespace. Everything else py-libp2p uses
is the `IMuxedConn` / `IMuxedStream` interface plus the `on_close` hook its SwarmConn sets.

Under Noise, the socket itself is read and written (`noise_wire`), not py-libp2p's layers.
Tasks per connection: one reader (reads whole Noise messages, feeds them to the engine, wakes
the streams the engine says changed), one writer (writes every queued frame in one call, so
many frames share one `write`, and Noise cuts it into as few messages as it can), one
keep-alive (a PING every 30 s as go-yamux does; its answer also gives the RTT that lets
receive windows grow). Applications' writes queue into the engine and wait only when the
stream's send window is shut or more than `HIGH_WATER` bytes wait for the socket.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from libp2p.abc import IMuxedConn, IMuxedStream, ISecureConn
from libp2p.peer.id import ID
from libp2p.stream_muxer.exceptions import (
    MuxedConnUnavailable,
    MuxedStreamClosed,
    MuxedStreamEOF,
    MuxedStreamError,
    MuxedStreamReset,
)

from blockmesh.data.net.errors import StreamError, StreamReset
from blockmesh.data.net.yamux.frame import GO_AWAY_NORMAL, YamuxProtocolError
from blockmesh.data.net.yamux.noise_wire import NoiseWire
from blockmesh.data.net.yamux.session import Session, SessionClosed, YamuxStream

logger = logging.getLogger(__name__)

HIGH_WATER = 1024 * 1024  # queued outgoing bytes beyond which writers wait for the socket
KEEPALIVE_INTERVAL = 30.0  # go-yamux's default
KEEPALIVE_TIMEOUT = 60.0  # a connection whose pings go unanswered this long is closed
WINDOW_WAIT = 30.0  # a write facing a shut window this long fails (and stream.py resets)
CLOSE_FLUSH = 1.0  # how long a closing connection tries to send its GO_AWAY


class YamuxConnection(IMuxedConn):
    """One Yamux connection over a secured (Noise) connection."""

    def __init__(self, secured_conn: ISecureConn, peer_id: ID, is_initiator: bool | None = None,
                 on_close: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.secured_conn = secured_conn
        self.peer_id = peer_id
        self.on_close = on_close
        self._initiator = secured_conn.is_initiator if is_initiator is None else is_initiator
        self.session = Session(client=self._initiator)
        self.event_started = trio.Event()
        self.event_closed = trio.Event()
        self._closing = False
        self._send_ready = trio.Event()
        self._drained = trio.Event()
        self._accept_ready = trio.Event()
        self._pong = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._wire: NoiseWire | None = None

    # --- IMuxedConn ---------------------------------------------------------------------------

    @property
    def is_initiator(self) -> bool:
        return self._initiator

    @property
    def is_established(self) -> bool:
        return self.event_started.is_set() and not self._closing

    @property
    def is_closed(self) -> bool:
        return self.event_closed.is_set()

    def get_transport_addresses(self) -> list[Any]:
        return self.secured_conn.get_transport_addresses()

    def get_connection_type(self) -> Any:
        return self.secured_conn.get_connection_type()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self.secured_conn.get_remote_address()

    def rtt(self) -> float:
        return self.session.rtt

    async def start(self) -> None:
        """Run the connection until it ends (py-libp2p runs this as a task)."""
        if self.event_started.is_set():
            return
        self._wire = NoiseWire.take_over(self.secured_conn)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._writer)
            nursery.start_soon(self._keepalive)
            self.event_started.set()
            await self._reader()
            nursery.cancel_scope.cancel()
        await self.close()

    async def open_stream(self) -> IMuxedStream:
        if self._closing:
            raise MuxedStreamError("the yamux connection is closed")
        try:
            state = self.session.open_stream()
        except SessionClosed as exc:
            raise MuxedStreamError(str(exc)) from exc
        self._kick()
        return TrioYamuxStream(self, state)

    async def accept_stream(self) -> IMuxedStream:
        while True:
            state = self.session.accept()
            if state is not None:
                return TrioYamuxStream(self, state)
            if self._closing:
                raise MuxedConnUnavailable("the yamux connection is closed")
            self._accept_ready = trio.Event()
            await self._accept_ready.wait()

    async def close(self) -> None:
        """GO_AWAY (sent within `CLOSE_FLUSH`), then close the secured connection."""
        if self._closing:
            await self.event_closed.wait()
            return
        self._closing = True
        self.session.go_away(GO_AWAY_NORMAL)
        self._kick()
        with trio.move_on_after(CLOSE_FLUSH):
            while self.session.outgoing_bytes and self._nursery is not None \
                    and not self._nursery.cancel_scope.cancel_called:
                await self._wait_drained_event()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        try:
            await self.secured_conn.close()
        except Exception as exc:  # the socket may already be gone
            logger.debug("closing the secured connection to %s: %s", self.peer_id, exc)
        self.session.abort()
        self._wake_streams()
        self._accept_ready.set()
        self._drained.set()
        self.event_closed.set()
        if self.on_close is not None:
            await self.on_close()

    # --- tasks --------------------------------------------------------------------------------

    async def _read(self) -> list[bytes]:
        if self._wire is not None:
            return await self._wire.read()
        data = await self.secured_conn.read()
        return [data] if data else []

    async def _reader(self) -> None:
        session = self.session
        while True:
            try:
                chunks = await self._read()
            except Exception as exc:  # closed or broken: the connection ends here
                logger.debug("yamux connection to %s ended: %s", self.peer_id, exc)
                return
            if not chunks:
                return
            try:
                now = trio.current_time()
                for data in chunks:
                    session.receive(data, now)
            except YamuxProtocolError as exc:
                logger.warning("closing the connection to %s: %s", self.peer_id, exc)
                self._kick()
                with trio.move_on_after(CLOSE_FLUSH):
                    await self._wait_drained_event()
                return
            self._wake_streams()
            if session.accept_queue:
                self._accept_ready.set()
            if session.outgoing_bytes:
                self._send_ready.set()

    async def _writer(self) -> None:
        session = self.session
        while True:
            await self._send_ready.wait()
            self._send_ready = trio.Event()
            data = session.take_outgoing()
            if data:
                try:
                    if self._wire is not None:
                        await self._wire.write(data)
                    else:
                        await self.secured_conn.write(data)
                except Exception as exc:
                    logger.debug("yamux write to %s failed: %s", self.peer_id, exc)
                    self._drained.set()
                    assert self._nursery is not None
                    self._nursery.cancel_scope.cancel()  # start() then closes the connection
                    return
            if not session.outgoing_bytes:
                self._drained.set()

    async def _keepalive(self) -> None:
        while True:
            self._pong = trio.Event()
            sent = trio.current_time()
            self.session.ping(sent)
            self._kick()
            with trio.move_on_after(KEEPALIVE_TIMEOUT):
                while self.session.last_pong < sent:
                    self._pong = trio.Event()
                    await self._pong.wait()
                await trio.sleep(KEEPALIVE_INTERVAL)
                continue
            logger.warning("no yamux pong from %s in %g s; closing", self.peer_id,
                           KEEPALIVE_TIMEOUT)
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()
            return

    # --- helpers ------------------------------------------------------------------------------

    def _kick(self) -> None:
        if self.session.outgoing_bytes:
            self._send_ready.set()

    def _wake_streams(self) -> None:
        for state in self.session.take_touched():
            stream = state.user
            if isinstance(stream, TrioYamuxStream):
                stream._changed.set()
        if self.session.pong_received:
            self.session.pong_received = False
            self._pong.set()

    async def _wait_drained(self) -> None:
        """Wait while more than HIGH_WATER bytes are queued for the socket."""
        while self.session.outgoing_bytes > HIGH_WATER and not self._closing:
            await self._wait_drained_event()

    async def _wait_drained_event(self) -> None:
        # Several tasks may wait at once: they share one event (replacing it would strand
        # the earlier waiters); each re-checks its own condition after waking.
        if self._drained.is_set():
            self._drained = trio.Event()
        await self._drained.wait()


class TrioYamuxStream(IMuxedStream):
    """One stream; use it from one reader and one writer task at a time."""

    def __init__(self, conn: YamuxConnection, state: YamuxStream) -> None:
        self.muxed_conn = conn
        self._conn = conn
        self._state = state
        self._changed = trio.Event()
        state.user = self

    @property
    def stream_id(self) -> int:
        return self._state.id

    @property
    def is_closed(self) -> bool:
        state = self._state
        return state.reset or (state.local_fin and state.remote_fin)

    async def _wait_change(self) -> None:
        # The stream's reader and writer may wait at once (data, window): one shared event,
        # replaced only once set, wakes both; each re-checks what it waits for.
        if self._changed.is_set():
            self._changed = trio.Event()
        await self._changed.wait()

    async def read(self, n: int | None = None) -> bytes:
        """What is buffered, up to `n` bytes, once there is any; MuxedStreamEOF after the
        peer's FIN, MuxedStreamReset after a reset or when the connection died."""
        state = self._state
        conn = self._conn
        while not state.chunks:
            if state.reset:
                raise MuxedStreamReset(f"yamux stream {state.id} was reset")
            if state.remote_fin:
                raise MuxedStreamEOF(f"yamux stream {state.id} closed by the peer")
            await self._wait_change()
        data = conn.session.read(state, state.buffered if n is None or n < 0 else n,
                                 now=trio.current_time())
        conn._kick()
        return data

    def peek(self, limit: int) -> bytes:
        """Up to `limit` of the buffered bytes, left in the buffer: multistream negotiation
        looks at what arrived and `take`s only its own messages, so the protocol's bytes that
        came with them (often a whole 256 KiB block) stay for its handler, uncopied."""
        parts: list[bytes] = []
        size = 0
        for chunk in self._state.chunks:
            if size >= limit:
                break
            parts.append(chunk)
            size += len(chunk)
        joined = b"".join(parts)
        return joined[:limit] if size > limit else joined

    def take(self, n: int) -> None:
        """Consume exactly `n` of the buffered bytes, granting window as `read` does."""
        state = self._state
        if not 0 <= n <= state.buffered:
            raise ValueError(f"cannot take {n} of {state.buffered} buffered bytes")
        session = self._conn.session
        now = trio.current_time()
        while n:
            n -= len(session.read(state, n, now=now))
        self._conn._kick()

    async def wait_for_more(self, than: int) -> None:
        """Wait until more than `than` bytes are buffered; MuxedStreamEOF or MuxedStreamReset
        if the stream ends first."""
        state = self._state
        while state.buffered <= than:
            if state.reset:
                raise MuxedStreamReset(f"yamux stream {state.id} was reset")
            if state.remote_fin:
                raise MuxedStreamEOF(f"yamux stream {state.id} closed by the peer")
            await self._wait_change()

    async def write(self, data: bytes) -> None:
        state = self._state
        conn = self._conn
        session = conn.session
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            if state.send_window <= 0 and not state.reset:
                with trio.move_on_after(WINDOW_WAIT):
                    while state.send_window <= 0 and not state.reset:
                        await self._wait_change()
                if state.send_window <= 0 and not state.reset:
                    raise MuxedStreamError(f"no yamux window update for {WINDOW_WAIT:g} s")
            try:
                sent += session.send(state, view[sent:] if sent else data)
            except StreamReset as exc:
                raise MuxedStreamReset(str(exc)) from exc
            except StreamError as exc:
                raise MuxedStreamClosed(str(exc)) from exc
            conn._kick()
            if session.outgoing_bytes > HIGH_WATER:
                await conn._wait_drained()

    async def close(self) -> None:
        """Half-close (FIN), as every py-libp2p muxer does; reading stays possible."""
        self._conn.session.close_write(self._state)
        self._conn._kick()
        await trio.lowlevel.checkpoint()

    async def close_write(self) -> None:
        await self.close()

    async def reset(self) -> None:
        self._conn.session.reset(self._state)
        self._conn._kick()
        await trio.lowlevel.checkpoint()

    def set_deadline(self, ttl: int) -> None:
        raise NotImplementedError("yamux streams have no deadlines; use trio cancel scopes")

    def get_remote_address(self) -> tuple[str, int] | None:
        return self._conn.get_remote_address()

    async def __aenter__(self) -> TrioYamuxStream:
        return self
