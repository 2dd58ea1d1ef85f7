"""Hand-built UnixFS DAGs with what no honest importer writes: hostile names, duplicate names,
links out of order, symlinks anywhere. The exporter's safety tests (in-process and over
Bitswap) build their attacks with it; it sits beside conftest.py, so every test can import it.
"""

from __future__ import annotations

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb, unixfs
from blockmesh.data.dag.unixfs import DataType
from blockmesh.data.store.memory import MemoryBlockstore


class CraftedDag:
    """Blocks kept as built, in the order built, so they can be copied into another store."""

    def __init__(self) -> None:
        self.store = MemoryBlockstore()
        self.blocks: list[tuple[CID, bytes]] = []

    def _node(self, links: list[dagpb.Link], data: unixfs.UnixFSData) -> CID:
        # encode_parts keeps the links exactly as given: no sorting, duplicates kept
        block = b"".join(dagpb.encode_parts(links, unixfs.encode(data)))
        cid = CID.of(block, Codec.DAG_PB)
        self.store.put(cid, block)
        self.blocks.append((cid, block))
        return cid

    def file(self, content: bytes) -> CID:
        return self._node([], unixfs.UnixFSData(DataType.FILE, content, len(content)))

    def symlink(self, target: str | bytes) -> CID:
        raw = target.encode() if isinstance(target, str) else target
        return self._node([], unixfs.UnixFSData(DataType.SYMLINK, raw))

    def directory(self, entries: list[tuple[str, CID]]) -> CID:
        return self._node([dagpb.Link(cid, name, 0) for name, cid in entries],
                          unixfs.UnixFSData(DataType.DIRECTORY))
