"""A blockmesh repo on disk (like kubo's IPFS_PATH): config, blocks, pins and the GC lock.

`add` holds the GC lock shared and `repo gc` holds it exclusive, across processes (flock), so a
collection running beside an import can never delete a block the import has written but not yet
pinned.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from blockmesh.data.cid import CID
from blockmesh.data.dag.links import links, walk
from blockmesh.data.store.blockstore import Blockstore
from blockmesh.data.store.config import Config, ConfigError
from blockmesh.data.store.flatfs import FlatFSBlockstore
from blockmesh.data.store.lmdbstore import LMDBBlockstore
from blockmesh.data.store.pins import DIRECT, RECURSIVE, PinStore
from blockmesh.errors import BlockmeshError, HashMismatch, NotFound

ENV_PATH = "BLOCKMESH_PATH"
CONFIG_FILE = "config.toml"
# Owner only: the repo holds the node's private key, the API token and the user's data.
REPO_MODE = 0o700


class RepoError(BlockmeshError):
    """The repo is missing, not initialised, or already initialised."""


class RepoBusy(RepoError):
    """The repo's GC lock is held by a writer (or a GC), and the caller chose not to wait."""


def default_path() -> Path:
    return Path(os.environ.get(ENV_PATH) or Path.home() / ".blockmesh").expanduser()


@dataclass(frozen=True)
class GCResult:
    removed: list[CID]
    kept: int


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    corrupt: list[CID]


class Repo:
    def __init__(self, path: Path, config: Config) -> None:
        self.path = path
        self.config = config
        self.blocks = _open_blockstore(path, config)
        self.pins = PinStore(path / "pins.sqlite")

    @classmethod
    def init(cls, path: Path | None = None, config: Config | None = None) -> Repo:
        path = path or default_path()
        if (path / CONFIG_FILE).exists():
            raise RepoError(f"a repo already exists at {path}")
        path.mkdir(parents=True, exist_ok=True, mode=REPO_MODE)
        # A directory that already existed keeps its mode through mkdir: tighten it too.
        os.chmod(path, REPO_MODE)
        config = config or Config()
        (path / CONFIG_FILE).write_text(config.to_toml())
        return cls(path, config)

    @classmethod
    def open(cls, path: Path | None = None) -> Repo:
        path = path or default_path()
        if not (path / CONFIG_FILE).exists():
            raise RepoError(f"no blockmesh repo at {path}: run `blockmesh init` "
                            f"(or set {ENV_PATH})")
        return cls(path, Config.load(path / CONFIG_FILE))

    def close(self) -> None:
        self.blocks.close()
        self.pins.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def gc_lock(self, exclusive: bool = False, *, wait: bool = True) -> Iterator[None]:
        """Writers hold it shared, GC exclusive. With wait=False a lock held the other way
        raises RepoBusy at once instead of blocking (a daemon's event loop must not block)."""
        with open(self.path / "gc.lock", "a+") as handle:
            try:
                fcntl.flock(handle, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                            | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise RepoBusy("an import or pin is writing to the repo; run GC again when it "
                               "is done") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- pins and GC -----------------------------------------------------------------------------
    def pin(self, cid: CID, recursive: bool = True) -> None:
        """Pin `cid`; a recursive pin first checks the whole DAG is present."""
        if recursive:
            for _ in walk(self.blocks.get, cid):
                pass
        elif not self.blocks.has(cid):
            raise NotFound(f"block {cid} is not in the repo")
        self.pins.add(cid, RECURSIVE if recursive else DIRECT)

    def live_set(self) -> set[bytes]:
        keep: set[bytes] = set()
        for cid, kind in self.pins.list():
            if kind == DIRECT:
                keep.add(cid.multihash)
                continue
            stack = [cid]
            while stack:
                current = stack.pop()
                if current.multihash in keep:
                    continue
                keep.add(current.multihash)
                with contextlib.suppress(NotFound):
                    stack.extend(links(current, self.blocks.get(current)))
        return keep

    def gc(self, *, wait: bool = True) -> GCResult:
        """Remove every block no pin reaches; wait=False raises RepoBusy rather than wait for
        running writers."""
        with self.gc_lock(exclusive=True, wait=wait):
            keep = self.live_set()
            removed = []
            for multihash in list(self.blocks.keys()):
                if multihash not in keep:
                    cid = CID(1, 0x55, multihash)
                    self.blocks.delete(cid)
                    removed.append(cid)
        return GCResult(removed, len(keep))

    def verify(self) -> VerifyResult:
        corrupt = []
        checked = 0
        for cid in self.blocks.iterate():
            checked += 1
            try:
                cid.verify(self.blocks.get(cid))
            except (HashMismatch, NotFound):
                corrupt.append(cid)
        return VerifyResult(checked, corrupt)


def _open_blockstore(path: Path, config: Config) -> Blockstore:
    engine = config.datastore.engine
    if engine == "lmdb":
        return LMDBBlockstore(path / "blocks", sync=config.datastore.sync)
    if engine == "flatfs":
        return FlatFSBlockstore(path / "blocks", sync=config.datastore.sync)
    raise ConfigError(f"unknown datastore engine {engine!r} (lmdb or flatfs)")
