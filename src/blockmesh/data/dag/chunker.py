"""Fixed-size chunking, kubo's `size-N` chunker (the default is size-262144).

Chunks are always full-sized except the last, even when the source returns short reads (pipes),
because a different split would give a different CID than kubo's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from blockmesh.errors import NotImplementedYet, UnsupportedError

DEFAULT_CHUNK_SIZE = 262144
MAX_CHUNK_SIZE = 1024 * 1024  # boxo's ChunkSizeLimit: larger blocks would not cross Bitswap


def parse_chunker(spec: str) -> int:
    """The chunk size named by a kubo chunker spec such as `size-262144`."""
    name, _, arg = spec.partition("-")
    if name in ("rabin", "buzhash"):
        raise NotImplementedYet(f"the {name} chunker is not built yet; use size-N")
    if name != "size" or not arg.isdigit():
        raise UnsupportedError(f"unknown chunker {spec!r}: expected size-N")
    size = int(arg)
    if not 0 < size <= MAX_CHUNK_SIZE:
        raise UnsupportedError(f"chunk size must be 1 to {MAX_CHUNK_SIZE} bytes, got {size}")
    return size


def chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        while len(chunk) < size:
            more = stream.read(size - len(chunk))
            if not more:
                break
            chunk += more
        yield chunk
        if len(chunk) < size:
            return
