"""Two blockmesh hosts in one trio run on 127.0.0.1: connect, identify, ping, custom streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair
from libp2p.custom_types import TProtocol
from libp2p.security.noise.transport import PROTOCOL_ID, Transport
from libp2p.stream_muxer.exceptions import MuxedStreamEOF, MuxedStreamReset
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex

from blockmesh.data.net import (
    DialError,
    Host,
    Identity,
    NetConfig,
    NetError,
    NotConnected,
    PeerEvent,
    StreamOpenError,
    StreamReset,
    load_or_create_identity,
)
from blockmesh.data.net.addrs import to_libp2p_id
from blockmesh.data.net.host import PING_PROTOCOL
from blockmesh.data.net.multistream import HEADER, encode_message

ECHO = "/blockmesh/test/echo/1.0.0"
UPPER = "/blockmesh/test/upper/1.0.0"
LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))
WAIT = 10  # seconds any single event may take before the test fails


async def echo(stream) -> None:
    while data := await stream.read():
        await stream.write(data)


async def upper(stream) -> None:
    await stream.write((await stream.read_exactly(5)).upper())


async def exchange(host: Host, peer: str, protocols: list[str], payload: bytes) -> bytes:
    stream = await host.new_stream(peer, protocols)
    async with stream:
        await stream.write(payload)
        await stream.close_write()
        out = bytearray()
        while chunk := await stream.read():
            out += chunk
    return bytes(out)


async def next_event(events: trio.MemoryReceiveChannel[PeerEvent]) -> PeerEvent:
    with trio.fail_after(WAIT):
        return await events.receive()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Host, Host]]:
    a, b = Host(Identity.generate(), LOOPBACK), Host(Identity.generate(), LOOPBACK)
    for host in (a, b):
        host.set_stream_handler([ECHO], echo)
    async with a.run(), b.run():
        yield a, b


async def test_connect_identify_ping_and_streams_both_ways(pair):
    a, b = pair
    a_events, b_events = a.subscribe(), b.subscribe()
    addr = b.addrs()[0]
    assert addr.startswith("/ip4/127.0.0.1/tcp/") and addr.endswith(f"/p2p/{b.peer_id}")

    assert await a.connect(addr) == b.peer_id
    assert await next_event(a_events) == PeerEvent("connected", b.peer_id)
    assert await next_event(b_events) == PeerEvent("connected", a.peer_id)
    assert a.peers() == [b.peer_id] and b.peers() == [a.peer_id]
    assert await a.connect(addr) == b.peer_id  # already connected: no second dial

    for asker, other in ((a, b), (b, a)):
        info = await asker.identify(other.peer_id)
        assert info.peer_id == other.peer_id
        assert {ECHO, PING_PROTOCOL, "/ipfs/id/1.0.0"} <= set(info.protocols)
        assert set(info.protocols) == set(other.protocols())
        assert info.listen_addrs == tuple(x.rsplit("/p2p/", 1)[0] for x in other.addrs())
        assert await asker.ping(other.peer_id) > 0

    payload = bytes(range(256)) * 1000
    assert await exchange(a, b.peer_id, [ECHO], payload) == payload
    assert await exchange(b, a.peer_id, ["/not/served/1.0.0", ECHO], b"back") == b"back"


async def test_unserved_protocol_fails_but_keeps_the_connection(pair):
    a, b = pair
    await a.connect(b.addrs()[0])
    with pytest.raises(StreamOpenError):
        await a.new_stream(b.peer_id, ["/not/served/1.0.0"])
    assert await exchange(a, b.peer_id, [ECHO], b"still fine") == b"still fine"


async def test_handler_added_while_running_is_served_and_advertised(pair):
    a, b = pair
    await a.connect(b.addrs()[0])
    b.set_stream_handler([UPPER], upper)
    assert UPPER in (await a.identify(b.peer_id)).protocols
    assert await exchange(a, b.peer_id, [UPPER], b"hello") == b"HELLO"


async def test_failing_handler_resets_its_stream_only(pair):
    a, b = pair

    async def broken(stream) -> None:
        await stream.read()
        raise RuntimeError("handler bug")

    b.set_stream_handler(["/blockmesh/test/broken/1.0.0"], broken)
    await a.connect(b.addrs()[0])
    stream = await a.new_stream(b.peer_id, ["/blockmesh/test/broken/1.0.0"])
    await stream.write(b"x")
    with pytest.raises(StreamReset), trio.fail_after(WAIT):
        await stream.read()
    assert await exchange(a, b.peer_id, [ECHO], b"alive") == b"alive"
    assert a.peers() == [b.peer_id]


async def test_inbound_streams_per_peer_are_capped():
    limited = NetConfig(listen_addrs=LOOPBACK.listen_addrs, max_inbound_streams_per_peer=2)
    release = trio.Event()

    async def hold(stream) -> None:
        await stream.write(b"in")
        await release.wait()

    a, b = Host(Identity.generate(), LOOPBACK), Host(Identity.generate(), limited)
    b.set_stream_handler(["/blockmesh/test/hold/1.0.0"], hold)
    async with a.run(), b.run():
        await a.connect(b.addrs()[0])
        held = []
        for _ in range(2):
            stream = await a.new_stream(b.peer_id, ["/blockmesh/test/hold/1.0.0"])
            with trio.fail_after(WAIT):
                assert await stream.read() == b"in"
            held.append(stream)
        # The reset may overtake the negotiation reply, failing the open instead of the read.
        with pytest.raises((StreamReset, StreamOpenError)), trio.fail_after(WAIT):
            third = await a.new_stream(b.peer_id, ["/blockmesh/test/hold/1.0.0"])
            await third.read()
        release.set()
        for stream in held:
            with trio.fail_after(WAIT):
                assert await stream.read() == b""
        # The slots are free again.
        fourth = await a.new_stream(b.peer_id, ["/blockmesh/test/hold/1.0.0"])
        with trio.fail_after(WAIT):
            assert await fourth.read() == b"in"


async def test_disconnect_is_reported_and_nothing_redials(pair):
    a, b = pair
    a_events, b_events = a.subscribe(), b.subscribe()
    await a.connect(b.addrs()[0])
    await next_event(a_events)
    await next_event(b_events)
    await a.disconnect(b.peer_id)
    assert await next_event(a_events) == PeerEvent("disconnected", b.peer_id)
    assert await next_event(b_events) == PeerEvent("disconnected", a.peer_id)
    assert a.peers() == [] and b.peers() == []
    with pytest.raises(NotConnected):
        await a.new_stream(b.peer_id, [ECHO])  # no silent redial
    with pytest.raises(NotConnected):
        await a.ping(b.peer_id)
    await a.disconnect(b.peer_id)  # a no-op now
    assert await a.connect(b.addrs()[0]) == b.peer_id  # and reconnecting works at once


async def test_subscriber_that_falls_behind_is_dropped_not_waited_for():
    small = NetConfig(listen_addrs=LOOPBACK.listen_addrs, event_buffer=1)
    a, b = Host(Identity.generate(), small), Host(Identity.generate(), LOOPBACK)
    async with a.run(), b.run():
        slow, witness = a.subscribe(), a.subscribe()
        await a.connect(b.addrs()[0])
        assert await next_event(witness) == PeerEvent("connected", b.peer_id)
        await a.disconnect(b.peer_id)
        # `witness` kept up; the second event found `slow`'s one-slot buffer full.
        assert await next_event(witness) == PeerEvent("disconnected", b.peer_id)
        assert await next_event(slow) == PeerEvent("connected", b.peer_id)
        with pytest.raises(trio.EndOfChannel):
            await next_event(slow)
        fresh = a.subscribe()
        await a.connect(b.addrs()[0])
        assert await next_event(fresh) == PeerEvent("connected", b.peer_id)


async def test_dial_failures_are_typed(pair):
    a, b = pair
    transport = b.addrs()[0].rsplit("/p2p/", 1)[0]
    impostor = Identity.generate().peer_id
    with pytest.raises(DialError, match="does not correspond"):
        await a.connect(f"{transport}/p2p/{impostor}")
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DialError):
        await a.connect(f"/ip4/127.0.0.1/tcp/{port}/p2p/{b.peer_id}")
    with pytest.raises(DialError):
        await a.connect(a.addrs()[0])
    assert a.peers() == []
    assert await a.connect(b.addrs()[0]) == b.peer_id  # no lingering blacklist


async def test_busy_listen_port_is_a_net_error():
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        host = Host(Identity.generate(), NetConfig(listen_addrs=(f"/ip4/127.0.0.1/tcp/{port}",)))
        with pytest.raises(NetError, match="could not listen"):
            async with host.run():
                pytest.fail("the host ran without its listen address")


async def test_identity_persists_across_restarts(tmp_path):
    repo = tmp_path / "repo"
    peer_ids = []
    for _ in range(2):
        host = Host(load_or_create_identity(repo), LOOPBACK)
        async with host.run():
            peer_ids.append(host.peer_id)
            assert host.addrs()[0].endswith(f"/p2p/{host.peer_id}")
    assert peer_ids[0] == peer_ids[1]


async def test_ping_is_answered_on_a_raw_stream(pair):
    a, b = pair
    await a.connect(b.addrs()[0])
    stream = await a.new_stream(b.peer_id, [PING_PROTOCOL])
    async with stream:
        for payload in (bytes(32), bytes(range(32))):  # several pings on one stream
            await stream.write(payload)
            with trio.fail_after(WAIT):
                assert await stream.read_exactly(32) == payload


async def test_mplex_only_peer_gets_the_mplex_fallback(pair):
    # A bare py-libp2p host that offers only mplex stands in for an older implementation.
    a, _ = pair
    other = Identity.generate()
    noise = Transport(other.key_pair(), noise_privkey=create_new_key_pair().private_key)
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
    legacy = new_host(
        key_pair=other.key_pair(),
        sec_opt={PROTOCOL_ID: noise},
        muxer_opt={TProtocol(MPLEX_PROTOCOL_ID): Mplex},
        listen_addrs=listen,
    )

    async def legacy_echo(stream) -> None:
        await stream.write(await stream.read(100))
        await stream.close()

    legacy.set_stream_handler(TProtocol(ECHO), legacy_echo)
    async with legacy.run(listen):
        await a.connect(str(legacy.get_addrs()[0]))
        conn = legacy.get_network().get_connections()[0]
        assert type(conn.muxed_conn).__name__ == "Mplex"
        stream = await a.new_stream(other.peer_id, [ECHO])
        async with stream:
            await stream.write(b"over mplex")
            with trio.fail_after(WAIT):
                assert await stream.read_exactly(10) == b"over mplex"
        assert await a.ping(other.peer_id) > 0


HOLD = "/blockmesh/test/hold/1.0.0"


async def test_write_past_the_window_waits_for_the_reader_and_arrives_whole():
    """A 3 MiB write, twelve times Yamux's first window, through our Yamux to a
    reader that starts late arrives whole and in order."""
    received = bytearray()
    release = trio.Event()
    done = trio.Event()

    async def slow_reader(stream) -> None:
        await release.wait()
        while chunk := await stream.read():
            received.extend(chunk)
        done.set()

    a, b = Host(Identity.generate(), LOOPBACK), Host(Identity.generate(), LOOPBACK)
    b.set_stream_handler([HOLD], slow_reader)
    payload = bytes(i % 251 for i in range(3 * 1024 * 1024))
    async with a.run(), b.run():
        await a.connect(b.addrs()[0])
        stream = await a.new_stream(b.peer_id, [HOLD])
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.write, payload)
                await trio.sleep(0.2)  # the writer runs ahead of the reader
                release.set()
            await stream.close_write()
            await done.wait()
    assert bytes(received) == payload


class _Recorder:
    """A swarm notifee that writes down which events reach it."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[None]]:
        async def record(*_args: object) -> None:
            self.seen.append(name)
        return record


