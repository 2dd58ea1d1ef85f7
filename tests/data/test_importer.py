"""UnixFS import gives kubo's CIDs: the FACTS.md vectors, and the table a real kubo computed."""

import json
from pathlib import Path

import pytest

from blockmesh.data.cid import Codec
from blockmesh.data.dag import dagpb, exporter, unixfs
from blockmesh.data.dag.chunker import parse_chunker
from blockmesh.data.dag.importer import ImportOptions, import_bytes, import_path
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.errors import NotImplementedYet, UnsupportedError
from blockmesh.reference.vectors import materialize

VECTORS = json.loads((Path(__file__).parent / "vectors" / "kubo_cids.json").read_text())

FACTS = [
    (b"", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
    (b"hello world\n", "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"),
    (bytes(2**20), "QmVkbauSDEaMP4Tkq6Epm9uW75mWm136n81YH8fGtfwdHU"),
    (bytes(i % 251 for i in range(10 * 2**20)), "QmRAsWzZB1zs3xJ93dXhkhKkJjFLWCEC6h5HswGZgHVcxk"),
]


@pytest.mark.parametrize(("data", "cid"), FACTS, ids=["empty", "hello", "zeros-1MiB", "mod251"])
def test_facts_vectors_cidv0(data, cid):
    assert str(import_bytes(data).cid) == cid


def test_facts_vectors_cidv1_raw_leaves():
    opts = ImportOptions(cid_version=1)
    assert opts.use_raw_leaves
    assert str(import_bytes(b"hello world\n", opts).cid) == (
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    one_chunk = ImportOptions(cid_version=1, chunk_size=2**20)
    assert str(import_bytes(bytes(2**20), one_chunk).cid) == (
        "bafkreibq4fevl27rgurgnxbp7adh42aqiyd6ouflxhj3gzmcxcxzbh6lla")


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=lambda v: v["name"])
def test_kubo_computed_vectors(vector, tmp_path):
    path = materialize(vector, tmp_path / "input")
    added = list(import_path(path, ImportOptions(), recursive=True))
    assert str(added[-1].cid) == vector["cid"]


def test_round_trip_through_store_both_profiles_and_trickle():
    data = bytes(i * 7 % 256 for i in range(3 * 262144 + 5))
    for opts in (ImportOptions(), ImportOptions(cid_version=1), ImportOptions(trickle=True),
                 ImportOptions(chunk_size=1000, max_links=3)):
        store = MemoryBlockstore()
        entry = import_bytes(data, opts, store.put)
        assert b"".join(exporter.read_file(store.get, entry.cid)) == data
        assert entry.filesize == len(data)


def test_balanced_tree_shape_two_levels():
    store = MemoryBlockstore()
    opts = ImportOptions(chunk_size=10, max_links=3)
    entry = import_bytes(bytes(range(100)), opts, store.put)  # 10 chunks: 3 + 3 + 3 + 1
    root = dagpb.decode(store.get(entry.cid))
    assert len(root.links) == 2  # depth 2: one full subtree of 9 chunks, one of the last chunk
    assert unixfs.decode(root.data).blocksizes == (90, 10)
    last = dagpb.decode(store.get(root.links[1].cid))
    assert len(last.links) == 1  # boxo keeps a one-leaf internal node rather than collapsing it


def test_raw_leaves_are_raw_blocks():
    store = MemoryBlockstore()
    entry = import_bytes(bytes(600000), ImportOptions(cid_version=1), store.put)
    root = dagpb.decode(store.get(entry.cid))
    assert entry.cid.version == 1 and entry.cid.codec == Codec.DAG_PB
    assert all(link.cid.codec == Codec.RAW for link in root.links)


def test_chunker_specs():
    assert parse_chunker("size-262144") == 262144
    with pytest.raises(UnsupportedError):
        parse_chunker("size-0")
    with pytest.raises(UnsupportedError):
        parse_chunker("size-99999999")
    with pytest.raises(NotImplementedYet):
        parse_chunker("rabin")


def test_hidden_files_skipped_unless_asked(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".secret").write_bytes(b"x")
    (tmp_path / "d" / "a").write_bytes(b"y")
    plain = [a.path for a in import_path(tmp_path / "d", ImportOptions(), recursive=True)]
    hidden = [a.path for a in import_path(tmp_path / "d", ImportOptions(hidden=True),
                                          recursive=True)]
    assert "d/.secret" not in plain and "d/.secret" in hidden


def _many_files(root: Path, count: int, name_width: int) -> Path:
    root.mkdir()
    for i in range(count):
        (root / f"{i:0{name_width}d}").write_bytes(b"")
    return root


def test_hamt_directory_round_trip(tmp_path):
    # 4096 links of (30-byte name + 34-byte CID) = 262144 bytes: exactly kubo's threshold
    big = _many_files(tmp_path / "big", 4096, 30)
    store = MemoryBlockstore()
    root = list(import_path(big, ImportOptions(), store.put, recursive=True))[-1].cid
    assert unixfs.decode(dagpb.decode(store.get(root)).data).type == unixfs.DataType.HAMT_SHARD
    names = [entry.name for entry in exporter.list_directory(store.get, root)]
    assert names == sorted(p.name for p in big.iterdir())
    exporter.write_tree(store.get, root, tmp_path / "out")
    assert len(list((tmp_path / "out").iterdir())) == 4096
    small = _many_files(tmp_path / "small", 4095, 30)
    small_root = list(import_path(small, ImportOptions(), store.put, recursive=True))[-1].cid
    assert unixfs.decode(dagpb.decode(store.get(small_root)).data).type == unixfs.DataType.DIRECTORY


@pytest.mark.kubo
def test_hamt_threshold_and_layout_match_kubo(tmp_path):
    from blockmesh.reference.kubo import KuboNode

    below = _many_files(tmp_path / "below", 4095, 30)
    at = _many_files(tmp_path / "at", 4096, 30)
    deep = _many_files(tmp_path / "deep", 9000, 6)  # collisions below the first level
    with KuboNode() as kubo:
        for path in (below, at, deep):
            ours = list(import_path(path, ImportOptions(), recursive=True))[-1].cid
            assert str(ours) == kubo.add(path, only_hash=True, timeout=300), path.name
