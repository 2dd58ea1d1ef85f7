"""blockmesh's dag-cbor against the spec and against the JS `@ipld/dag-cbor` codec.

The recorded table (dag_cbor_cids.json) needs nothing but Python. The live cross-check runs the
real JS codec through node on fresh hypothesis documents, so it needs `tools/dag-cbor/
node_modules` (`make install`); it fails, not skips, without them, as the JS importer check does.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagcbor
from blockmesh.data.dag.dagcbor import DagCBORError
from blockmesh.reference import jsdagcbor
from blockmesh.reference.jsdagcbor import JsDagCborError, JsDagCborUnavailable

TABLE = json.loads((Path(__file__).parent / "vectors" / "dag_cbor_cids.json").read_text(
    encoding="utf-8"))
A = CID.parse("bafkreiey5jxe6ilpf62lnh77tm5ejbbmhbugzjuf6p2v3remlu73ced34q")


@pytest.mark.parametrize("vector", TABLE["vectors"], ids=lambda v: v["name"])
def test_blockmesh_writes_and_reads_the_js_codec_blocks(vector):
    value = jsdagcbor.undescribe(vector["document"])
    raw = dagcbor.encode(value)
    assert raw.hex() == vector["hex"]
    assert str(CID.of(raw, Codec.DAG_CBOR)) == vector["cid"]
    assert dagcbor.decode(bytes.fromhex(vector["hex"])) == value


def test_table_matches_the_generator():
    assert TABLE["codec"]["name"] == jsdagcbor.PACKAGE
    assert [(v["name"], v["document"]) for v in TABLE["vectors"]] == [
        (name, jsdagcbor.describe(document)) for name, document in jsdagcbor.VECTOR_DOCUMENTS]


# -- the spec's rules, checked by bytes --------------------------------------------------------
def test_floats_are_always_64_bit():
    assert dagcbor.encode({"a": 1.5}).hex() == "a16161fb3ff8000000000000"  # was a float16
    assert dagcbor.encode(1.0).hex() == "fb3ff0000000000000"  # a float stays a float
    assert dagcbor.encode(-0.0).hex() == "fb8000000000000000"
    assert dagcbor.encode(1).hex() == "01"
    assert dagcbor.decode(bytes.fromhex("fb3ff0000000000000")) == 1.0
    assert isinstance(dagcbor.decode(bytes.fromhex("fb3ff0000000000000")), float)


@pytest.mark.parametrize("hex_block, reason", [
    ("f93e00", "float16"),
    ("fa3fc00000", "float32"),
    ("a16161f93e00", "float16 in a map"),
    ("fb7ff8000000000000", "NaN"),
    ("fb7ff0000000000000", "Infinity"),
    ("fbfff0000000000000", "-Infinity"),
    ("f97e00", "NaN as float16"),
    ("f7", "undefined"),
    ("f0", "simple value 16"),
    ("f820", "simple value 32"),
    ("a16161f7", "undefined in a map"),
    ("c24101", "bignum 1"),
    ("c349010000000000000000", "negative bignum"),
    ("c2490100000000000000000000", "bignum past 64 bits"),
    ("d82a4100", "tag 42 with a bad CID"),
    ("d81c80", "shared reference"),
    ("d9d9f700", "self-described CBOR"),
    ("a2616202616101", "keys out of order"),
    ("a2626161016162", "keys bytewise but not length-first"),
    ("a1016161", "integer key"),
    ("1801", "non-minimal integer"),
    ("5801ff", "non-minimal length"),
    ("9f01ff", "indefinite list"),
    ("0000", "trailing bytes"),
    ("a2616101616102", "duplicate key"),
    ("6180", "invalid UTF-8"),
])
def test_decode_refuses_what_the_spec_forbids(hex_block, reason):
    with pytest.raises(DagCBORError):
        dagcbor.decode(bytes.fromhex(hex_block))


def test_keys_sort_length_first_then_bytewise():
    raw = dagcbor.encode({"bb": 1, "a": 2, "\u00e9": 3, "b": 4})
    assert raw.hex() == "a4" + "616102" + "616204" + "62626201" + "62c3a903"


@pytest.mark.parametrize("value", [math.nan, math.inf, 2**64, -(2**64) - 1, {1: "x"}, {"\ud800": 1},
                                   "\udfff", object(), {1.5}])
def test_encode_never_produces_what_the_spec_forbids(value):
    with pytest.raises(DagCBORError):
        dagcbor.encode(value)


def test_nesting_is_bounded_both_ways():
    deep: list = []
    for _ in range(dagcbor.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(DagCBORError, match="nested"):
        dagcbor.encode(deep)
    with pytest.raises(DagCBORError):
        dagcbor.decode(b"\x81" * (dagcbor.MAX_DEPTH + 1) + b"\x80")


# -- live comparison with the JS codec ---------------------------------------------------------
def _require_js_codec() -> None:
    try:
        jsdagcbor.check_available()
    except JsDagCborUnavailable as exc:
        pytest.fail(f"the JS dag-cbor reference cannot run: {exc}", pytrace=False)


# Floats the JS codec can hold as floats: not a safe integer (those it writes as integers).
_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not (f.is_integer() and abs(f) <= jsdagcbor.MAX_SAFE_INTEGER))
_scalars = (st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1)
            | st.integers(-30, 30) | _floats | st.text(max_size=30) | st.binary(max_size=30)
            | st.sampled_from([A, CID.parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")]))
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
        st.text(max_size=12) | st.sampled_from(["a", "b", "aa", "\u00e9", "\U0001f642", ""]),
        inner, max_size=6),
    max_leaves=25,
)


# No shrinking: every step is another node run, and the failure names the document.
@settings(max_examples=5, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(_documents, min_size=1, max_size=40))
def test_live_cross_check_with_js_codec(documents):
    _require_js_codec()
    result = jsdagcbor.run(documents, timeout=60)
    assert result.codec["name"] == jsdagcbor.PACKAGE
    for document, (js_cid, js_bytes) in zip(documents, result.blocks, strict=True):
        ours = dagcbor.encode(document)
        assert ours == js_bytes, f"{document!r}: blockmesh {ours.hex()}, JS {js_bytes.hex()}"
        assert str(CID.of(ours, Codec.DAG_CBOR)) == js_cid
        assert dagcbor.decode(js_bytes) == document


def test_live_codec_version_is_the_recorded_one():
    _require_js_codec()
    result = jsdagcbor.run([{"a": 1.5}], timeout=60)
    assert result.blocks[0][0] == TABLE["vectors"][0]["cid"]
    assert result.codec["version"] == TABLE["codec"]["version"], (
        "tools/dag-cbor resolves another codec version than the table was made with: "
        "regenerate the table or `npm ci` again")


def test_reference_refuses_what_it_cannot_describe_and_reports_script_errors(tmp_path):
    with pytest.raises(JsDagCborError, match="cannot be described"):
        jsdagcbor.describe(1.0)
    with pytest.raises(JsDagCborError, match="cannot be described"):
        jsdagcbor.describe(math.nan)
    _require_js_codec()
    with pytest.raises(JsDagCborError, match=r"larger than allowable|range"):
        jsdagcbor.run([2**64], timeout=60)
    (tmp_path / jsdagcbor.SCRIPT).write_text("", encoding="utf-8")
    with pytest.raises(JsDagCborUnavailable, match="npm ci"):
        jsdagcbor.check_available(tool_dir=tmp_path)


def test_float_bits_round_trip_through_the_description():
    for value in (0.1, -1e-300, 2.0**60, 5e-324):
        described = jsdagcbor.describe(value)
        assert described == {"float": struct.pack(">d", value).hex()}
        assert jsdagcbor.undescribe(described) == value
