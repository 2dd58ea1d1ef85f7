"""The reprovider engine (strategies, timing) and its adapter against a real repo."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import trio
from routing_double import DictRouting, Directory

from blockmesh.data.cid import CID
from blockmesh.data.dag.importer import ImportOptions, import_bytes
from blockmesh.data.node.providing import Providing, repo_sources
from blockmesh.data.routing.reprovider import Reprovider, ReproviderError, Round, strategy_keys
from blockmesh.data.store.blockstore import BatchedPut
from blockmesh.data.store.config import Config, ConfigError
from blockmesh.data.store.repo import Repo

SMALL = ImportOptions(chunk_size=1024)


def _with_a_peer(routing: DictRouting) -> DictRouting:
    """Another node in the routing's directory, so it has someone to announce to."""
    DictRouting(routing.directory, "other", ())
    return routing


def _add(repo: Repo, data: bytes) -> tuple[CID, list[CID]]:
    sink = BatchedPut(repo.blocks)
    root = import_bytes(data, SMALL, sink).cid
    sink.flush()
    return root, list(sink.cids)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo.init(tmp_path / "repo")


def test_strategies_choose_kubos_sets(repo: Repo) -> None:
    pinned, pinned_blocks = _add(repo, b"p" * 5000)
    direct, _ = _add(repo, b"d" * 100)
    _, loose_blocks = _add(repo, b"loose" * 1000)
    repo.pin(pinned)
    repo.pin(direct, recursive=False)
    sources = repo_sources(repo)
    roots = list(strategy_keys("roots", sources))
    assert {c.multihash for c in roots} == {pinned.multihash, direct.multihash}
    pinned_set = {c.multihash for c in strategy_keys("pinned", sources)}
    assert pinned_set == {c.multihash for c in pinned_blocks} | {direct.multihash}
    every = list(strategy_keys("all", sources))
    assert len(every) == len({c.multihash for c in every})  # each once
    assert {c.multihash for c in every} >= pinned_set | {c.multihash for c in loose_blocks}
    with pytest.raises(ReproviderError):
        list(strategy_keys("flat", sources))


def test_rounds_follow_the_interval_and_never_overlap() -> None:
    engine = Reprovider("all", 100.0, start=0.0, initial_delay=10.0)
    assert engine.next_wake(0.0) == 10.0
    assert engine.poll(5.0).full is False
    assert engine.poll(10.0).full is True
    assert engine.poll(50.0).full is False  # the round still runs: no second one
    assert engine.next_wake(50.0) is None
    engine.finished(60.0, 12)
    assert (engine.last_full, engine.last_count) == (60.0, 12)
    assert engine.next_wake(60.0) == 100.0
    assert engine.poll(159.0).full is False and engine.poll(160.0).full is True


def test_interval_zero_is_off_but_new_roots_still_go_out() -> None:
    engine = Reprovider("roots", 0.0, start=0.0)
    assert not engine.enabled and engine.next_wake(0.0) is None
    root = CID.of(b"x")
    assert engine.provide_now([root, root]) is True
    assert engine.provide_now([root]) is False  # already queued
    assert engine.next_wake(1e9) == 0.0
    job = engine.poll(1e9)
    assert job.roots == [root] and job.full is False
    assert engine.poll(1e9).roots == []


def test_bad_settings_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ReproviderError):
        Reprovider("everything", 1.0, start=0.0)
    with pytest.raises(ReproviderError):
        Reprovider("all", -1.0, start=0.0)
    path = tmp_path / "config.toml"
    path.write_text('[reprovider]\ninterval = "22h"\n')
    with pytest.raises(ConfigError, match=r"reprovider\.interval"):
        Config.load(path)
    path.write_text('[reprovider]\nstrategy = "roots"\ninterval = 0\n')
    loaded = Config.load(path)
    assert (loaded.reprovider.strategy, loaded.reprovider.interval) == ("roots", 0)
    assert Config.load(path).to_toml() == loaded.to_toml()


