"""The JS `@ipld/dag-cbor` codec (the one Helia uses) as a reference for blockmesh's dag-cbor.

`tools/dag-cbor/encode.mjs` encodes documents described in a tagged JSON form (so that integers
past 2**53, exact float bits, bytes and links survive the trip) and reports each block's bytes and
CIDv1. The JS codec writes any number that is a safe integer (|n| < 2**53, -0 included) as a CBOR
integer, so floats such as 1.0 or -0.0 have no description here; blockmesh writes those as
float64 like go-ipld-prime, which tests check against the spec's bytes directly.

Regenerate the table (needs node and `npm ci` in tools/dag-cbor):
``python -m blockmesh.reference.jsdagcbor --out tests/data/vectors/dag_cbor_cids.json``.
"""

from __future__ import annotations

import argparse
import math
import shutil
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blockmesh.data.cid import CID
from blockmesh.errors import BlockmeshError
from blockmesh.reference.node import run_json
from blockmesh.reference.vectors import write_table

TOOL_DIR = Path(__file__).resolve().parents[3] / "tools" / "dag-cbor"
SCRIPT = "encode.mjs"
PACKAGE = "@ipld/dag-cbor"
DEFAULT_TIMEOUT_S = 120.0
MAX_REPLY_BYTES = 64 * 1024 * 1024
_FLOAT = struct.Struct(">d")
MAX_SAFE_INTEGER = 2**53 - 1
"""JS's Number.MAX_SAFE_INTEGER: the JS codec writes a float no larger than this, if integral,
as an integer."""


class JsDagCborError(BlockmeshError):
    """The JS dag-cbor reference failed or answered something other than a list of blocks."""


class JsDagCborUnavailable(JsDagCborError):
    """node or the npm packages are missing, so the JS reference cannot run at all."""


