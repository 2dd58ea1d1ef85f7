"""The largest block blockmesh stores, sends or accepts from anywhere.

One number for every path a block can take: the Bitswap spec says blocks up to 2 MiB MUST be
supported and kubo neither sends nor accepts bigger ones, so a larger block could be stored here
but never leave the node. `block put`, CAR import, the dag-cbor decoder and Bitswap (its config
default) therefore all refuse anything above it.
"""

from __future__ import annotations

MAX_BLOCK_SIZE = 2 * 1024 * 1024
