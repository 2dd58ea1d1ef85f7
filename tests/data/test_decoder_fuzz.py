"""Fuzzing the decoders that read files and peers' bytes: CARv1/CARv2, dag-cbor, dag-json.

Each test feeds hostile input, mostly near-valid (real encodings with one thing wrong), and
asserts that the decoder either succeeds or raises a BlockmeshError subclass: an IndexError,
OverflowError, MemoryError, RecursionError or TypeError escaping would fail the test.
"""

from __future__ import annotations

import io
import json
import struct

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagcbor, dagjson
from blockmesh.data.dag.car import CARV2_PRAGMA, CARReader, write_car
from blockmesh.errors import BlockmeshError

A = CID.of(b"a", Codec.RAW)
DOC = dagcbor.encode({"a": [1, 2.5, "x", A], "b": {"c": None}})
DOC_CID = CID.of(DOC, Codec.DAG_CBOR)


def _car(blocks: list[tuple[CID, bytes]]) -> bytes:
    out = io.BytesIO()
    write_car(out, [blocks[0][0]], blocks)
    return out.getvalue()


VALID_V1 = _car([(DOC_CID, DOC), (A, b"a")])


class _Pipe:
    """A stream that cannot seek, like stdin."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._inner.read(size)

    def seekable(self) -> bool:
        return False


def _read_car(data: bytes, seekable: bool) -> None:
    stream = io.BytesIO(data) if seekable else _Pipe(data)
    try:
        reader = CARReader(stream)  # type: ignore[arg-type]
        for _ in reader:
            pass
    except BlockmeshError:
        pass


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out)


_edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)
_u64 = st.integers(0, 2**64 - 1) | st.sampled_from([0, 50, 51, 52, 2**63, 2**64 - 1])


@given(st.binary(max_size=400), st.booleans())
def test_car_reader_on_random_bytes(raw, seekable):
    _read_car(raw, seekable)
    _read_car(CARV2_PRAGMA + raw, seekable)


@given(_edits, st.integers(0, len(VALID_V1)), st.booleans())
def test_car_v1_mutated_or_cut(edits, cut, seekable):
    _read_car(_mutate(VALID_V1, edits)[:cut], seekable)


@given(offset=_u64, size=_u64, index=_u64, padding=st.integers(0, 64),
       tail=st.binary(max_size=64), seekable=st.booleans())
def test_car_v2_header_offsets(offset, size, index, padding, tail, seekable):
    """The header's three numbers in any combination, including the ones that overflowed or
    tried to allocate the whole offset before."""
    header = struct.pack("<16sQQQ", b"\x00" * 16, offset, size, index)
    _read_car(CARV2_PRAGMA + header + b"\x00" * padding + VALID_V1 + tail, seekable)


@given(size_delta=st.integers(-len(VALID_V1), 64), index=st.sampled_from([0, 1]), seekable=
       st.booleans(), edits=_edits)
def test_car_v2_consistent_headers_around_a_real_payload(size_delta, index, seekable, edits):
    size = len(VALID_V1) + size_delta
    end = 51 + size
    header = struct.pack("<16sQQQ", b"\x00" * 16, 51, max(size, 0), end if index else 0)
    _read_car(_mutate(CARV2_PRAGMA + header + VALID_V1, edits), seekable)


def _decode_cbor(raw: bytes) -> None:
    try:
        value = dagcbor.decode(raw)
    except BlockmeshError:
        return
    assert dagcbor.encode(value) == raw  # whatever is accepted is the one canonical form


# Generic CBOR, much of it outside dag-cbor: other tags, simple values, undefined, every float
# width (cbor2's canonical mode writes the shortest), big integers, non-string keys.
_generic_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=8) | st.binary(max_size=8) | st.just(cbor2.undefined)
    | st.integers(0, 255).filter(lambda n: n < 20 or n > 31).map(cbor2.CBORSimpleValue)
    | st.builds(lambda raw: cbor2.CBORTag(42, raw), st.binary(max_size=40))
    | st.just(cbor2.CBORTag(42, b"\x00" + bytes(A)))
)
_generic = st.recursive(
    _generic_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), inner, max_size=4)
    | st.builds(cbor2.CBORTag, st.integers(0, 2**64 - 1) | st.sampled_from(
        [0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 42, 256, 258, 55799]), inner),
    max_leaves=10,
)


@given(st.binary(max_size=200))
def test_dagcbor_on_random_bytes(raw):
    _decode_cbor(raw)


@given(_generic, st.booleans(), _edits)
def test_dagcbor_on_generic_cbor(value, canonical, edits):
    try:
        raw = cbor2.dumps(value, canonical=canonical)
    except (ValueError, TypeError, OverflowError, cbor2.CBOREncodeError):
        return  # cbor2 cannot write it either (e.g. a simple value it reserves)
    _decode_cbor(raw)
    _decode_cbor(_mutate(raw, edits))


@given(st.integers(1, 3000), st.sampled_from([b"\x81", b"\xa1\x61a", b"\xd8\x2a"]))
def test_dagcbor_deep_nesting(depth, opener):
    _decode_cbor(opener * depth + b"\x00")


def _decode_json(text: str | bytes) -> None:
    try:
        value = dagjson.decode(text)
        dagcbor.encode(value)
    except BlockmeshError:
        pass


_json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
                 | st.text(max_size=10))
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=4) | st.just("/"), inner, max_size=3)
    | st.builds(lambda x: {"/": x}, inner | st.just(str(A)))
    | st.builds(lambda x: {"/": {"bytes": x}}, inner | st.text(max_size=12)),
    max_leaves=10,
)


@given(st.text(max_size=200) | st.binary(max_size=200).map(bytes))
def test_dagjson_on_random_text(text):
    _decode_json(text)


@given(_json_values, _edits)
def test_dagjson_on_near_valid_documents(value, edits):
    text = json.dumps(value)  # NaN and Infinity appear as JSON's non-standard literals
    _decode_json(text)
    _decode_json(_mutate(text.encode(), edits))


@given(st.integers(1, 100_000), st.sampled_from(["[", '{"a":', '{"/":']))
def test_dagjson_deep_nesting(depth, opener):
    _decode_json(opener * depth)
    _decode_json(opener * depth + "1" + ("]" if opener == "[" else "}") * depth)
