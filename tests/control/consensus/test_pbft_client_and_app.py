"""The client's f+1 rule, the key-value operation codec, and block hashing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.control.consensus import KeyValueApp, PBFTClient
from blockmesh.control.consensus.app import (
    STATUS_BAD_REQUEST,
    STATUS_NOT_FOUND,
    decode_operation,
    decode_result,
    encode_delete,
    encode_get,
    encode_set,
)
from blockmesh.control.consensus.blocks import ChainError, block_hash, make_block, verify_chain
from blockmesh.control.consensus.messages import ZERO_HASH, reply_digest, sign_envelope
from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import DecodeError

NODES = ["r0", "r1", "r2", "r3"]
SIGNERS = {r: Signer.generate(r) for r in NODES}
KEYS = Verifier({r: s.public_key for r, s in SIGNERS.items()})


def reply(replica: str, client: str, ts: int, result: bytes) -> pb.PBFTMessage:
    body = pb.Reply(client_id=client, timestamp=ts, result=result, view=0)
    return sign_envelope(SIGNERS[replica], pb.REPLY, 0, 1, reply_digest(client, ts, result),
                         body.SerializeToString(deterministic=True))


def test_client_accepts_after_f_plus_one_matching_replies():
    client = PBFTClient(Signer.generate("c0"), NODES, KEYS)
    env = client.request(encode_set(b"k", b"v"), now=0.0)
    assert env.type == pb.REQUEST and env.node_id == "c0"
    assert client.on_reply(reply("r0", "c0", 1, b"\x00")) is None
    assert client.on_reply(reply("r0", "c0", 1, b"\x00")) is None  # same replica twice
    assert client.drops["duplicate"] == 1
    assert client.on_reply(reply("r1", "c0", 1, b"\x00")) == b"\x00"
    assert not client.outstanding


def test_a_lying_replica_cannot_make_the_client_accept_its_result():
    client = PBFTClient(Signer.generate("c0"), NODES, KEYS)
    client.request(encode_get(b"k"), now=0.0)
    assert client.on_reply(reply("r3", "c0", 1, b"\x00lie")) is None
    assert client.on_reply(reply("r0", "c0", 1, b"\x01")) is None
    assert client.on_reply(reply("r1", "c0", 1, b"\x01")) == b"\x01"


def test_client_rejects_forged_and_foreign_replies():
    client = PBFTClient(Signer.generate("c0"), NODES, KEYS)
    client.request(b"op", now=0.0)
    forged = reply("r0", "c0", 1, b"x")
    forged.signature = bytes(64)
    assert client.on_reply(forged) is None and client.drops["bad_signature"] == 1
    assert client.on_reply(reply("r1", "c0", 7, b"x")) is None and client.drops["late"] == 1
    stranger = Signer.generate("r9")
    body = pb.Reply(client_id="c0", timestamp=1, result=b"x").SerializeToString()
    msg = sign_envelope(stranger, pb.REPLY, 0, 1, reply_digest("c0", 1, b"x"), body)
    assert client.on_reply(msg) is None and client.drops["unknown_sender"] == 1


def test_client_retransmits_until_answered_and_timestamps_grow():
    client = PBFTClient(Signer.generate("c0"), NODES, KEYS, retry_interval=1.0,
                        first_timestamp=100)
    first = client.request(b"op", now=0.0)
    with pytest.raises(RuntimeError):
        client.request(b"op2", now=0.0)
    assert client.tick(0.5) is None
    assert client.tick(1.0).SerializeToString() == first.SerializeToString()
    client.on_reply(reply("r0", "c0", 100, b"r"))
    client.on_reply(reply("r1", "c0", 100, b"r"))
    second = client.request(b"op2", now=2.0)
    assert pb.Request.FromString(second.payload).timestamp == 101
    assert client.tick(10.0) is not None


def test_key_value_app_operations():
    app = KeyValueApp()
    assert decode_result(app.execute(encode_get(b"k"))).status == STATUS_NOT_FOUND
    assert decode_result(app.execute(encode_set(b"k", b"v"))).ok
    assert decode_result(app.execute(encode_get(b"k"))).value == b"v"
    assert decode_result(app.execute(encode_delete(b"k"))).ok
    assert decode_result(app.execute(encode_delete(b"k"))).status == STATUS_NOT_FOUND
    assert decode_result(app.execute(b"\x09junk")).status == STATUS_BAD_REQUEST
    assert len(app) == 0


@given(st.binary(max_size=64), st.binary(max_size=64))
def test_operation_codec_round_trips(key, value):
    op = decode_operation(encode_set(key, value))
    assert (op.key, op.value) == (key, value)
    assert decode_operation(encode_get(key)).key == key
    assert decode_operation(encode_delete(key)).key == key


@given(st.binary(max_size=80))
def test_garbage_operations_are_typed_errors_and_deterministic_results(data):
    with contextlib.suppress(DecodeError):
        decode_operation(data)
    a, b = KeyValueApp(), KeyValueApp()
    assert a.execute(data) == b.execute(data)
    assert a.state_digest() == b.state_digest()


def test_state_digest_depends_on_content_not_history():
    a, b = KeyValueApp(), KeyValueApp()
    a.execute(encode_set(b"x", b"1"))
    a.execute(encode_set(b"y", b"2"))
    b.execute(encode_set(b"y", b"2"))
    b.execute(encode_set(b"x", b"0"))
    assert a.state_digest() != b.state_digest()
    b.execute(encode_set(b"x", b"1"))
    assert a.state_digest() == b.state_digest()


def test_blocks_chain_by_hash():
    b1 = make_block(1, ZERO_HASH, 0, [], [])
    b2 = make_block(2, b1.hash, 0, [pb.Request(client_id="c", timestamp=1)], [b"r"])
    verify_chain([b1, b2], 0, ZERO_HASH)
    assert block_hash(b2) == b2.hash
    with pytest.raises(ChainError):
        verify_chain([b2], 0, ZERO_HASH)
    tampered = pb.Block()
    tampered.CopyFrom(b2)
    tampered.results[0] = b"other"
    with pytest.raises(ChainError):
        verify_chain([b1, tampered], 0, ZERO_HASH)
