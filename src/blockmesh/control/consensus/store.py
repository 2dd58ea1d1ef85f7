"""Durable (SQLite, WAL) and in-memory stores for a replica's blocks, checkpoints and votes.

Both serve the StateProvider side of state transfer (blocks_from_height, checkpoints,
checkpoint) and give back a `RecoveredState` from which the engine is rebuilt after a restart.
A store applies one Output's records in one transaction, so a crash leaves either all of them
or none, never a vote without the block or view it belongs to. Entering a view drops the
VIEW_CHANGE and NEW_VIEW messages of older views but the newest NEW_VIEW: a replica relays that
one to peers that missed it, also after a restart in the middle of its next view change.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message

from blockmesh.control.consensus.outputs import (
    Record,
    SaveBlock,
    SaveCheckpoint,
    SaveMessage,
    SavePrepared,
    SaveView,
)
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import BlockmeshError, DecodeError

#: Message kinds whose records die with the stable checkpoint at or above their sequence.
_LOG_KINDS = (pb.PRE_PREPARE, pb.PREPARE, pb.COMMIT, pb.CHECKPOINT)
#: Blocks read per query while replaying, to bound memory on long chains.
_REPLAY_PAGE = 512


@dataclass(frozen=True)
class RecoveredState:
    view: int
    view_changing: bool
    #: Own sent messages and accepted PRE_PREPAREs, in no particular order.
    messages: list[pb.PBFTMessage]
    prepared: list[tuple[int, pb.PreparedCertificate]]
    checkpoint: pb.CheckpointCertificate | None
    #: Every committed block from height 1, in order (read lazily).
    blocks: Iterable[pb.Block]


class ConsensusStore(Protocol):
    def apply(self, records: Sequence[Record]) -> None: ...

    def load(self) -> RecoveredState: ...

    def height(self) -> int: ...

    def blocks_from_height(self, height: int, limit: int) -> list[pb.Block]: ...

    def checkpoints(self) -> list[pb.CheckpointCertificate]: ...

    def checkpoint(self, sequence: int = 0) -> pb.CheckpointCertificate | None: ...


def _message_key(msg: pb.PBFTMessage) -> tuple[int, int, int, str]:
    return (msg.type, msg.view, msg.sequence, msg.node_id)


class MemoryStore:
    """The same contract as SqliteStore without a disk, for simulations: it survives a
    simulated crash of its engine because the harness keeps the object."""

    def __init__(self) -> None:
        self._view = (0, False)
        self._messages: dict[tuple[int, int, int, str], pb.PBFTMessage] = {}
        self._prepared: dict[int, pb.PreparedCertificate] = {}
        self._blocks: list[pb.Block] = []
        self._checkpoints: dict[int, pb.CheckpointCertificate] = {}

    def apply(self, records: Sequence[Record]) -> None:
        for record in records:
            if isinstance(record, SaveView):
                self._view = (record.view, record.view_changing)
                newest = max((k for k in self._messages if k[0] == pb.NEW_VIEW), default=None,
                              key=lambda k: k[1])
                self._messages = {k: m for k, m in self._messages.items()
                                  if k[0] in _LOG_KINDS or k[1] >= record.view or k == newest}
            elif isinstance(record, SaveMessage):
                self._messages[_message_key(record.message)] = record.message
            elif isinstance(record, SavePrepared):
                self._prepared[record.sequence] = record.certificate
            elif isinstance(record, SaveBlock):
                if record.block.height != len(self._blocks) + 1:
                    raise DecodeError(f"block {record.block.height} does not extend the store")
                self._blocks.append(record.block)
            elif isinstance(record, SaveCheckpoint):
                seq = record.certificate.sequence
                self._checkpoints[seq] = record.certificate
                self._messages = {k: m for k, m in self._messages.items()
                                  if k[0] not in _LOG_KINDS or k[2] > seq}
                self._prepared = {s: c for s, c in self._prepared.items() if s > seq}

    def load(self) -> RecoveredState:
        return RecoveredState(
            view=self._view[0],
            view_changing=self._view[1],
            messages=list(self._messages.values()),
            prepared=sorted(self._prepared.items()),
            checkpoint=self.checkpoint(0),
            blocks=list(self._blocks),
        )

    def height(self) -> int:
        return len(self._blocks)

    def blocks_from_height(self, height: int, limit: int) -> list[pb.Block]:
        start = max(height, 1) - 1
        return self._blocks[start:start + max(limit, 0)]

    def checkpoints(self) -> list[pb.CheckpointCertificate]:
        return [self._checkpoints[s] for s in sorted(self._checkpoints)]

    def checkpoint(self, sequence: int = 0) -> pb.CheckpointCertificate | None:
        if sequence == 0:
            return self._checkpoints[max(self._checkpoints)] if self._checkpoints else None
        return self._checkpoints.get(sequence)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (sequence INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    type INTEGER NOT NULL, view INTEGER NOT NULL, sequence INTEGER NOT NULL,
    node TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (type, view, sequence, node)
);
CREATE TABLE IF NOT EXISTS prepared (sequence INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS owner (
    only INTEGER PRIMARY KEY CHECK (only = 1), node TEXT NOT NULL, public_key BLOB NOT NULL
);
"""


class StoreOwnerMismatch(BlockmeshError):
    """The store was written by another identity than the one opening it."""


M = TypeVar("M", bound=Message)


