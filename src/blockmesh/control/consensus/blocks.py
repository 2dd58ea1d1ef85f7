"""The hash-chained blocks a replica commits, one per sequence number (height == sequence)."""

from __future__ import annotations

from collections.abc import Sequence

from blockmesh.control.consensus.messages import ZERO_HASH, sha256
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import DecodeError


class ChainError(DecodeError):
    """Blocks that do not hash right or do not link to the chain they claim to extend."""


def block_hash(block: pb.Block) -> bytes:
    unhashed = pb.Block()
    unhashed.CopyFrom(block)
    unhashed.ClearField("hash")
    return sha256(unhashed.SerializeToString(deterministic=True))


def make_block(
    height: int,
    prev_hash: bytes,
    view: int,
    requests: Sequence[pb.Request],
    results: Sequence[bytes],
) -> pb.Block:
    block = pb.Block(
        height=height,
        prev_hash=prev_hash,
        view=view,
        sequence=height,
        requests=requests,
        results=results,
    )
    block.hash = sha256(block.SerializeToString(deterministic=True))
    return block


def verify_chain(blocks: Sequence[pb.Block], height: int, head_hash: bytes) -> None:
    """Check that `blocks` extend the chain whose block `height` hashes to `head_hash`."""
    expected_prev = head_hash if height else ZERO_HASH
    for offset, block in enumerate(blocks, start=1):
        if block.height != height + offset or block.sequence != block.height:
            raise ChainError(f"block at position {offset} has height {block.height}, "
                             f"expected {height + offset}")
        if block.prev_hash != expected_prev:
            raise ChainError(f"block {block.height} does not link to the previous block")
        if len(block.results) != len(block.requests):
            raise ChainError(f"block {block.height} has {len(block.requests)} requests "
                             f"but {len(block.results)} results")
        if block_hash(block) != block.hash:
            raise ChainError(f"block {block.height} does not hash to its hash field")
        expected_prev = block.hash
