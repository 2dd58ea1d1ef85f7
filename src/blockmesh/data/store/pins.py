"""Pins in SQLite (WAL): which roots garbage collection must keep, recursively or alone."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from blockmesh.data.cid import CID
from blockmesh.errors import NotFound

RECURSIVE = "recursive"
DIRECT = "direct"


class PinStore:
    """One SQLite connection shared by the daemon's event loop and its worker threads (long
    jobs pin from there), so every statement runs under one lock and `add` is one upsert."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pins (cid BLOB PRIMARY KEY, kind TEXT NOT NULL)"
        )

    def add(self, cid: CID, kind: str = RECURSIVE) -> None:
        # a recursive pin supersedes a direct one, never the other way round (kubo's rule)
        with self._lock:
            self._db.execute(
                "INSERT INTO pins (cid, kind) VALUES (?, ?) ON CONFLICT(cid) DO UPDATE SET "
                "kind = excluded.kind WHERE pins.kind <> ?", (bytes(cid), kind, RECURSIVE))

    def remove(self, cid: CID) -> None:
        with self._lock:
            removed = self._db.execute("DELETE FROM pins WHERE cid = ?", (bytes(cid),)).rowcount
        if removed == 0:
            raise NotFound(f"{cid} is not pinned")

    def kind(self, cid: CID) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT kind FROM pins WHERE cid = ?",
                                   (bytes(cid),)).fetchone()
        return row[0] if row else None

    def list(self, kind: str | None = None) -> Iterator[tuple[CID, str]]:
        with self._lock:
            rows = self._db.execute("SELECT cid, kind FROM pins ORDER BY kind, cid").fetchall()
        for raw, pin_kind in rows:
            if kind is None or kind == pin_kind:
                yield CID.decode(raw), pin_kind

    def summary(self, limit: int) -> tuple[int, list[tuple[CID, str]]]:
        """How many pins there are and the first `limit` of them (in `list`'s order), read
        without fetching every row."""
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM pins").fetchone()
            rows = self._db.execute("SELECT cid, kind FROM pins ORDER BY kind, cid LIMIT ?",
                                    (limit,)).fetchall()
        return count, [(CID.decode(raw), kind) for raw, kind in rows]

    def close(self) -> None:
        self._db.close()