def _parse(cls: type[M], data: bytes) -> M:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except (ProtoDecodeError, ValueError) as exc:
        raise DecodeError(f"corrupt {cls.__name__} record in the consensus store: {exc}") from None
    return msg


class SqliteStore:
    """SQLite in WAL mode. synchronous=NORMAL survives a killed process (the WAL is in the OS
    cache); pass synchronous="FULL" to also survive power loss at the cost of an fsync per
    Output."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous must be NORMAL or FULL")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def claim(self, node_id: str, public_key: bytes) -> None:
        """Bind this store to the replica identity that writes it, or refuse another one.

        A log holds votes its replica signed; a replica started with a different key (a new
        `cluster init` over an old data directory, another node's files) would sign votes
        contradicting them, or serve a log under the wrong name. The first replica to open a
        store (or the first after this check was added) records its id and public key;
        afterwards anyone else gets StoreOwnerMismatch and the store is left untouched."""
        with self._lock:
            row = self._conn.execute("SELECT node, public_key FROM owner").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO owner VALUES (1, ?, ?)", (node_id, public_key))
                return
        node, key = row[0], bytes(row[1])
        if (node, key) != (node_id, public_key):
            raise StoreOwnerMismatch(
                f"this consensus store belongs to {node} with public key {key.hex()[:16]}…, "
                f"not to {node_id} with {public_key.hex()[:16]}… (a new cluster over an old "
                "data directory? move the directory away to start empty)")

    def apply(self, records: Sequence[Record]) -> None:
        if not records:
            return
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for record in records:
                    self._apply_one(cur, record)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _apply_one(self, cur: sqlite3.Cursor, record: Record) -> None:
        if isinstance(record, SaveView):
            cur.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            [("view", record.view), ("view_changing", int(record.view_changing))])
            cur.execute(f"DELETE FROM messages WHERE view < ? AND type NOT IN "
                        f"({','.join(str(k) for k in _LOG_KINDS)}) AND NOT (type = ? AND view = "
                        "(SELECT MAX(view) FROM messages WHERE type = ?))",
                        (record.view, pb.NEW_VIEW, pb.NEW_VIEW))
        elif isinstance(record, SaveMessage):
            m = record.message
            cur.execute("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?)",
                        (*_message_key(m), m.SerializeToString(deterministic=True)))
        elif isinstance(record, SavePrepared):
            cur.execute("INSERT OR REPLACE INTO prepared VALUES (?, ?)",
                        (record.sequence,
                         record.certificate.SerializeToString(deterministic=True)))
        elif isinstance(record, SaveBlock):
            b = record.block
            top = cur.execute("SELECT COALESCE(MAX(height), 0) FROM blocks").fetchone()[0]
            if b.height != top + 1:
                raise DecodeError(f"block {b.height} does not extend the store at {top}")
            cur.execute("INSERT INTO blocks VALUES (?, ?)",
                        (b.height, b.SerializeToString(deterministic=True)))
        elif isinstance(record, SaveCheckpoint):
            c = record.certificate
            cur.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)",
                        (c.sequence, c.SerializeToString(deterministic=True)))
            cur.execute(f"DELETE FROM messages WHERE sequence <= ? AND type IN "
                        f"({','.join(str(k) for k in _LOG_KINDS)})", (c.sequence,))
            cur.execute("DELETE FROM prepared WHERE sequence <= ?", (c.sequence,))

    def load(self) -> RecoveredState:
        with self._lock:
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            messages = [_parse(pb.PBFTMessage, row[0]) for row in
                        self._conn.execute("SELECT data FROM messages").fetchall()]
            prepared = [(row[0], _parse(pb.PreparedCertificate, row[1])) for row in
                        self._conn.execute("SELECT sequence, data FROM prepared ORDER BY sequence")]
        return RecoveredState(
            view=int(meta.get("view", 0)),
            view_changing=bool(meta.get("view_changing", 0)),
            messages=messages,
            prepared=prepared,
            checkpoint=self.checkpoint(0),
            blocks=self._iter_blocks(),
        )

    def _iter_blocks(self) -> Iterator[pb.Block]:
        height = 1
        while True:
            page = self.blocks_from_height(height, _REPLAY_PAGE)
            yield from page
            if len(page) < _REPLAY_PAGE:
                return
            height += len(page)

    def height(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COALESCE(MAX(height), 0) FROM blocks")
                       .fetchone()[0])

    def blocks_from_height(self, height: int, limit: int) -> list[pb.Block]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT data FROM blocks WHERE height >= ? ORDER BY height LIMIT ?",
                (max(height, 1), max(limit, 0))).fetchall()
        return [_parse(pb.Block, row[0]) for row in rows]

    def checkpoints(self) -> list[pb.CheckpointCertificate]:
        with self._lock:
            rows = self._conn.execute("SELECT data FROM checkpoints ORDER BY sequence").fetchall()
        return [_parse(pb.CheckpointCertificate, row[0]) for row in rows]

    def checkpoint(self, sequence: int = 0) -> pb.CheckpointCertificate | None:
        with self._lock:
            if sequence == 0:
                row = self._conn.execute(
                    "SELECT data FROM checkpoints ORDER BY sequence DESC LIMIT 1").fetchone()
            else:
                row = self._conn.execute("SELECT data FROM checkpoints WHERE sequence = ?",
                                         (sequence,)).fetchone()
        return None if row is None else _parse(pb.CheckpointCertificate, row[0])
