"""Long repo jobs run beside the event loop: an import under way leaves the daemon serving,
stops when its request is cancelled, and a GC asked for meanwhile is refused, not blocked on.
The import is held at its first chunk by its own progress callback (which runs on the worker
thread), so every step is ordered by the test and nothing depends on the machine's speed."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import pytest
import trio

from blockmesh.daemon.dispatch import PREFIX
from blockmesh.daemon.http import JsonReply
from blockmesh.daemon.repo_routes import RepoApi
from blockmesh.data.cid import CID
from blockmesh.data.store.blockstore import BatchedPut
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.data.store.repo import Repo


async def call(api: RepoApi, command: str, **body: object) -> JsonReply:
    reply = await api.handle(PREFIX + command, body)
    assert isinstance(reply, JsonReply)
    return reply


class Gate:
    """A progress callback that holds the worker at its first chunk until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, done: int) -> None:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(20), "the test never released the import"

    async def wait_entered(self) -> None:
        assert await trio.to_thread.run_sync(self.entered.wait, 20)


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big"
    path.write_bytes(b"\xab" * (1 << 20))  # four 256 KiB chunks: four progress calls
    return path


async def test_an_import_under_way_leaves_the_loop_serving(tmp_path, big_file):
    gate = Gate()
    with Repo.init(tmp_path / "repo") as repo:
        api = RepoApi(repo, gc_waits=False, progress=gate)
        (tmp_path / "small").write_bytes(b"small file")
        results: list[JsonReply] = []

        async def add_big() -> None:
            results.append(await call(api, "add", paths=[str(big_file)]))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(add_big)
                await gate.wait_entered()  # the big import holds the GC lock, mid-file
                small = await call(api, "pin/ls")
                assert small.status == 200 and not results
                busy = await call(api, "repo/gc")
                assert busy.status == 409 and "run GC again" in busy.value["error"]
                gate.release.set()
        assert results[0].status == 200 and gate.calls == 4
        root = results[0].value[-1]["Hash"]
        assert [str(cid) for cid, _ in repo.pins.list()] == [root]
        assert (await call(api, "repo/gc")).status == 200


async def test_a_cancelled_import_stops_at_its_next_chunk_and_pins_nothing(tmp_path, big_file):
    gate = Gate()
    with Repo.init(tmp_path / "repo") as repo:
        api = RepoApi(repo, progress=gate)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(call, api, "add", paths=[str(big_file)]))
                await gate.wait_entered()
                nursery.cancel_scope.cancel()
                gate.release.set()
        assert gate.calls == 1  # the worker saw the cancellation before its second chunk
        assert list(repo.pins.list()) == []


class FailingStore(MemoryBlockstore):
    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.batches = 0
        self.fail_after = fail_after
        self.concurrent = 0
        self.most_concurrent = 0
        self._lock = threading.Lock()

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        with self._lock:
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            self.batches += 1
            if self.batches > self.fail_after:
                raise OSError(28, "No space left on device")
            super()._put_many(items)
        finally:
            with self._lock:
                self.concurrent -= 1


def test_batched_put_stores_everything_by_flush_with_one_batch_in_flight():
    store = FailingStore(fail_after=1000)
    sink = BatchedPut(store, max_bytes=1000)
    blocks = [bytes([i]) * 300 for i in range(50)]
    for data in blocks:
        sink(CID.of(data), data)
    sink.flush()
    assert all(store.has(CID.of(data)) for data in blocks)
    assert store.most_concurrent == 1 and store.batches == 13


def test_batched_put_raises_a_failed_write_at_the_next_batch_or_flush():
    store = FailingStore(fail_after=1)
    sink = BatchedPut(store, max_bytes=1000)
    with pytest.raises(OSError, match="No space"):
        for i in range(50):
            data = bytes([i]) * 300
            sink(CID.of(data), data)
        sink.flush()


def test_closing_a_batched_put_waits_for_the_batch_being_written():
    """An import that fails leaves no write running past its GC lock."""
    started, release = threading.Event(), threading.Event()

    class SlowStore(MemoryBlockstore):
        def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
            started.set()
            assert release.wait(10)
            super()._put_many(items)

    store = SlowStore()
    sink = BatchedPut(store, max_bytes=100)
    sink(CID.of(b"x" * 200), b"x" * 200)  # a full batch: handed to the writer
    assert started.wait(10)
    threading.Timer(0.2, release.set).start()
    sink.close()  # returns only once the write is done
    assert store.has(CID.of(b"x" * 200)) and sink._writer is None