async def test_connection_events_reach_notifees_and_stream_events_are_not_fanned_out(pair):
    """Each stream event cost a task per notifee (boxo opens a stream per reply); none of the
    notifees acts on them, so only connection and listen events are fanned out."""
    a, b = pair
    recorder = _Recorder()
    b._running().get_network().register_notifee(recorder)  # type: ignore[arg-type]
    await a.connect(b.addrs()[0])
    for i in range(5):
        assert await exchange(a, b.peer_id, [ECHO], b"%d" % i) == b"%d" % i
    with trio.fail_after(WAIT):
        while "connected" not in recorder.seen:
            await trio.sleep(0.01)
    assert "opened_stream" not in recorder.seen and "closed_stream" not in recorder.seen


async def _raw_exchange(a: Host, b: Host, wire: bytes) -> bytes:
    """Open a bare Yamux stream from `a` to `b`, write `wire` at once (as go's lazy dialer
    does: header, proposal and data before any answer), half-close, read everything back."""
    conn = a._running().get_network().get_connections(to_libp2p_id(b.peer_id))[0]
    stream = await conn.muxed_conn.open_stream()
    await stream.write(wire)
    await stream.close()
    out = bytearray()
    with trio.fail_after(WAIT):
        while True:
            try:
                out += await stream.read()
            except MuxedStreamEOF:
                return bytes(out)


async def test_a_lazy_dialer_is_answered_and_its_data_reaches_the_handler(pair):
    a, b = pair
    await a.connect(b.addrs()[0])
    header, echo_id = encode_message(HEADER), encode_message(ECHO)
    assert await _raw_exchange(a, b, header + echo_id + b"lazy") == header + echo_id + b"lazy"
    refused = encode_message("/not/served/1.0.0")
    assert await _raw_exchange(a, b, header + refused + echo_id + b"2nd") == (
        header + encode_message("na") + echo_id + b"2nd")
    with pytest.raises(MuxedStreamReset):  # garbage: that stream is reset, nothing else
        await _raw_exchange(a, b, b"\x03bad")
    assert await exchange(a, b.peer_id, [ECHO], b"still fine") == b"still fine"
