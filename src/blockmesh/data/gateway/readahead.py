"""Which blocks of a UnixFS file a gateway response wants, and when; no I/O.

A plain `fetch` keeps its Bitswap session full by wanting every child as soon as its parent
arrives and letting the session's live-want limit pace the peers. A gateway response cannot
want the whole file that way: it sends with back-pressure, so a slow client would make it hold
everything that arrived ahead, and it serves byte ranges. `FilePlan` does what the fetch does
inside a window of bytes: a block whose first wanted byte lies less than `window` bytes past
what the response has sent is wanted at once, and an interior node that arrives ahead of the
response is expanded on arrival (`arrived`), so its children are wanted before the walk reaches
them rather than one round trip after. What the response holds ahead of its client is thereby
at most the window plus one block, as far as the sizes the file's nodes claim are true (the
driver's `RequestBlocks` stops a read that holds more); the rest waits, as CIDs only, until
the window moves on.

The plan is a tree expanded lazily: the response walks it depth-first (`step`, `supply`); wants
come out of `wants` in file order, kept in a heap of (first byte, order) until the window
reaches them. UnixFS `blocksizes` place every child without fetching it, so ranges skip whole
subtrees, and the same plan yields either the bytes of [start, stop) or (`with_blocks`) the
blocks that hold them, for CAR `entity-bytes`.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb, unixfs
from blockmesh.data.dag.unixfs import DataType
from blockmesh.errors import DecodeError

MAX_FILE_DEPTH = 64


@dataclass(eq=False)
class _Part:
    """One link of the file tree, cut to the bytes the plan wants of it."""

    cid: CID | None  # None: the root, which the caller already holds
    begin: int  # file offset of its first wanted byte (what the window is measured in)
    start: int  # wanted bytes, relative to the start of its subtree
    stop: int
    depth: int
    asked: bool = False
    resolved: bool = False
    out: bytes | tuple[CID, bytes] | None = None  # what the response sends when it gets here
    children: list[_Part] = field(default_factory=list)


def children(node: dagpb.Node, data: unixfs.UnixFSData, start: int,
             stop: int) -> tuple[bytes, list[tuple[CID, int, int, int]]]:
    """(the node's own data, [(child, offset in the node, child_start, child_stop)…]) of the
    children that overlap [start, stop)."""
    if len(data.blocksizes) != len(node.links):
        raise DecodeError(f"UnixFS file node has {len(node.links)} links but "
                          f"{len(data.blocksizes)} blocksizes")
    own = data.data or b""
    out = []
    offset = len(own)
    for link, size in zip(node.links, data.blocksizes, strict=True):
        if offset >= stop:
            break
        if offset + size > start:
            out.append((link.cid, offset, max(start - offset, 0), min(stop - offset, size)))
        offset += size
    return own, out


def file_node(cid: CID, block: bytes) -> tuple[dagpb.Node, unixfs.UnixFSData]:
    """A dag-pb block a file links to, checked to be file data."""
    node = dagpb.decode(block)
    data = None if node.data is None else unixfs.decode(node.data)
    if data is None or data.type not in (DataType.FILE, DataType.RAW):
        raise DecodeError(f"file node links to {cid}, which is not file data")
    return node, data


class FilePlan:
    """Bytes [start, stop) of the file whose root `node` the caller holds (the root itself is
    neither wanted nor, with `with_blocks`, sent again).

    The driver loop: pass `wants()` to the block source; hand blocks that came in ahead to
    `arrived` (those the plan can use early are interior nodes; `expects` says which); then
    `step()`: bytes (or a (cid, block) pair) to send, a CID the walk is waiting for (answer with
    `supply`), or None at the end."""

    def __init__(self, node: dagpb.Node, data: unixfs.UnixFSData, start: int, stop: int,
                 window: int, *, with_blocks: bool = False) -> None:
        if window < 1:
            raise ValueError("the read-ahead window must be at least one byte")
        self.window = window
        self._with_blocks = with_blocks
        self._order = itertools.count()
        self._later: list[tuple[int, int, _Part]] = []  # not yet wanted, by first byte
        self._asks: list[CID] = []
        self._waiting: dict[bytes, list[_Part]] = {}  # dag-pb parts wanted, not yet in
        self.position = start
        self._head: _Part | None = None
        root = _Part(None, start, start, stop, 0, asked=True, resolved=True)
        self._expand(root, node, data)
        self._stack: list[tuple[list[_Part], int]] = [([root], 0)]

    # -- driver API ------------------------------------------------------------------------------
    def wants(self) -> list[CID]:
        """Blocks to want now, in file order; each is returned once."""
        asks, self._asks = self._asks, []
        return asks

    def expects(self, cid: CID) -> bool:
        """True if a block of this multihash would expand a part wanted ahead."""
        return cid.multihash in self._waiting

    def arrived(self, cid: CID, block: bytes) -> None:
        """A dag-pb block that came in ahead of the walk: expand every part it is."""
        for part in self._waiting.pop(cid.multihash, []):
            if not part.resolved:
                self._resolve(part, block)

    def step(self) -> bytes | tuple[CID, bytes] | CID | None:
        while self._stack:
            parts, index = self._stack[-1]
            if index == len(parts):
                self._stack.pop()
                continue
            part = parts[index]
            if part.begin > self.position:
                self.position = part.begin
                self._release()
            if not part.resolved:
                assert part.cid is not None
                self._head = part
                return part.cid
            self._stack[-1] = (parts, index + 1)
            out, part.out = part.out, None
            if part.children:
                self._stack.append((part.children, 0))
            if out is not None:
                if isinstance(out, bytes):
                    self.position = part.begin + len(out)
                    self._release()
                return out
        return None

    def supply(self, block: bytes) -> None:
        """The block of the CID `step` returned."""
        part, self._head = self._head, None
        if part is None:
            raise RuntimeError("supply without a step waiting for a block")
        self._resolve(part, block)

    # -- internals -------------------------------------------------------------------------------
    def _resolve(self, part: _Part, block: bytes) -> None:
        cid = part.cid
        assert cid is not None
        part.resolved = True
        if cid.codec == Codec.RAW:
            part.out = (cid, block) if self._with_blocks else block[part.start:part.stop]
            return
        if cid.codec != Codec.DAG_PB:
            raise DecodeError(f"file node links to a {cid.codec_name} block")
        if part.depth >= MAX_FILE_DEPTH:
            raise DecodeError(f"file DAG deeper than {MAX_FILE_DEPTH} levels")
        node, data = file_node(cid, block)
        if self._with_blocks:
            part.out = (cid, block)
        self._expand(part, node, data)
        for queued in self._waiting.pop(cid.multihash, []):  # the same block elsewhere
            if not queued.resolved:
                self._resolve(queued, block)

    def _expand(self, part: _Part, node: dagpb.Node, data: unixfs.UnixFSData) -> None:
        own, links = children(node, data, part.start, part.stop)
        base = part.begin - part.start
        if own and part.start < len(own) and not self._with_blocks:
            part.out = own[part.start:min(part.stop, len(own))]
        for cid, offset, start, stop in links:
            child = _Part(cid, base + offset + start, start, stop, part.depth + 1)
            part.children.append(child)
            heapq.heappush(self._later, (child.begin, next(self._order), child))
        self._release()

    def _release(self) -> None:
        """Want every part whose first byte the window now reaches (the next part to send
        always: it starts at the position)."""
        horizon = self.position + self.window
        later = self._later
        while later and later[0][0] < horizon:
            part = heapq.heappop(later)[2]
            if part.resolved or part.asked or part.cid is None:
                continue
            part.asked = True
            self._asks.append(part.cid)
            if part.cid.codec == Codec.DAG_PB:
                self._waiting.setdefault(part.cid.multihash, []).append(part)
