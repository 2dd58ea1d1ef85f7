"""Unit and property tests of the I/O-free parts: framing, handshake, call guard, pacing, state."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import state
from blockmesh.control.transport.config import TransportConfig
from blockmesh.control.transport.errors import AuthenticationError, FrameTooLarge
from blockmesh.control.transport.framing import Frame, FrameDecoder, Kind, encode
from blockmesh.control.transport.handshake import (
    CALL_WINDOW,
    CallGuard,
    Initiator,
    Responder,
    call_transcript,
    new_nonce,
)
from blockmesh.control.transport.limits import Backoff, TokenBucket
from blockmesh.errors import DecodeError

frames_strategy = st.lists(
    st.tuples(st.sampled_from(list(Kind)), st.integers(0, 2**32 - 1), st.binary(max_size=300)),
    max_size=20,
)


@given(frames_strategy, st.lists(st.integers(1, 64), min_size=1, max_size=50))
def test_frames_survive_any_split_of_the_stream(frames: list, cuts: list[int]) -> None:
    wire = b"".join(encode(kind, call_id, body, 1024) for kind, call_id, body in frames)
    decoder = FrameDecoder(1024)
    out: list[Frame] = []
    pos = 0
    for cut in cuts * (len(wire) // max(sum(cuts), 1) + 1):
        out += decoder.feed(wire[pos : pos + cut])
        pos += cut
        if pos >= len(wire):
            break
    out += decoder.feed(wire[pos:])
    assert out == [Frame(int(k), c, b) for k, c, b in frames]
    assert decoder.buffered == 0


@given(st.binary(max_size=2000))
def test_garbage_either_decodes_or_raises_decode_error(data: bytes) -> None:
    decoder = FrameDecoder(512)
    try:
        for frame in decoder.feed(data):
            assert frame.kind in set(Kind) and len(frame.body) <= 512
    except DecodeError:
        pass


def test_an_oversize_frame_is_refused_from_its_length_alone() -> None:
    decoder = FrameDecoder(100)
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"\x00\x00\x10\x00")
    with pytest.raises(FrameTooLarge):
        encode(Kind.MESSAGE, 0, b"x" * 101, 100)
    assert len(encode(Kind.MESSAGE, 0, b"x" * 100, 100)) == 109


def _pair() -> tuple[Signer, Signer, Verifier]:
    a, b = Signer.generate("a"), Signer.generate("b")
    return a, b, Verifier({"a": a.public_key, "b": b.public_key})


def test_handshake_authenticates_both_sides() -> None:
    a, b, cluster = _pair()
    initiator = Initiator(a, cluster, "b", new_nonce())
    responder = Responder(b, cluster, new_nonce())
    reply = responder.on_hello(*initiator.hello())
    assert responder.on_proof(initiator.on_reply(*reply)) == "a"


def test_handshake_refuses_strangers_impostors_and_reflection() -> None:
    a, b, cluster = _pair()
    stranger = Signer.generate("c")
    with pytest.raises(AuthenticationError, match="not a member"):
        Responder(b, cluster, new_nonce()).on_hello("c", new_nonce())
    with pytest.raises(AuthenticationError, match="itself"):
        Responder(b, cluster, new_nonce()).on_hello("b", new_nonce())
    # An impostor holding the wrong key for "b" cannot pass the initiator's check.
    impostor = Responder(Signer.generate("b"), cluster, new_nonce())
    initiator = Initiator(a, cluster, "b", new_nonce())
    with pytest.raises(AuthenticationError, match="prove"):
        initiator.on_reply(*impostor.on_hello(*initiator.hello()))
    # Dialing "b" but reaching "a"'s listener is refused by id, before any signature check.
    with pytest.raises(AuthenticationError, match="answered"):
        Initiator(stranger, cluster, "b", new_nonce()).on_reply("a", new_nonce(), b"s" * 64)
    # The responder's own signature, reflected back as the proof, fails (role tag differs).
    initiator = Initiator(a, cluster, "b", new_nonce())
    responder = Responder(b, cluster, new_nonce())
    _, _, responder_sig = responder.on_hello(*initiator.hello())
    with pytest.raises(AuthenticationError):
        responder.on_proof(responder_sig)
    with pytest.raises(AuthenticationError, match="nonce"):
        Responder(b, cluster, new_nonce()).on_hello("a", b"short")


def test_call_guard_checks_membership_signature_window_and_replay() -> None:
    a, _b, cluster = _pair()
    guard = CallGuard(cluster, "b", capacity=2)
    now = 1_000_000.0
    stamp = int(now * 1000)

    def signed(nonce: bytes, body: bytes = b"req", stamp_ms: int = stamp) -> tuple:
        sig = a.sign(call_transcript("a", "b", "SendMessage", stamp_ms, nonce, body))
        return ("a", "SendMessage", stamp_ms, nonce, sig, body)

    first = signed(new_nonce())
    guard.check(*first, now=now)
    with pytest.raises(AuthenticationError, match="replayed"):
        guard.check(*first, now=now)
    caller, method, stamp_ms, nonce, sig, _ = signed(new_nonce())
    with pytest.raises(AuthenticationError, match="did not sign"):
        guard.check(caller, method, stamp_ms, nonce, sig, b"other body", now=now)
    with pytest.raises(AuthenticationError, match="window"):
        guard.check(*signed(new_nonce()), now=now + CALL_WINDOW + 1)
    with pytest.raises(AuthenticationError, match="member"):
        guard.check("c", *signed(new_nonce())[1:], now=now)
    guard.check(*signed(new_nonce()), now=now)
    with pytest.raises(AuthenticationError, match="too many"):
        guard.check(*signed(new_nonce()), now=now)
    guard.check(*signed(new_nonce(), stamp_ms=stamp + 61_000), now=now + 61)  # old ones expired


def test_backoff_grows_with_jitter_and_is_bounded() -> None:
    backoff = Backoff(0.1, 2.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    for attempt, delay in enumerate(delays):
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays[6:])) == len(delays[6:]), "jitter spreads capped delays"
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_token_bucket_allows_bursts_then_asks_to_wait() -> None:
    bucket = TokenBucket(rate=100, burst=10, now=0.0)
    assert all(bucket.take(1, now=0.0) == 0 for _ in range(10))
    assert bucket.take(1, now=0.0) == pytest.approx(0.01)
    assert bucket.take(1, now=1.0) == 0


class _Chain:
    def __init__(self, block_size: int) -> None:
        self.blocks = [pb.Block(height=h, prev_hash=b"p" * block_size) for h in range(1, 51)]

    def blocks_from_height(self, height: int, limit: int) -> list[pb.Block]:
        return [b for b in self.blocks if b.height >= height][:limit]

    def checkpoints(self) -> list[pb.CheckpointCertificate]:
        return []

    def checkpoint(self, sequence: int) -> pb.CheckpointCertificate | None:
        return None

    def status(self) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(height=50)


def test_sync_state_answers_stay_under_the_message_size_limit() -> None:
    config = TransportConfig(max_message_size=200_000, sync_max_blocks=40)
    answer = state.sync_state(_Chain(30_000), pb.SyncStateRequest(from_height=1), config)
    assert 0 < len(answer.blocks) < 40 and answer.more
    assert answer.ByteSize() <= config.max_message_size
    capped = state.sync_state(_Chain(10), pb.SyncStateRequest(max_blocks=1000), config)
    assert len(capped.blocks) == 40 and capped.more
