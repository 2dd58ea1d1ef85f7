"""The Bitswap network adapter: moves bytes between libp2p streams and the sans-I/O engines.

Everything here runs in one trio task tree, so the engines need no locks. Per peer this node
opens its own outbound streams (boxo reads replies only on streams the other side opened), each
with one writer task; every inbound stream gets a reader that feeds decoded messages to the
engines. After every input the outbox is pumped.

Wantlist messages go, in order, on the peer's first stream. Big replies may go on any of up to
`REPLY_STREAMS` streams, opened as replies queue up: a Yamux stream carries at most its receive
window per round trip, and go-yamux starts each stream's window at 256 KiB and
grows it only when the reader drains it within a few RTTs, so one stream to a kubo fetcher
stalls on window updates about once per 256 KiB block. boxo's server never meets this: it
opens a new stream for every reply.

Only replies of at least `SPREAD_MIN_BYTES` spread; smaller ones (presences, batches of small
blocks) stay on the first stream, in the order the server made them. Replies spread over
streams reach the peer out of order, and kubo's recursive pin of 10,000 one-KiB blocks then
stalled until its 30 s rebroadcast in 3 of 7 runs (none in order; docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

import trio

from blockmesh.data.bitswap import PROTOCOL_IDS, Bitswap, BitswapError, Envelope, MessageReader
from blockmesh.data.net import Host, NetError, PeerEvent, Stream

logger = logging.getLogger(__name__)

TICK_INTERVAL = 0.5
OPEN_TIMEOUT = 10.0
REGISTER_WAIT = 10.0
#: Streams per peer that may carry replies at once. With the server's 1 MiB of outstanding
#: bytes per peer, four of go-yamux's 256 KiB starting windows (kubo's) cover it.
REPLY_STREAMS = 4
#: Smallest reply (block and presence bytes) that may leave the first stream: a stream's
#: window is not what limits replies smaller than this.
SPREAD_MIN_BYTES = 64 * 1024


@dataclass
class _Peer:
    stream: Stream | None = None  # the first stream: wantlists, and replies too
    queue: deque[Envelope] = field(default_factory=deque)  # first stream only, in order
    replies: deque[Envelope] = field(default_factory=deque)  # big replies, for any stream
    wake: trio.Event = field(default_factory=trio.Event)  # shared by the peer's writers
    ready: trio.Event = field(default_factory=trio.Event)
    closed: bool = False
    streams: int = 1  # streams open or being opened
    idle: int = 0  # writers waiting for an envelope


class Exchange:
    """Runs Bitswap over a Host. Create it before `host.run()` so identify advertises Bitswap."""

    def __init__(self, host: Host, bitswap: Bitswap) -> None:
        self.host = host
        self.bitswap = bitswap
        self._peers: dict[str, _Peer] = {}
        self._progress = trio.Event()
        self._nursery: trio.Nursery | None = None
        host.set_stream_handler(list(PROTOCOL_IDS), self._serve_inbound)

    # -- lifecycle -------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled: watch peers, tick the engines, pump their outbox."""
        events = self.host.subscribe()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for peer in self.host.peers():
                self._attach_soon(peer)
            nursery.start_soon(self._ticker)
            task_status.started()
            async with events:
                async for event in events:
                    self._on_event(event)

    def _on_event(self, event: PeerEvent) -> None:
        if event.kind == "connected":
            self._attach_soon(event.peer_id)
        else:
            self._detach(event.peer_id)

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(TICK_INTERVAL)
            self.bitswap.tick(trio.current_time())
            self.pump()

    # -- peers -----------------------------------------------------------------------------------
    def _attach_soon(self, peer_id: str) -> _Peer | None:
        """Start opening our stream to a peer (once); its state records when that is done."""
        state = self._peers.get(peer_id)
        if state is None and self._nursery is not None:
            state = _Peer()
            self._peers[peer_id] = state
            self._nursery.start_soon(self._attach, peer_id, state)
        return state

    async def _attach(self, peer_id: str, state: _Peer) -> None:
        try:
            stream = await self.host.new_stream(peer_id, list(PROTOCOL_IDS), timeout=OPEN_TIMEOUT)
        except NetError as exc:
            logger.info("peer %s does not speak Bitswap: %s", peer_id, exc)
            self._peers.pop(peer_id, None)
            state.ready.set()
            return
        if state.closed:
            await stream.reset()
            return
        state.stream = stream
        if not self.bitswap.peer_connected(peer_id, stream.protocol, trio.current_time()):
            logger.warning("refusing peer %s, flagged earlier", peer_id)
            self._peers.pop(peer_id, None)
            state.ready.set()
            await self.host.disconnect(peer_id)
            return
        state.ready.set()
        self.pump()
        await self._writer(peer_id, state, stream, first=True)

    async def _open_reply_stream(self, peer_id: str, state: _Peer) -> None:
        assert state.stream is not None
        try:
            stream = await self.host.new_stream(peer_id, [state.stream.protocol],
                                                timeout=OPEN_TIMEOUT)
        except NetError as exc:  # the first stream still carries everything
            logger.info("no further Bitswap stream to %s: %s", peer_id, exc)
            state.streams -= 1
            return
        if state.closed:
            await stream.reset()
            return
        await self._writer(peer_id, state, stream, first=False)

    def _detach(self, peer_id: str, state: _Peer | None = None) -> None:
        """Forget a peer (its connection closed, or its first stream failed). Given `state`,
        only if that is still the peer's current state: a writer of an earlier connection that
        fails late must not detach the one that replaced it."""
        current = self._peers.get(peer_id)
        if current is None or (state is not None and current is not state):
            return
        del self._peers[peer_id]
        state = current
        state.closed = True
        state.wake.set()
        state.ready.set()
        self.bitswap.peer_disconnected(peer_id, trio.current_time())
        self._signal_progress()
        self.pump()

    async def _writer(self, peer_id: str, state: _Peer, stream: Stream, *, first: bool) -> None:
        envelope: Envelope | None = None
        try:
            while not state.closed:
                envelope = None
                if first and state.queue:
                    envelope = state.queue.popleft()
                elif state.replies:
                    envelope = state.replies.popleft()
                else:
                    # Writers share one event, replaced only once set (replacing it earlier
                    # would strand the others); each re-checks the queues after waking.
                    if state.wake.is_set():
                        state.wake = trio.Event()
                    state.idle += 1
                    try:
                        await state.wake.wait()
                    finally:
                        state.idle -= 1
                    continue
                await stream.write(envelope.data)
                self.bitswap.message_sent(envelope)
                self.pump()
        except NetError as exc:
            if first:
                logger.info("Bitswap stream to %s failed: %s", peer_id, exc)
                self.bitswap.stream_error(peer_id, f"write failed: {exc}", trio.current_time())
                self._detach(peer_id, state)
            else:  # an extra reply stream: its reply goes out on another, the peer stays
                logger.info("a Bitswap reply stream to %s failed: %s", peer_id, exc)
                state.streams -= 1
                if envelope is not None and not state.closed:
                    state.replies.appendleft(envelope)
                    state.wake.set()
        finally:
            await stream.close()

    async def _serve_inbound(self, stream: Stream) -> None:
        peer_id = stream.peer_id
        state = self._attach_soon(peer_id)
        if state is not None:
            with trio.move_on_after(REGISTER_WAIT):
                await state.ready.wait()
        reader = MessageReader(self.bitswap.config)
        while True:
            try:
                data = await stream.read()
            except NetError as exc:  # the peer reset or dropped the stream: nothing to serve
                logger.debug("Bitswap stream from %s ended: %s", peer_id, exc)
                return
            if not data:
                return
            try:
                messages = reader.feed(data)
            except BitswapError as exc:
                logger.warning("bad Bitswap data from %s: %s", peer_id, exc)
                self.bitswap.stream_error(peer_id, str(exc), trio.current_time())
                await stream.reset()
                await self._drop_flagged()
                return
            for message in messages:
                received = self.bitswap.receive(peer_id, message, trio.current_time())
                if received or message.blocks:  # blocks a session took without storing too
                    self._signal_progress()
            self.pump()
            await self._drop_flagged()

    async def _drop_flagged(self) -> None:
        for peer_id in list(self.bitswap.flagged()):
            if self.host.is_connected(peer_id):
                logger.warning("disconnecting %s: %s", peer_id, self.bitswap.flagged()[peer_id])
                self._detach(peer_id)
                await self.host.disconnect(peer_id)

    # -- outbox ----------------------------------------------------------------------------------
    def pump(self) -> None:
        """Hand every envelope the engines produced to its peer's writer."""
        for envelope in self.bitswap.outbox():
            state = self._peers.get(envelope.peer)
            if state is None or state.closed or state.stream is None:
                self.bitswap.message_sent(envelope)  # releases its budget; the peer is gone
                continue
            is_reply = not (envelope.message.entries or envelope.message.full)
            if is_reply and envelope.work >= SPREAD_MIN_BYTES:  # may take any stream
                state.replies.append(envelope)
                if (len(state.replies) > state.idle and state.streams < REPLY_STREAMS
                        and self._nursery is not None):
                    state.streams += 1
                    self._nursery.start_soon(self._open_reply_stream, envelope.peer, state)
            else:
                state.queue.append(envelope)
            state.wake.set()

    # -- waiting for blocks ----------------------------------------------------------------------
    def _signal_progress(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def wait_progress(self, timeout: float) -> bool:
        """Wait until blocks arrive or peers change; False if `timeout` passed first."""
        with trio.move_on_after(timeout):
            await self._progress.wait()
            return True
        return False

    def bitswap_peers(self) -> list[str]:
        return [peer for peer, state in self._peers.items() if state.stream is not None]
