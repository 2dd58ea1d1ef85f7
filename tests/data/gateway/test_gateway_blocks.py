"""RequestBlocks' bounds, driven with a stand-in for the node's Bitswap session (the blocks it
hands over are real blocks under their real CIDs): a file read holds at most its read-ahead
plus two blocks, whatever sizes the file's nodes claim; a CAR walk (dag-scope=all) holds at
most its read-ahead, whatever its blocks weigh; and walks that are not file reads keep no list
of arrivals."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagcbor
from blockmesh.data.gateway.blocks import HELD_SLACK, RequestBlocks
from blockmesh.data.gateway.walk import dag_blocks
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.store.memory import MemoryBlockstore
from blockmesh.errors import DecodeError

MiB = 1 << 20


class _Session:
    """Answers every want at once from a table of blocks."""

    def __init__(self, blocks: dict[bytes, bytes]) -> None:
        self.blocks = blocks
        self.wanted: list[CID] = []
        self.closed = False

    def want(self, cids: list[CID], now: float) -> None:
        self.wanted.extend(cids)

    def take(self) -> list[tuple[CID, bytes]]:
        out = [(cid, self.blocks[cid.multihash]) for cid in self.wanted]
        self.wanted = []
        return out

    def needs_providers(self, now: float) -> list[CID]:
        return []

    def close(self) -> None:
        self.closed = True


def _request(blocks: list[bytes], read_ahead: int) -> tuple[RequestBlocks, list[CID], _Session]:
    cids = [CID.of(block, Codec.RAW) for block in blocks]
    session = _Session({cid.multihash: block for cid, block in zip(cids, blocks, strict=True)})
    node = SimpleNamespace(bitswap=SimpleNamespace(new_session=lambda: session),
                           exchange=SimpleNamespace(pump=lambda: None), provider_search=None)
    return RequestBlocks(MemoryBlockstore(), node, 5.0, read_ahead=read_ahead), cids, session


async def test_a_planned_read_holding_more_than_its_read_ahead_stops() -> None:
    # What a file whose leaves claim a byte each makes a FilePlan want: far more than it says.
    blocks = [os.urandom(MiB) for _ in range(8)]
    request, cids, _ = _request(blocks, read_ahead=1 * MiB)
    assert 8 * MiB > 1 * MiB + HELD_SLACK
    request.want(cids)
    with pytest.raises(DecodeError, match="larger than the sizes its nodes claim"):
        request.arrivals()


async def test_a_planned_read_within_its_read_ahead_hands_everything_over() -> None:
    blocks = [os.urandom(256 * 1024) for _ in range(8)]  # 2 MiB, within 1 MiB + the slack
    request, cids, session = _request(blocks, read_ahead=1 * MiB)
    request.want(cids)
    assert request.arrivals() == cids
    assert [request.take(cid) for cid in cids] == blocks
    request.close()
    assert session.closed


async def test_walks_that_are_not_file_reads_keep_no_arrival_list() -> None:
    blocks = [os.urandom(64 * 1024) for _ in range(40)]
    request, cids, _ = _request(blocks, read_ahead=1 * MiB)
    request.prefetch(cids)
    assert [await request.get(cid) for cid in cids] == blocks
    assert request.arrivals() == []


@pytest.mark.parametrize("dups", [True, False])
async def test_a_car_of_large_blocks_holds_at_most_its_read_ahead(dups: bool) -> None:
    """Blocks of the largest size, every want answered at once (the worst case for holding):
    the walk still has blocks wanted ahead, and what waits for it stays within the window.
    (A fixed window of 32 blocks held 31 of them here: 62 MiB for an 8 MiB read-ahead.)"""
    blocks = [os.urandom(MAX_BLOCK_SIZE) for _ in range(12)]
    request, cids, _ = _request(blocks, read_ahead=8 * MiB)
    root = dagcbor.encode(cids + cids[:3])  # repeats: sent again (dups) or skipped
    peak = 0
    walked = []
    async for cid, block in dag_blocks(request, CID.of(root, Codec.DAG_CBOR), root,
                                       None if dups else set()):
        assert request.held <= 8 * MiB
        peak = max(peak, request.held)
        walked.append((cid, block))
    expected = list(zip(cids, blocks, strict=True))
    assert walked == (expected + expected[:3] if dups else expected)
    assert peak >= 2 * MAX_BLOCK_SIZE  # blocks did arrive ahead of the walk
    request.close()


async def test_small_blocks_fill_the_window_as_large_ones_do() -> None:
    """A block's size is known only once it is here, so each one wanted ahead reserves the
    largest size: read_ahead / MAX_BLOCK_SIZE in flight, whatever they turn out to weigh."""
    blocks = [os.urandom(1024) for _ in range(20)]
    request, cids, session = _request(blocks, read_ahead=8 * MiB)
    request.prefetch(cids)
    assert session.wanted == cids[:8 * MiB // MAX_BLOCK_SIZE]
