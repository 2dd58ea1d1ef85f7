"""Repo: both block engines, pins and GC (also beside a concurrent add), verify, modes."""

import os
import stat
import threading

import pytest

from blockmesh.data.cid import CID
from blockmesh.data.dag.importer import ImportOptions, import_bytes
from blockmesh.data.store.config import Config, ConfigError, DatastoreConfig
from blockmesh.data.store.flatfs import FlatFSBlockstore
from blockmesh.data.store.lmdbstore import LMDBBlockstore
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.data.store.repo import Repo, RepoError
from blockmesh.errors import HashMismatch, NotFound


@pytest.mark.parametrize("factory", [FlatFSBlockstore, LMDBBlockstore, None])
def test_blockstore_contract(factory, tmp_path):
    store = MemoryBlockstore() if factory is None else factory(tmp_path / "s")
    data = b"block"
    cid = CID.of(data)
    assert not store.has(cid)
    store.put(cid, data)
    assert store.has(cid) and store.get(cid) == data and store.size(cid) == 5
    assert store.has(cid.to_v1()) and list(store.iterate()) == [CID(1, 0x55, cid.multihash)]
    with pytest.raises(HashMismatch):
        store.put(CID.of(b"other"), data)
    store.delete(cid)
    with pytest.raises(NotFound):
        store.get(cid)
    with pytest.raises(NotFound):
        store.delete(cid)
    store.close()


def test_flatfs_removes_leftover_temporaries(tmp_path):
    store = FlatFSBlockstore(tmp_path)
    store.put(CID.of(b"x"), b"x")
    shard = next(p for p in tmp_path.iterdir() if p.is_dir())
    (shard / ".tmp-deadbeef").write_bytes(b"torn")
    FlatFSBlockstore(tmp_path)
    assert not (shard / ".tmp-deadbeef").exists()


@pytest.mark.parametrize("engine", ["lmdb", "flatfs"])
def test_pins_and_gc(engine, tmp_path):
    with Repo.init(tmp_path / "r", Config(datastore=DatastoreConfig(engine=engine))) as repo:
        keep = import_bytes(os.urandom(700000), ImportOptions(chunk_size=100000), repo.blocks.put)
        drop = import_bytes(os.urandom(300000), ImportOptions(chunk_size=100000), repo.blocks.put)
        direct = CID.of(b"direct")
        repo.blocks.put(direct, b"direct")
        repo.pin(keep.cid)
        repo.pin(direct, recursive=False)
        before = repo.blocks.stat().blocks
        result = repo.gc()
        assert len(result.removed) == 4  # drop's root and its three leaves
        assert repo.blocks.stat().blocks == before - 4
        assert repo.blocks.has(keep.cid) and repo.blocks.has(direct)
        assert not repo.blocks.has(drop.cid)
        with pytest.raises(NotFound):
            repo.pin(drop.cid)
        repo.pins.remove(keep.cid)
        repo.gc()
        assert not repo.blocks.has(keep.cid)


def test_gc_waits_for_an_add_in_progress(tmp_path):
    with Repo.init(tmp_path / "r") as repo:
        entered = threading.Event()
        release = threading.Event()
        result: dict[str, object] = {}

        def adder():
            with repo.gc_lock():
                entry = import_bytes(os.urandom(500000), ImportOptions(), repo.blocks.put)
                entered.set()
                release.wait(10)
                repo.pins.add(entry.cid)
                result["cid"] = entry.cid

        thread = threading.Thread(target=adder)
        thread.start()
        assert entered.wait(10)
        gc_thread = threading.Thread(target=lambda: result.setdefault("gc", repo.gc()))
        gc_thread.start()
        gc_thread.join(0.3)
        assert gc_thread.is_alive()  # blocked on the lock while the add is unpinned
        release.set()
        thread.join(10)
        gc_thread.join(10)
        assert result["gc"].removed == []
        assert repo.blocks.has(result["cid"])


def test_verify_finds_corruption(tmp_path):
    with Repo.init(tmp_path / "r", Config(datastore=DatastoreConfig(engine="flatfs"))) as repo:
        cid = CID.of(b"good")
        repo.blocks.put(cid, b"good")
        assert repo.verify().corrupt == []
        path = next(p for p in (tmp_path / "r" / "blocks").rglob("*.data"))
        path.write_bytes(b"evil")
        assert repo.verify().corrupt == [CID(1, 0x55, cid.multihash)]


def test_repo_errors(tmp_path):
    with pytest.raises(RepoError):
        Repo.open(tmp_path / "missing")
    Repo.init(tmp_path / "r").close()
    with pytest.raises(RepoError):
        Repo.init(tmp_path / "r")
    (tmp_path / "r" / "config.toml").write_text("[datastore]\nengine = 3\n")
    with pytest.raises(ConfigError):
        Repo.open(tmp_path / "r")


def test_init_makes_the_repo_owner_only(tmp_path):
    Repo.init(tmp_path / "fresh" / "r").close()
    assert stat.S_IMODE((tmp_path / "fresh" / "r").stat().st_mode) == 0o700
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    Repo.init(existing).close()  # an empty directory made beforehand is tightened too
    assert stat.S_IMODE(existing.stat().st_mode) == 0o700


def test_config_round_trip_with_addresses(tmp_path):
    config = Config()
    config.addresses.swarm = ["/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"]
    with Repo.init(tmp_path / "r", config):
        pass
    with Repo.open(tmp_path / "r") as repo:
        assert repo.config.addresses.swarm == ["/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"]
