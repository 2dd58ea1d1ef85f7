"""One peer's queue of replies not yet sent: highest priority first, one task per CID.

A later want for a CID already queued merges into the existing task (a block beats a HAVE, a
HAVE beats a DONT_HAVE, the higher priority wins), so a peer repeating itself cannot grow the
queue beyond its wantlist.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from enum import IntEnum

from blockmesh.data.cid import CID


class TaskKind(IntEnum):
    # Ordered by strength when two tasks for one CID merge.
    DONT_HAVE = 0
    HAVE = 1
    BLOCK = 2


@dataclass(slots=True)
class Task:
    cid: CID
    kind: TaskKind
    priority: int
    size: int  # block bytes for BLOCK tasks; bytes of the presence otherwise
    send_dont_have: bool = False  # a BLOCK task whose block vanished then becomes a DONT_HAVE


class PeerTasks:
    def __init__(self) -> None:
        self._tasks: dict[CID, tuple[int, Task]] = {}
        self._heap: list[tuple[int, int, CID]] = []  # (-priority, seq, cid); stale rows skipped
        self._seq = 0
        self.block_bytes = 0  # queued block bytes: what `pendingBytes` tells the peer

    def __len__(self) -> int:
        return len(self._tasks)

    def push(self, task: Task) -> None:
        old = self._tasks.get(task.cid)
        if old is not None:
            prev = old[1]
            self._uncount(prev)
            if prev.kind > task.kind:
                task = Task(prev.cid, prev.kind, prev.priority, prev.size, prev.send_dont_have)
            task.priority = max(prev.priority, task.priority)
        self._seq += 1
        self._tasks[task.cid] = (self._seq, task)
        if task.kind is TaskKind.BLOCK:
            self.block_bytes += task.size
        heapq.heappush(self._heap, (-task.priority, self._seq, task.cid))
        if len(self._heap) > 2 * len(self._tasks) + 64:  # merges leave stale rows behind
            self._heap = [(-t.priority, seq, cid) for cid, (seq, t) in self._tasks.items()]
            heapq.heapify(self._heap)

    def remove(self, cid: CID) -> Task | None:
        entry = self._tasks.pop(cid, None)
        if entry is None:
            return None
        self._uncount(entry[1])
        return entry[1]

    def clear(self) -> None:
        self._tasks.clear()
        self._heap.clear()
        self.block_bytes = 0

    def pop_batch(self, target: int) -> list[Task]:
        """Tasks in priority order until their work reaches `target` (at least one task)."""
        out: list[Task] = []
        work = 0
        while self._heap and work < target:
            _, seq, cid = heapq.heappop(self._heap)
            entry = self._tasks.get(cid)
            if entry is None or entry[0] != seq:
                continue
            del self._tasks[cid]
            self._uncount(entry[1])
            out.append(entry[1])
            work += entry[1].size
        return out

    def _uncount(self, task: Task) -> None:
        if task.kind is TaskKind.BLOCK:
            self.block_bytes -= task.size
