"""The multistream-select listener engine (blockmesh.data.net.multistream), without I/O: lazy
and interactive dialers, refusals, `ls`, any split of the byte stream, and broken dialers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockmesh.data.net.multistream import (
    HEADER,
    MAX_MESSAGE,
    MAX_PROPOSALS,
    Listener,
    MultistreamError,
    Step,
    encode_message,
)

BITSWAP = "/ipfs/bitswap/1.2.0"
SERVED = [BITSWAP, "/ipfs/id/1.0.0"]


def _run(listener: Listener, wire: bytes, cuts: list[int]) -> tuple[bytes, str | None, bytes]:
    """Deliver `wire` in pieces as a stream buffer would: what the listener answered, the
    protocol chosen, and what it left for the handler."""
    points = sorted({c % (len(wire) + 1) for c in cuts} | {len(wire)})
    buffered = b""
    answered = b""
    start = 0
    for end in points:
        buffered += wire[start:end]
        start = end
        step = listener.feed(buffered)
        buffered = buffered[step.consumed:]
        answered += step.reply
        if step.protocol is not None:
            return answered, step.protocol, buffered + wire[start:]
    return answered, None, buffered


def test_a_lazy_dialer_gets_header_and_echo_in_one_answer_and_keeps_its_data():
    wire = encode_message(HEADER) + encode_message(BITSWAP) + b"\x05hello"
    step = Listener(SERVED).feed(wire)
    assert step.protocol == BITSWAP
    assert step.reply == encode_message(HEADER) + encode_message(BITSWAP)
    assert wire[step.consumed:] == b"\x05hello"  # the protocol's first bytes stay buffered


def test_an_interactive_dialer_gets_the_header_before_proposing():
    listener = Listener(SERVED)
    first = listener.feed(encode_message(HEADER))
    assert first == Step(len(encode_message(HEADER)), encode_message(HEADER), None)
    second = listener.feed(encode_message("/nope/1.0.0"))
    assert second.reply == encode_message("na") and second.protocol is None
    third = listener.feed(encode_message(BITSWAP))
    assert third.protocol == BITSWAP and third.reply == encode_message(BITSWAP)


def test_ls_lists_every_protocol_served_as_go_multistream_does():
    listener = Listener(SERVED)
    step = listener.feed(encode_message(HEADER) + encode_message("ls"))
    inner = b"".join(encode_message(p) for p in sorted(SERVED)) + b"\n"
    assert step.reply == encode_message(HEADER) + bytes([len(inner)]) + inner


@settings(max_examples=200)
@given(st.lists(st.integers(0, 200), max_size=8), st.binary(max_size=40))
def test_any_split_of_the_byte_stream_negotiates_the_same(cuts, payload):
    wire = (encode_message(HEADER) + encode_message("/other/1") + encode_message(BITSWAP)
            + payload)
    answered, protocol, rest = _run(Listener(SERVED), wire, cuts)
    assert protocol == BITSWAP
    assert answered == encode_message(HEADER) + encode_message("na") + encode_message(BITSWAP)
    assert rest == payload


@pytest.mark.parametrize("wire", [
    encode_message("/multistream/2.0.0"),  # wrong header
    b"\x80\x80\x01",  # length varint longer than any allowed message
    bytes([0x81, 0x00]) + b"x",  # non-minimal varint
    b"\x00",  # empty message
    bytes([0x81, 0x10]) + b"a" * 2049,  # too long
    b"\x03abc",  # no newline
    b"\x03\xff\xfe\n",  # not UTF-8
])
def test_a_broken_dialer_gets_a_typed_error(wire):
    with pytest.raises(MultistreamError):
        Listener(SERVED).feed(wire)


def test_a_message_of_max_length_is_read_and_one_byte_more_is_refused():
    longest = "/" + "p" * (MAX_MESSAGE - 2)
    step = Listener([longest]).feed(encode_message(HEADER) + encode_message(longest))
    assert step.protocol == longest
    with pytest.raises(MultistreamError):
        Listener(SERVED).feed(encode_message(HEADER) + encode_message(longest + "p"))


def test_refusals_are_bounded():
    listener = Listener(SERVED)
    listener.feed(encode_message(HEADER))
    for _ in range(MAX_PROPOSALS):
        assert listener.feed(encode_message("/nope/1")).reply == encode_message("na")
    with pytest.raises(MultistreamError):
        listener.feed(encode_message("/nope/1"))


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_garbage_either_waits_for_more_or_fails_with_a_typed_error(data):
    listener = Listener(SERVED)
    try:
        step = listener.feed(data)
    except MultistreamError:
        return
    assert 0 <= step.consumed <= len(data)