def describe(value: Any) -> Any:
    """The tagged JSON form encode.mjs reads (and the vector table records) of an IPLD value."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value) or (value.is_integer() and abs(value) <= MAX_SAFE_INTEGER):
            raise JsDagCborError(f"float {value!r} cannot be described to the JS codec")
        return {"float": _FLOAT.pack(value).hex()}
    if isinstance(value, str):
        return {"string": value}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, CID):
        return {"link": str(value)}
    if isinstance(value, list):
        return {"list": [describe(item) for item in value]}
    if isinstance(value, dict):
        return {"map": [[key, describe(item)] for key, item in value.items()]}
    raise JsDagCborError(f"cannot describe a {type(value).__name__}")


def undescribe(node: Any) -> Any:
    """The IPLD value a tagged JSON form stands for (the inverse of describe)."""
    if node is None or isinstance(node, bool):
        return node
    if not isinstance(node, dict) or len(node) != 1:
        raise JsDagCborError(f"not a tagged value: {node!r}")
    ((tag, body),) = node.items()
    if tag == "int":
        return int(body)
    if tag == "float":
        return _FLOAT.unpack(bytes.fromhex(body))[0]
    if tag == "string":
        return str(body)
    if tag == "bytes":
        return bytes.fromhex(body)
    if tag == "link":
        return CID.parse(body)
    if tag == "list":
        return [undescribe(item) for item in body]
    if tag == "map":
        return {key: undescribe(item) for key, item in body}
    raise JsDagCborError(f"unknown tag {tag!r}")


_A = CID.parse("bafkreiey5jxe6ilpf62lnh77tm5ejbbmhbugzjuf6p2v3remlu73ced34q")
_V0 = CID.parse("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
_DAG = CID.parse("bafyreic6v65kiate4qj6lsdjvf2qjul5frowyn4kgtjp7fpbm7jjfz4mfm")

# (name, document): the cases the issue names (floats, nested maps, lists, links, negative and
# big integers, Unicode keys of several lengths) and the head-size boundaries of CBOR.
VECTOR_DOCUMENTS: list[tuple[str, Any]] = [
    ("float-in-map", {"a": 1.5}),
    ("floats", [0.5, -2.5, 0.1, 1 / 3, 3.141592653589793, -1e-7, 1e300, 5e-324,
                1.7976931348623157e308, 2.2250738585072014e-308, 65504.5, 123456.789,
                2.0**53, -(2.0**60), 2.0**64]),
    ("float-that-fits-float16", {"x": 0.25, "y": -0.75}),
    ("float-that-fits-float32", 1.100000023841858),
    ("nested-maps", {"outer": {"inner": {"deep": {"deepest": {"v": 1.25}}}, "b": [{"c": None}]}}),
    ("lists", [[], [[]], [1, [2, [3, [4.5]]]], list(range(30))]),
    ("scalars", [None, True, False, 0, "", b""]),
    ("links", {"raw": _A, "v0": _V0, "dag": _DAG, "list": [_A, _V0]}),
    ("car-header", {"roots": [_DAG], "version": 1}),
    ("negative-ints", [-1, -24, -25, -256, -257, -65536, -65537, -(2**32), -(2**32) - 1,
                       -(2**53), -(2**53) - 1, -(2**63), -(2**64)]),
    ("int-boundaries", [23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53, 2**53 + 1,
                        2**63, 2**64 - 1]),
    ("big-ints", {"max": 2**64 - 1, "min": -(2**64), "past-js-safe": 2**53 + 1}),
    ("unicode-keys", {"\u00e9": 1, "z": 2, "aa": 3, "\u65e5\u672c": 4, "\U0001f642": 5,
                      "": 6, "a" * 23: 7, "b" * 24: 8, "c" * 255: 9, "\u00df" * 128: 10,
                      "Z": 11, "\u00e9a": 12}),
    ("key-order-length-first", {"bb": 1, "a": 2, "ccc": 3, "ab": 4, "b": 5.5}),
    ("strings-and-bytes", {"s23": "x" * 23, "s24": "y" * 24, "s256": "\u00e9" * 128,
                           "b24": bytes(range(24)), "b256": bytes(range(256))}),
    ("long-string", "\u263a" * 3000),
    ("empty-map", {}),
]


@dataclass(frozen=True)
class JsDagCborResult:
    codec: dict[str, str]  # name, version, node
    blocks: list[tuple[str, bytes]]  # (CID, block bytes) per document


def check_available(tool_dir: Path = TOOL_DIR, node: str | None = None) -> str:
    """Path of the node binary, or JsDagCborUnavailable saying what to install."""
    binary = node or shutil.which("node")
    if binary is None:
        raise JsDagCborUnavailable("node is not on PATH; the JS dag-cbor reference needs Node 20+")
    if not (tool_dir / SCRIPT).is_file():
        raise JsDagCborUnavailable(f"{tool_dir / SCRIPT} is missing")
    if not (tool_dir / "node_modules" / PACKAGE / "package.json").is_file():
        raise JsDagCborUnavailable(
            f"{tool_dir}/node_modules lacks {PACKAGE}: run `make install` "
            f"(or `cd {tool_dir} && npm ci --no-audit --no-fund`)")
    return binary


def run(documents: Sequence[Any], timeout: float = DEFAULT_TIMEOUT_S,
        tool_dir: Path = TOOL_DIR, node: str | None = None) -> JsDagCborResult:
    """Bytes and CID of each document as the JS codec encodes it, in order; one node process."""
    binary = check_available(tool_dir, node)
    job = {"documents": [describe(document) for document in documents]}
    reply = run_json(binary, tool_dir / SCRIPT, job, timeout=timeout, max_reply=MAX_REPLY_BYTES,
                     what="JS dag-cbor", error=JsDagCborError, unavailable=JsDagCborUnavailable)
    codec = reply.get("codec") if isinstance(reply, dict) else None
    blocks = reply.get("blocks") if isinstance(reply, dict) else None
    if (not isinstance(codec, dict)
            or not all(isinstance(codec.get(k), str) for k in ("name", "version", "node"))
            or not isinstance(blocks, list) or len(blocks) != len(documents)
            or not all(isinstance(b, dict) and isinstance(b.get("cid"), str)
                       and isinstance(b.get("hex"), str) for b in blocks)):
        raise JsDagCborError(f"JS dag-cbor reply lacks codec info or {len(documents)} blocks")
    try:
        pairs = [(b["cid"], bytes.fromhex(b["hex"])) for b in blocks]
    except ValueError as exc:
        raise JsDagCborError(f"JS dag-cbor reply holds bad hex: {exc}") from None
    return JsDagCborResult({k: codec[k] for k in ("name", "version", "node")}, pairs)


def generate_table(timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Every VECTOR_DOCUMENTS entry with the JS codec's block and CID."""
    result = run([document for _, document in VECTOR_DOCUMENTS], timeout=timeout)
    return {
        "description": (
            "dag-cbor blocks and CIDv1 (sha2-256) written by the JS @ipld/dag-cbor codec for "
            "documents in the tagged form of blockmesh.reference.jsdagcbor.describe; blockmesh "
            "must write the same bytes and read them back to the same value."
        ),
        "codec": {
            **result.codec,
            "source": "npm, pinned by tools/dag-cbor/package-lock.json; run by "
                      "tools/dag-cbor/encode.mjs",
        },
        "vectors": [{"name": name, "document": describe(document), "cid": cid, "hex": raw.hex()}
                    for (name, document), (cid, raw) in zip(VECTOR_DOCUMENTS, result.blocks,
                                                            strict=True)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the dag-cbor CID vector table.")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    try:
        table = generate_table()
    except JsDagCborError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    write_table(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
