"""Block stores at their limits: an LMDB map that grows (or cannot), flatfs beside other processes.

The address-space cases run in a child process under RLIMIT_AS, set relative to what the child
already uses, so they do not depend on how much memory the interpreter and its imports take.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from blockmesh.data.cid import CID
from blockmesh.data.store.flatfs import FlatFSBlockstore, StoreError, StoreFull
from blockmesh.data.store.lmdbstore import INITIAL_MAP_SIZE, LMDBBlockstore
from blockmesh.data.store.repo import Repo

MIB = 1024 * 1024


def _blocks(count: int, size: int, seed: int = 0) -> list[tuple[CID, bytes]]:
    out = []
    for index in range(count):
        data = index.to_bytes(4, "big") + seed.to_bytes(4, "big") + b"\xab" * (size - 8)
        out.append((CID.of(data), data))
    return out


# -- LMDB map --------------------------------------------------------------------------------
def test_lmdb_map_starts_modest_and_doubles_when_full(tmp_path):
    with LMDBBlockstore(tmp_path / "s") as store:
        assert store.map_size == INITIAL_MAP_SIZE
    with LMDBBlockstore(tmp_path / "small", map_size=1 * MIB) as store:
        blocks = _blocks(40, 128 * 1024)  # 5 MiB: several doublings from 1 MiB
        store.put_many(blocks[:20])
        for cid, data in blocks[20:]:
            store.put(cid, data)
        assert store.map_size >= 8 * MIB
        assert all(store.get(cid) == data for cid, data in blocks)
    with LMDBBlockstore(tmp_path / "small", map_size=1 * MIB) as store:  # reopens at data size
        assert store.map_size >= 5 * MIB
        assert len(list(store.keys())) == 40


def test_lmdb_map_stops_at_its_bound_without_losing_blocks(tmp_path):
    with LMDBBlockstore(tmp_path / "s", map_size=1 * MIB, max_map_size=2 * MIB) as store:
        stored = []
        with pytest.raises(StoreFull, match="maximum"):
            for cid, data in _blocks(40, 128 * 1024):
                store.put(cid, data)
                stored.append((cid, data))
        assert store.map_size == 2 * MIB
        assert stored and all(store.get(cid) == data for cid, data in stored)
        with pytest.raises(StoreFull):  # a whole batch refused, none of it half stored
            store.put_many(_blocks(8, 128 * 1024, seed=1))
        assert not any(store.has(cid) for cid, _ in _blocks(8, 128 * 1024, seed=1))
        store.delete(stored[0][0])  # a full map still lets blocks go


def test_lmdb_readers_keep_working_while_the_map_grows(tmp_path):
    with LMDBBlockstore(tmp_path / "s", map_size=1 * MIB) as store:
        first = _blocks(4, 1024, seed=9)
        store.put_many(first)
        stop = threading.Event()
        errors: list[BaseException] = []

        def read() -> None:
            try:
                while not stop.is_set():
                    for cid, data in first:
                        assert store.get(cid) == data
                    list(store.keys())
                    time.sleep(0.001)  # leave the writer some of the GIL
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for thread in readers:
            thread.start()
        try:
            for cid, data in _blocks(48, 128 * 1024):  # 6 MiB: grows 1 -> 8 MiB
                store.put(cid, data)
        finally:
            stop.set()
            for thread in readers:
                thread.join(timeout=30)
        assert not errors and not any(thread.is_alive() for thread in readers)
        assert store.map_size >= 8 * MIB


def test_lmdb_adopts_a_map_another_process_grew(tmp_path):
    with LMDBBlockstore(tmp_path / "s", map_size=1 * MIB) as store:
        store.put(CID.of(b"before"), b"before")
        child = f"""
from blockmesh.data.cid import CID
from blockmesh.data.store.lmdbstore import LMDBBlockstore
with LMDBBlockstore({str(tmp_path / "s")!r}, map_size={1 * MIB}) as other:
    for index in range(40):
        data = index.to_bytes(4, "big") + bytes(128 * 1024)
        other.put(CID.of(data), data)
    print(other.map_size)
