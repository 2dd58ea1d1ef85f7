"""blockmesh's UnixFS importer against a second reference: the JS importer Helia uses.

The recorded table (js_importer_cids.json) needs nothing but Python. The live cross-check runs
the real JS importer through node on fresh random inputs, so it needs `tools/js-importer/
node_modules` (`make install`); it fails, not skips, without them, so a missing reference is
noticed instead of silently shrinking the suite.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from blockmesh.data.dag.chunker import parse_chunker
from blockmesh.data.dag.importer import ImportOptions, import_bytes, import_path
from blockmesh.reference import jsimporter
from blockmesh.reference.jsimporter import JsImporterError, JsImporterUnavailable, Profile
from blockmesh.reference.vectors import content_bytes, materialize

VECTOR_DIR = Path(__file__).parent / "vectors"
TABLE = json.loads((VECTOR_DIR / "js_importer_cids.json").read_text(encoding="utf-8"))
KUBO_TABLE = json.loads((VECTOR_DIR / "kubo_cids.json").read_text(encoding="utf-8"))


def _options(profile: Mapping[str, Any]) -> ImportOptions:
    """The blockmesh options for a profile as the table describes it."""
    assert profile["hash"] == "sha2-256"
    return ImportOptions(cid_version=profile["cid_version"], raw_leaves=profile["raw_leaves"],
                         chunk_size=parse_chunker(profile["chunker"]),
                         trickle=profile["layout"] == "trickle", max_links=profile["max_links"])


def _profile_options(profile: Profile) -> ImportOptions:
    return ImportOptions(cid_version=profile.cid_version, raw_leaves=profile.raw_leaves,
                         chunk_size=profile.chunk_size, trickle=profile.layout == "trickle",
                         max_links=profile.max_links)


@pytest.mark.parametrize("vector", TABLE["vectors"], ids=lambda v: f"{v['profile']}:{v['name']}")
def test_blockmesh_reproduces_js_importer_cid(vector, tmp_path):
    opts = _options(TABLE["profiles"][vector["profile"]])
    if "content" in vector:
        data = content_bytes(vector["content"])
        assert hashlib.sha256(data).hexdigest() == vector["sha256"], "recipe generator drifted"
        assert str(import_bytes(data, opts).cid) == vector["cid"]
    else:
        path = materialize(vector, tmp_path / "input")
        assert str(list(import_path(path, opts, recursive=True))[-1].cid) == vector["cid"]


def test_js_importer_agrees_with_kubo_on_every_kubo_vector():
    js = {v["name"]: v for v in TABLE["vectors"] if v["profile"] == "kubo-default"}
    assert TABLE["profiles"]["kubo-default"] == KUBO_TABLE["profiles"]["kubo-default"]
    for kubo in KUBO_TABLE["vectors"]:
        ours = js.pop(kubo["name"])
        assert {k: ours.get(k) for k in ("content", "entries", "sha256")} == {
            k: kubo.get(k) for k in ("content", "entries", "sha256")}, kubo["name"]
        assert ours["cid"] == kubo["cid"], kubo["name"]
    assert not js, f"kubo-default vectors kubo never computed: {sorted(js)}"


def test_table_matches_the_generator():
    """The committed table covers exactly what `python -m ...jsimporter` would record."""
    assert TABLE["importer"]["name"] == jsimporter.PACKAGE
    assert TABLE["profiles"] == {n: p.describe() for n, p in jsimporter.PROFILES.items()}
    recorded = [(v["profile"], v["name"]) for v in TABLE["vectors"]]
    assert recorded == [(p, v["name"]) for p, v in jsimporter.VECTOR_INPUTS]
    assert len(set(recorded)) == len(recorded)


def _require_js_importer() -> None:
    try:
        jsimporter.check_available()
    except JsImporterUnavailable as exc:
        pytest.fail(f"the JS reference importer cannot run: {exc}", pytrace=False)


# Profiles for the live check: kubo's, plus small chunks and narrow nodes so that deep balanced
# and trickle trees appear with a few KiB of data.
_profiles = st.builds(
    Profile,
    cid_version=st.sampled_from([0, 1]),
    raw_leaves=st.sampled_from([None, True, False]),
    chunk_size=st.sampled_from([1, 7, 256, 1024, 262144]),
    layout=st.sampled_from(["balanced", "trickle"]),
    max_links=st.sampled_from([2, 3, 5, 174]),
)


@st.composite
def _files(draw: st.DrawFn) -> tuple[Profile, int, int]:
    """A profile, a file size near a chunk/tree boundary of that profile, and a data seed."""
    profile = draw(_profiles)
    # one-byte chunks give deep trees from a few hundred bytes; 256 KiB chunks stay few
    chunks = draw(st.integers(0, {1: 400, 262144: 3}.get(profile.chunk_size, 60)))
    size = max(0, chunks * profile.chunk_size + draw(st.integers(-1, 1)))
    return profile, size, draw(st.integers(0, 2**32))


def _write_tree(root: Path, rng: random.Random, depth: int) -> None:
    root.mkdir()
    for index in range(rng.randint(0, 4)):
        name = rng.choice(["a", "B", "z", "\u00e9", "10", "9", "a-b", "a_b"]) + str(index)
        if depth and rng.random() < 0.3:
            _write_tree(root / name, rng, depth - 1)
        elif rng.random() < 0.15:  # kubo adds a symlink as a UnixFS symlink, dangling or not
            (root / name).symlink_to(rng.choice(["a0", "../x", "/no/such/target"]))
        else:
            (root / name).write_bytes(rng.randbytes(rng.choice([0, 1, 300, 3000])))


# No shrinking: every shrink step is another node run (minutes in all), and the failure message
# already names the profile, size and seed that reproduce the input.
@settings(max_examples=15, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(_files(), min_size=1, max_size=8), trees=st.lists(
    st.tuples(_profiles, st.integers(0, 2**32)), max_size=2))
def test_live_cross_check_with_js_importer(tmp_path_factory, files, trees):
    _require_js_importer()
    work = tmp_path_factory.mktemp("js-live")
    jobs: list[tuple[Path, Profile, str]] = []
    for index, (profile, size, seed) in enumerate(files):
        path = work / f"file-{index}"
        path.write_bytes(random.Random(seed).randbytes(size))
        jobs.append((path, profile, f"random.Random({seed}).randbytes({size})"))
    for index, (profile, seed) in enumerate(trees):
        path = work / f"tree-{index}"
        _write_tree(path, random.Random(seed), depth=2)
        jobs.append((path, profile, f"_write_tree(random.Random({seed}), depth=2)"))
    js = jsimporter.run([(path, profile) for path, profile, _ in jobs], timeout=60)
    assert js.importer["name"] == jsimporter.PACKAGE
    for (path, profile, recipe), js_cid in zip(jobs, js.cids, strict=True):
        ours = str(list(import_path(path, _profile_options(profile), recursive=True))[-1].cid)
        assert ours == js_cid, f"{profile} {recipe}: blockmesh {ours}, JS importer {js_cid}"


def test_live_importer_version_is_the_recorded_one(tmp_path):
    _require_js_importer()
    (tmp_path / "f").write_bytes(b"hello world\n")
    result = jsimporter.run([(tmp_path / "f", Profile())], timeout=60)
    assert result.cids == ["QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"]
    assert result.importer["version"] == TABLE["importer"]["version"], (
        "tools/js-importer resolves another importer version than the table was made with: "
        "regenerate the table or `npm ci` again")


def test_script_failure_is_a_typed_error(tmp_path):
    _require_js_importer()
    with pytest.raises(JsImporterError, match=r"no such file|ENOENT"):
        jsimporter.run([(tmp_path / "missing", Profile())], timeout=60)
    with pytest.raises(JsImporterError, match="layout"):
        jsimporter.run([(tmp_path, Profile(layout="flat"))], timeout=60)


def test_missing_node_modules_is_reported(tmp_path):
    (tmp_path / jsimporter.SCRIPT).write_text("", encoding="utf-8")
    with pytest.raises(JsImporterUnavailable, match="npm ci"):
        jsimporter.check_available(tool_dir=tmp_path, node="/usr/bin/env")
    with pytest.raises(JsImporterUnavailable, match="missing"):
        jsimporter.check_available(tool_dir=tmp_path / "absent", node="/usr/bin/env")
