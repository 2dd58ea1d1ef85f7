"""The reprovider's adapter: runs `routing.reprovider.Reprovider` against a ContentRouting.

It owns the I/O the engine leaves out: reading keys from the repo, calling `provide` (a few at
a time, each bounded) and sleeping until the engine or a new root wakes it. A failed announce
is counted (and logged at debug level), never fatal: the next round tries again. With no
routing peers nothing is walked or announced: the round is skipped with one log line.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import trio

from blockmesh.data.cid import CID
from blockmesh.data.dag.links import walk
from blockmesh.data.routing.api import ContentRouting
from blockmesh.data.routing.reprovider import KeySources, Reprovider, Round, strategy_keys
from blockmesh.data.store.repo import Repo
from blockmesh.errors import BlockmeshError

logger = logging.getLogger(__name__)

#: Announcements in flight at once (each is a DHT lookup plus ADD_PROVIDER messages).
WORKERS = 4
#: One announcement may take this long before it counts as failed.
PROVIDE_TIMEOUT = 60.0


@dataclass
class ProvideStats:
    provided: int = 0
    failed: int = 0


def repo_sources(repo: Repo) -> KeySources:
    def dag(root: CID) -> Iterator[CID]:
        # A pinned DAG is complete unless the repo was damaged; announce what is there.
        with contextlib.suppress(BlockmeshError):
            for cid, _ in walk(repo.blocks.get, root):
                yield cid

    return KeySources(all_blocks=repo.blocks.iterate, pins=repo.pins.list, dag=dag)


class Providing:
    """Announce new roots at once and everything the strategy names every interval."""

    def __init__(self, routing: ContentRouting, repo: Repo, engine: Reprovider) -> None:
        self.routing = routing
        self.repo = repo
        self.engine = engine
        self.stats = ProvideStats()
        self._wake = trio.Event()
        self._skipping = False  # rounds are being skipped: log at debug after the first
        self._cut_short = False

    def provide_roots(self, roots: Iterable[CID]) -> None:
        """Hook for add and pin: these roots go out now, not at the next round."""
        if self.engine.provide_now(roots):
            self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            now = trio.current_time()
            job = self.engine.poll(now)
            if (job.roots or job.full) and not self.routing.has_peers():
                self._skip(job, now)
            elif job.roots or job.full:
                self._skipping = False
                if job.roots:
                    await self._announce(job.roots)
                if job.full:
                    await self._full_round()
            delay = self.engine.next_wake(trio.current_time())
            if delay is None or delay > 0:
                self._wake = trio.Event()
                with trio.move_on_after(delay if delay is not None else float("inf")):
                    await self._wake.wait()

    def _skip(self, job: Round, now: float) -> None:
        """No routing peers: announcing would fail once per CID, so nothing is walked or sent
        and one line is logged (at info the first time, until announcing works again); the
        engine holds the roots and brings the round forward (`Reprovider.skipped`)."""
        self.engine.skipped(now, job)
        wake = self.engine.next_wake(now)
        logger.log(logging.DEBUG if self._skipping else logging.INFO,
                   "no routing peers: %s skipped (%d new roots held); trying again %s",
                   "the reprovide round" if job.full else "announcing", len(job.roots),
                   "when a root is added" if wake is None else f"in {wake:g} s")
        self._skipping = True

    async def _full_round(self) -> None:
        failed = self.stats.failed
        count = await self._announce(strategy_keys(self.engine.strategy, repo_sources(self.repo)))
        self.engine.finished(trio.current_time(), count)
        logger.info("reprovided %d CIDs (%s), %d failed%s", count, self.engine.strategy,
                    self.stats.failed - failed,
                    "; stopped early: no routing peers left" if self._cut_short else "")

    async def _announce(self, cids: Iterable[CID]) -> int:
        """Provide each CID with at most WORKERS at once, stopping early if the routing loses
        all its peers; how many succeeded. Failures are logged per CID at debug level only
        (a round covers every block; the round's summary line counts them)."""
        send, receive = trio.open_memory_channel[CID](0)
        before = self.stats.provided
        self._cut_short = False

        async def worker(inbox: trio.MemoryReceiveChannel[CID]) -> None:
            async for cid in inbox:
                try:
                    with trio.fail_after(PROVIDE_TIMEOUT):
                        await self.routing.provide(cid)
                    self.stats.provided += 1
                except (BlockmeshError, trio.TooSlowError) as exc:
                    self.stats.failed += 1
                    logger.debug("could not provide %s: %s", cid, exc)

        async with trio.open_nursery() as nursery:
            async with receive:
                for _ in range(WORKERS):
                    nursery.start_soon(worker, receive.clone())
            async with send:
                for cid in cids:
                    if not self.routing.has_peers():
                        self._cut_short = True
                        break
                    await send.send(cid)
        return self.stats.provided - before
