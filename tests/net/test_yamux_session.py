"""Our Yamux engine (blockmesh.data.net.yamux), without I/O: two sessions wired back to back,
random interleavings of application calls and of how the byte stream is cut."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockmesh.data.net.errors import StreamReset
from blockmesh.data.net.yamux.frame import (
    FLAG_ACK,
    FLAG_FIN,
    FLAG_RST,
    FLAG_SYN,
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
from blockmesh.data.net.yamux.session import (
    MAX_QUEUED_REPLIES,
    OPEN_WINDOW,
    OPEN_WINDOW_STREAMS,
    Session,
)
from blockmesh.data.net.yamux.window import INITIAL_WINDOW, MAX_WINDOW

_PATTERN = bytes(range(256)) * (400_000 // 256 + 2)


def _frames(wire: bytes) -> list[tuple[Header, bytes]]:
    out, pos = [], 0
    while pos < len(wire):
        header = decode_header(wire, pos)
        pos += HEADER_SIZE
        size = header.length if header.type == TYPE_DATA else 0
        out.append((header, wire[pos:pos + size]))
        pos += size
    return out


def _deliver(wire: bytes, to: Session, cuts: list[int], now: float = 0.0) -> None:
    """Feed `wire` to `to` cut at the given offsets (any split must parse the same)."""
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    for start, end in itertools.pairwise(points):
        to.receive(wire[start:end], now)


def test_header_round_trip_and_layout():
    raw = encode_header(TYPE_DATA, FLAG_SYN | FLAG_FIN, 7, 1234)
    assert raw == struct.pack(">BBHII", 0, 0, 5, 7, 1234)
    assert decode_header(raw) == Header(TYPE_DATA, 5, 7, 1234)


@pytest.mark.parametrize("raw", [
    struct.pack(">BBHII", 1, TYPE_DATA, 0, 1, 0),  # version 1
    struct.pack(">BBHII", 0, 9, 0, 1, 0),  # no such type
    struct.pack(">BBHII", 0, TYPE_PING, FLAG_SYN, 3, 0),  # ping on a stream
    struct.pack(">BBHII", 0, TYPE_GO_AWAY, 0, 5, 0),
    struct.pack(">BBHII", 0, TYPE_DATA, 0, 0, 4),  # data on the session id
])
def test_bad_headers_are_typed_protocol_errors(raw):
    with pytest.raises(YamuxProtocolError):
        decode_header(raw)


@settings(max_examples=500)
@given(st.binary(min_size=0, max_size=200), st.lists(st.integers(0, 200), max_size=6))
def test_any_bytes_either_parse_or_fail_with_a_protocol_error(data, cuts):
    """Fuzz: arbitrary input never raises anything but YamuxProtocolError and never buffers
    past what was granted."""
    session = Session(client=True)
    try:
        _deliver(data, session, cuts)
    except YamuxProtocolError:
        assert session.local_go_away == 1  # GO_AWAY(protocol error) is queued
        return
    for stream in session.streams.values():
        assert stream.buffered + stream.credit <= MAX_WINDOW
        assert stream.buffered <= OPEN_WINDOW


def test_ping_is_answered_and_our_ping_measures_the_rtt():
    a, b = Session(client=True), Session(client=False)
    nonce = a.ping(now=1.0)
    b.receive(a.take_outgoing(), 1.0)
    [(header, _)] = _frames(b.take_outgoing())
    assert header == Header(TYPE_PING, FLAG_ACK, 0, nonce)
    a.receive(encode_header(TYPE_PING, FLAG_ACK, 0, nonce), 1.25)
    assert a.rtt == pytest.approx(0.25)
    assert a.pong_received


def test_a_peer_that_pings_and_never_reads_gets_a_bounded_queue_of_answers():
    session = Session(client=False)
    pings = b"".join(encode_header(TYPE_PING, FLAG_SYN, 0, n)
                     for n in range(3 * MAX_QUEUED_REPLIES))
    session.receive(pings, 0.0)
    assert len(_frames(session.take_outgoing())) == MAX_QUEUED_REPLIES
    session.receive(encode_header(TYPE_PING, FLAG_SYN, 0, 7), 1.0)  # the socket took them: again
    assert len(_frames(session.take_outgoing())) == 1


def test_frame_over_the_granted_window_closes_the_connection():
    a = Session(client=False)
    a.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0), 0.0)
    with pytest.raises(YamuxProtocolError):
        a.receive(encode_header(TYPE_DATA, 0, 1, OPEN_WINDOW + 1), 0.0)
    frames = _frames(a.take_outgoing())
    assert frames[-1][0] == Header(TYPE_GO_AWAY, 0, 0, 1)
    assert a.streams[1].buffered == 0


def test_syn_and_ack_announce_the_open_window_so_a_block_reply_needs_no_update():
    """boxo writes each reply on a new stream: one 256 KiB block plus its framing must fit in
    what the SYN/ACK exchange grants, or every reply waits a round trip for our update."""
    a, b = Session(client=True), Session(client=False)
    opened = a.open_stream()
    [(syn, _)] = _frames(a.take_outgoing())
    assert syn == Header(TYPE_WINDOW_UPDATE, FLAG_SYN, opened.id, OPEN_WINDOW - INITIAL_WINDOW)
    b.receive(encode_header(*syn), 0.0)
    accepted = b.accept()
    assert accepted is not None and accepted.send_window == OPEN_WINDOW
    [(ack, _)] = _frames(b.take_outgoing())
    assert ack == Header(TYPE_WINDOW_UPDATE, FLAG_ACK, opened.id, OPEN_WINDOW - INITIAL_WINDOW)
    a.receive(encode_header(*ack), 0.0)
    reply = bytes(INITIAL_WINDOW + 64)  # a 256 KiB block in its Bitswap message
    assert a.send(opened, reply) == len(reply)
    b.receive(a.take_outgoing(), 0.0)
    assert b.read(accepted, len(reply), now=0.0) == reply


def test_only_the_first_streams_open_at_a_time_get_the_larger_window():
    """The larger start is bounded: a peer opening many streams gets the spec's 256 KiB on
    every stream past OPEN_WINDOW_STREAMS, so what it can make us buffer grows by 16 MiB."""
    session = Session(client=False)
    acks = []
    for stream_id in range(1, 4 * OPEN_WINDOW_STREAMS + 3, 2):  # 2 x OPEN_WINDOW_STREAMS + 1
        session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, stream_id, 0), 0.0)
        acks += [h.length for h, _ in _frames(session.take_outgoing())]
    extra = OPEN_WINDOW - INITIAL_WINDOW
    assert acks == [extra] * OPEN_WINDOW_STREAMS + [0] * (OPEN_WINDOW_STREAMS + 1)
    assert [s.credit for s in session.streams.values()][-1] == INITIAL_WINDOW


def test_open_window_must_lie_between_the_initial_and_the_maximum_window():
    with pytest.raises(ValueError):
        Session(client=True, open_window=INITIAL_WINDOW - 1)
    with pytest.raises(ValueError):
        Session(client=True, max_window=INITIAL_WINDOW, open_window=OPEN_WINDOW)


def test_syn_with_our_parity_or_for_a_live_stream_is_a_protocol_error():
    with pytest.raises(YamuxProtocolError):
        Session(client=True).receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0), 0.0)
    session = Session(client=False)
    session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0), 0.0)
    with pytest.raises(YamuxProtocolError):
        session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0), 0.0)


def test_accept_backlog_is_bounded_and_the_extra_stream_is_refused():
    session = Session(client=False, accept_backlog=2)
    for stream_id in (1, 3, 5):
        session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, stream_id, 0), 0.0)
    assert [s.id for s in session.accept_queue] == [1, 3]
    assert (Header(TYPE_WINDOW_UPDATE, FLAG_RST, 5, 0), b"") in _frames(session.take_outgoing())


def test_streams_per_connection_are_capped_half_closed_ones_included():
    session = Session(client=False, max_streams=2)
    for stream_id in (1, 3):
        session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, stream_id, 0), 0.0)
        stream = session.accept()
        assert stream is not None
        session.close_write(stream)  # our side done, the peer's still open
    session.take_outgoing()
    session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 5, 0), 0.0)
    assert session.accept() is None
    assert _frames(session.take_outgoing()) == [(Header(TYPE_WINDOW_UPDATE, FLAG_RST, 5, 0), b"")]
    session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_FIN, 1, 0), 0.0)  # 1 fully closed
    session.receive(encode_header(TYPE_WINDOW_UPDATE, FLAG_SYN, 7, 0), 0.0)
    assert session.accept() is not None


def test_reset_drops_buffered_data_and_later_frames_are_discarded():
    a, b = Session(client=True), Session(client=False)
    stream = a.open_stream()
    a.send(stream, b"x" * 1000)
    b.receive(a.take_outgoing(), 0.0)
    remote = b.accept()
    assert remote is not None and remote.buffered == 1000
    a.reset(stream)
    a.receive(b.take_outgoing(), 0.0)  # b's ACK for a stream a already reset: ignored
    b.receive(a.take_outgoing(), 0.0)
    assert remote.reset and remote.buffered == 0 and not remote.chunks
    with pytest.raises(StreamReset):
        a.send(stream, b"more")
    b.receive(encode_header(TYPE_DATA, 0, 1, 3) + b"abc", 0.0)  # a late frame: discarded
    assert not remote.chunks


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["write", "read", "pump"]), st.integers(0, 1),
                       st.integers(1, 400_000)), min_size=1, max_size=60),
    st.lists(st.integers(0, 1 << 20), max_size=4),
)
def test_random_interleavings_deliver_every_byte_once_in_order_within_windows(ops, cuts):
    """Two streams in each direction: whatever the order of writes, reads and deliveries, and
    however the wire is cut, the receiver gets each stream's bytes exactly once and in order,
    and never holds more than it granted."""
    a, b = Session(client=True), Session(client=False)
    streams_a = [a.open_stream(), a.open_stream()]
    b.receive(a.take_outgoing(), 0.0)
    streams_b = [b.accept(), b.accept()]
    assert None not in streams_b
    sent = [bytearray(), bytearray()]
    received = [bytearray(), bytearray()]
    counter = 0
    clock = 0.0

    def pump() -> None:
        wire = a.take_outgoing()
        if wire:
            _deliver(wire, b, cuts, clock)
        back = b.take_outgoing()
        if back:
            a.receive(back, clock)

    for op, which, size in ops:
        clock += 0.001
        if op == "write":
            start = counter % 256
            payload = _PATTERN[start:start + size]
            counter += size
            accepted = a.send(streams_a[which], payload)
            assert accepted == min(size, streams_a[which].send_window + accepted)
            sent[which] += payload[:accepted]
        elif op == "read":
            received[which] += b.read(streams_b[which], size, now=clock)
        else:
            pump()
        for mine, theirs in zip(streams_a, streams_b, strict=True):
            assert theirs.buffered + theirs.credit <= MAX_WINDOW
            assert theirs.buffered == sum(len(c) for c in theirs.chunks)
            assert mine.send_window >= 0
    # Drain everything.
    for _ in range(200):
        pump()
        for which in (0, 1):
            received[which] += b.read(streams_b[which], 1 << 24, now=clock)
        if all(len(r) == len(s) for r, s in zip(received, sent, strict=True)):
            break
    assert received == sent


def test_fin_arrives_after_the_payload_and_both_fins_forget_the_stream():
    a, b = Session(client=True), Session(client=False)
    stream = a.open_stream()
    a.send(stream, b"hello")
    a.close_write(stream)
    b.receive(a.take_outgoing(), 0.0)
    remote = b.accept()
    assert remote is not None and remote.remote_fin
    assert b.read(remote, 100, now=0.0) == b"hello"
    b.close_write(remote)
    assert remote.id not in b.streams
    a.receive(b.take_outgoing(), 0.0)
    assert stream.remote_fin and stream.id not in a.streams


def test_window_updates_are_batched_until_half_the_window_is_read():
    a, b = Session(client=True), Session(client=False)
    stream = a.open_stream()
    b.receive(a.take_outgoing(), 0.0)
    remote = b.accept()
    a.receive(b.take_outgoing(), 0.0)  # the ACK, with the rest of the open window
    a.send(stream, bytes(OPEN_WINDOW))
    b.receive(a.take_outgoing(), 0.0)
    assert stream.send_window == 0
    updates = []
    for _ in range(16):
        b.read(remote, OPEN_WINDOW // 16, now=0.0)
        updates += [h for h, _ in _frames(b.take_outgoing()) if h.type == TYPE_WINDOW_UPDATE]
    # One update per half window read, not one per read (py-libp2p sent sixteen here).
    assert [h.length for h in updates] == [OPEN_WINDOW // 2] * 2
