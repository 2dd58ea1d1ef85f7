"""The observer reads the pin database off the event loop: while a long job holds the pin
store's lock on another thread (as an `add` pinning does), the loop keeps running and a
snapshot still renders, from the last count."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

import trio

from blockmesh.data.cid import CID
from blockmesh.data.store.repo import Repo
from blockmesh.observe.observer import Observer


async def test_pin_reads_never_block_the_event_loop(tmp_path: Path) -> None:
    repo = Repo.init(tmp_path / "repo")
    for i in range(3):
        repo.pins.add(CID.of(b"root %d" % i))
    # The observer reads only the repo here: its store and pin loops, and `store()`.
    observer = Observer(SimpleNamespace(repo=repo))  # type: ignore[arg-type]
    held, release = threading.Event(), threading.Event()

    def long_job() -> None:
        with repo.pins._lock:  # what a worker-thread pin holds while it writes
            held.set()
            release.wait(10)

    worst = 0.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(observer._store_loop)
        nursery.start_soon(observer._pin_loop)
        with trio.fail_after(10):
            while observer.pin_count != 3:
                await trio.sleep(0.01)
        job = threading.Thread(target=long_job)
        job.start()
        try:
            assert held.wait(10)
            last = trio.current_time()
            end = last + 1.5  # over a pin loop period: it reads at least once meanwhile
            while trio.current_time() < end:
                store = observer.store()
                await trio.sleep(0.01)
                now = trio.current_time()
                worst, last = max(worst, now - last), now
        finally:
            release.set()
            job.join(10)
        nursery.cancel_scope.cancel()
    repo.close()
    assert worst < 1.0  # the lock was held for 1.5 s: the loop never waited for it
    assert store["pin_count"] == 3 and len(store["pins"]) == 3