async def test_adapter_announces_new_roots_then_full_rounds(repo: Repo) -> None:
    pinned, pinned_blocks = _add(repo, b"p" * 5000)
    repo.pin(pinned)
    routing = _with_a_peer(DictRouting(Directory(), "me", ()))
    engine = Reprovider("pinned", 0.5, start=trio.current_time(), initial_delay=0.3)
    providing = Providing(routing, repo, engine)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(providing.run)
            extra = CID.of(b"new root")
            providing.provide_roots([extra])
            while extra not in routing.provided:
                await trio.sleep(0.01)
            assert engine.last_full is None  # the root went out before the first round
            while engine.last_full is None:
                await trio.sleep(0.05)
            assert engine.last_count == len({c.multihash for c in pinned_blocks})
            first = engine.last_full
            while engine.last_full == first:
                await trio.sleep(0.05)  # a second round, `interval` after the first
            assert engine.last_full - first >= 0.5
            nursery.cancel_scope.cancel()
    assert {c.multihash for c in routing.provided} >= {c.multihash for c in pinned_blocks}


async def test_adapter_survives_a_failing_routing(repo: Repo, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="blockmesh.data.node.providing")
    root, _ = _add(repo, b"r" * 100)
    repo.pin(root)
    routing = _with_a_peer(DictRouting(Directory(), "me", (), fail_provide=True))
    engine = Reprovider("roots", 0.2, start=trio.current_time(), initial_delay=0.0)
    providing = Providing(routing, repo, engine)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(providing.run)
            while providing.stats.failed < 2:  # two rounds, each failing, neither fatal
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert providing.stats.provided == 0 and engine.last_count == 0
    failures = [r for r in caplog.records if "could not provide" in r.getMessage()]
    assert failures and all(r.levelno == logging.DEBUG for r in failures)  # never per CID at info
    assert any(r.levelno == logging.INFO and "1 failed" in r.getMessage() for r in caplog.records)


def test_a_round_without_peers_is_skipped_and_its_roots_held() -> None:
    engine = Reprovider("all", 3600.0, start=0.0, initial_delay=10.0, retry_delay=5.0)
    root = CID.of(b"root")
    engine.provide_now([root])
    job = engine.poll(10.0)
    assert job.full and job.roots == [root]
    engine.skipped(10.0, job)
    assert engine.skipped_rounds == 1 and engine.next_wake(10.0) == 5.0
    assert engine.poll(12.0) == Round([], False)  # held, not lost
    assert engine.poll(15.0) == Round([root], True)  # 5 s later, not an interval later
    engine.skipped(15.0, Round([root], False))  # roots alone: the round is not counted
    assert engine.skipped_rounds == 1 and engine.next_wake(15.0) == 5.0


async def test_adapter_skips_rounds_without_peers_in_one_line(repo: Repo, caplog) -> None:
    """With nobody to announce to, a round walks no block and logs one line, not one per CID;
    once a peer appears, the held root and the round go out a retry delay later."""
    caplog.set_level(logging.DEBUG, logger="blockmesh.data.node.providing")
    _, blocks = _add(repo, os.urandom(20_000))
    directory = Directory()
    routing = DictRouting(directory, "me", ())
    engine = Reprovider("all", 3600.0, start=trio.current_time(), initial_delay=0.0,
                        retry_delay=0.3)
    providing = Providing(routing, repo, engine)
    walked: list[CID] = []

    def counting(cids):
        for cid in cids:
            walked.append(cid)
            yield cid

    iterate = repo.blocks.iterate
    repo.blocks.iterate = lambda: counting(iterate())  # type: ignore[method-assign]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(providing.run)
            root = CID.of(b"new root")
            providing.provide_roots([root])
            while engine.skipped_rounds < 3:
                await trio.sleep(0.05)
            assert routing.provided == [] and walked == []
            info = [r for r in caplog.records if r.levelno >= logging.INFO]
            assert len(info) == 1 and "no routing peers" in info[0].getMessage()
            _with_a_peer(routing)
            while engine.last_full is None:
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert root in routing.provided
    assert engine.last_count == len({c.multihash for c in blocks}) > 2
    assert not any(r.levelno >= logging.INFO and str(blocks[0]) in r.getMessage()
                   for r in caplog.records)