"""
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        assert int(done.stdout) >= 8 * MIB
        assert store.get(CID.of(b"before")) == b"before"
        store.put(CID.of(b"after"), b"after")  # MDB_MAP_RESIZED: takes the bigger map
        assert store.map_size >= 8 * MIB
        assert len(list(store.keys())) == 42


_LIMITED = """
import resource, sys
{setup}
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
limit = vm + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
{body}
"""


def _run_limited(headroom: int, setup: str, body: str, *args: str, env=None, stdin=b""):
    """Run `body` in a child whose address space may grow by `headroom` bytes past its size
    after `setup` (the imports)."""
    code = _LIMITED.format(setup=textwrap.dedent(setup), body=textwrap.dedent(body))
    return subprocess.run([sys.executable, "-c", code, str(headroom), *args], env=env,
                          input=stdin, capture_output=True, timeout=120)


_CLI_SETUP = "from blockmesh.cli.main import main"
_CLI_BODY = "sys.argv = ['blockmesh', *sys.argv[2:]]\nmain()"


def test_cli_works_under_an_address_space_limit_and_says_so_when_it_cannot(tmp_path):
    Repo.init(tmp_path / "repo").close()
    env = dict(os.environ, BLOCKMESH_PATH=str(tmp_path / "repo"))
    # a terabyte map could never be reserved under this limit (lmdb.MemoryError before)
    done = _run_limited(256 * MIB, _CLI_SETUP, _CLI_BODY, "block", "put", env=env,
                        stdin=b"limited")
    assert done.returncode == 0, done.stderr.decode()
    with Repo.open(tmp_path / "repo") as repo:
        assert repo.blocks.get(CID.parse(done.stdout.decode().strip())) == b"limited"
    # too little room for even the initial map: one line, non-zero exit
    done = _run_limited(INITIAL_MAP_SIZE // 2, _CLI_SETUP, _CLI_BODY, "repo", "stat", env=env)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr.decode()
    assert lines[0].startswith("Error: cannot map the block store")


def test_lmdb_growth_refused_by_the_address_space_is_store_full(tmp_path):
    setup = f"""
        from blockmesh.data.cid import CID
        from blockmesh.data.store.flatfs import StoreFull
        from blockmesh.data.store.lmdbstore import LMDBBlockstore
        store = LMDBBlockstore({str(tmp_path / "s")!r}, map_size={4 * MIB})
        blocks = []
        for index in range(300):
            data = index.to_bytes(4, "big") + bytes(256 * 1024 - 4)
            blocks.append((CID.of(data), data))
    """
    # 24 MiB to spare: the map can double from 4 MiB a time or two, never to 64 MiB
    body = """
        stored = 0
        try:
            for cid, data in blocks:
                store.put(cid, data)
                stored += 1
        except StoreFull as exc:
            assert "address space" in str(exc), exc
            assert all(store.get(cid) == data for cid, data in blocks[:stored])
            print(stored, store.map_size)
        else:
            print("no StoreFull")
    """
    done = _run_limited(24 * MIB, setup, body)
    assert done.returncode == 0, done.stderr.decode()
    stored, map_size = (int(x) for x in done.stdout.split())
    assert 8 * MIB <= map_size <= 32 * MIB
    assert stored * 256 * 1024 <= map_size and stored >= 16


def test_lmdb_open_refused_by_the_address_space_is_store_error(tmp_path):
    setup = "from blockmesh.data.store.lmdbstore import LMDBBlockstore, StoreError"
    body = f"""
        try:
            LMDBBlockstore({str(tmp_path / "s")!r}, map_size={64 * MIB})
        except StoreError as exc:
            print("StoreError", exc)
    """
    done = _run_limited(16 * MIB, setup, body)
    assert done.stdout.startswith(b"StoreError cannot map"), done.stderr.decode()
    assert issubclass(StoreFull, StoreError)


# -- flatfs temporaries ----------------------------------------------------------------------
_WRITER = """
import sys
from blockmesh.data.store.flatfs import FlatFSBlockstore
store = FlatFSBlockstore(sys.argv[1])
shard = store.root / "XX"
shard.mkdir(exist_ok=True)
tmp = store._temporary(shard)  # what a put writes into before its rename
tmp.write_bytes(b"half a block")
print(tmp, flush=True)
sys.stdin.read()  # mid-write until the test closes stdin or kills us
"""


def _start_writer(root: Path) -> tuple[subprocess.Popen[bytes], Path]:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the child prints at once or dies (EOF)
    assert line, "writer died before creating its temporary"
    return proc, Path(line.decode().strip())


def test_flatfs_keeps_a_live_writers_temporary_and_removes_a_dead_ones(tmp_path):
    root = tmp_path / "flat"
    FlatFSBlockstore(root).close()
    proc, live_tmp = _start_writer(root)
    try:
        with FlatFSBlockstore(root) as store:  # another process opens the store meanwhile
            assert live_tmp.exists()
            cid = CID.of(b"x")
            store.put(cid, b"x")
        assert live_tmp.exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with FlatFSBlockstore(root) as store:  # its owner is dead now
        assert not live_tmp.exists()
        assert store.get(cid) == b"x"
    assert not list(root.glob(".owner-*.lock"))  # closed stores and the dead one left none
