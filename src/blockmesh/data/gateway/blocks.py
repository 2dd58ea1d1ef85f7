"""Where the gateway's blocks come from: the local repo, else Bitswap through the Node.

One `RequestBlocks` per HTTP request. A block missing from the repo is wanted in a Bitswap
session of that request, and so are the next blocks the walk will need, so a large file
streams at Bitswap's pace with a bounded buffer: blocks that arrived early wait here until the
walk reaches them. A file read wants what its `FilePlan` asks for (`want`: every block within
`read_ahead` bytes of what was sent, all at once, as a fetch wants a DAG); other walks (CAR
`dag-scope=all`) name the links they will read next (`prefetch`), wanted within the same
`read_ahead` bytes: their links carry no size to trust, so each block wanted ahead reserves
the most a block may be (MAX_BLOCK_SIZE), and what arrives ahead of the walk never exceeds
`read_ahead`, whatever the blocks' sizes. A block
for which nothing arrives for `timeout` seconds raises GatewayTimeout (a 504 before the
response head is sent; after it, the stream is cut). Closing the object closes the session, so
a client that goes away leaves no wants behind.

When no connected peer has a block, the node's content routing (the DHT) is asked for
providers, as a fetch does.

Without a Node (a gateway over a bare blockstore, as in the unit tests) the gateway is
non-recursive: a missing block is a 404, as the spec asks of such gateways.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import trio

from blockmesh.data.cid import CID, HashCode, Multihash
from blockmesh.data.gateway.errors import ContentNotFound, GatewayTimeout
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.node.node import PROVIDER_CHECK_INTERVAL
from blockmesh.data.store.blockstore import Blockstore
from blockmesh.errors import DecodeError

if TYPE_CHECKING:
    from blockmesh.data.bitswap.session import Session
    from blockmesh.data.node import Node

#: Bytes a file read wants ahead of what it has sent (`readahead.FilePlan`). 32 MiB is 128
#: blocks of 256 KiB: what one peer has in flight for a `fetch` session
#: (`max_inflight_blocks_per_peer`), so the gateway keeps Bitswap as busy as a fetch does.
#: Other walks (`prefetch`) hold at most as much, which is 16 blocks of the largest size.
DEFAULT_READ_AHEAD = 32 << 20
#: What a planned read may hold beyond its read-ahead before it concludes that the file's nodes
#: understate their blocks: the block the walk is in, and one interior node on its way to
#: being expanded.
HELD_SLACK = 2 * MAX_BLOCK_SIZE


class RequestBlocks:
    def __init__(self, store: Blockstore, node: Node | None, timeout: float,
                 read_ahead: int = DEFAULT_READ_AHEAD) -> None:
        self._store = store
        self._node = node
        self._timeout = timeout
        self.read_ahead = read_ahead
        self._session: Session | None = None
        self._arrived: OrderedDict[bytes, bytes] = OrderedDict()
        self._held = 0  # bytes in _arrived
        #: A FilePlan drives this request (`want`): arrivals are reported and bounded in bytes.
        self._planned = False
        self._new: list[CID] = []  # arrived since the last `arrivals` (planned reads only)
        self._wanted: set[bytes] = set()
        self._pending: OrderedDict[bytes, CID] = OrderedDict()  # prefetch not yet wanted

    @property
    def held(self) -> int:
        """Bytes of blocks that arrived ahead of the walk and wait here for it."""
        return self._held

    def has_local(self, cid: CID) -> bool:
        return cid.hash_code == HashCode.IDENTITY or self._store.has(cid)

    async def get(self, cid: CID) -> bytes:
        if cid.hash_code == HashCode.IDENTITY:
            return Multihash.decode(cid.multihash).digest
        key = cid.multihash
        if key in self._arrived:
            return self._hand_over(key)
        if self._store.has(cid):
            return self._store.get(cid)
        if self._node is None:
            raise ContentNotFound(f"block {cid} is not in this gateway's repo")
        self._pending.pop(key, None)
        if key not in self._wanted:
            self._want([cid])
        deadline = trio.current_time() + self._timeout
        while True:
            self._collect()
            if key in self._arrived:
                return self._hand_over(key)
            left = deadline - trio.current_time()
            if left <= 0:
                raise GatewayTimeout(f"block {cid} did not arrive over Bitswap within "
                                     f"{self._timeout:g} s "
                                     f"({len(self._node.exchange.bitswap_peers())} peers)")
            with trio.move_on_after(left):  # a search never outlasts the block's deadline
                await self._search_providers()
            left = deadline - trio.current_time()
            # other sessions' blocks wake us too; the slice lets the session ask for a search
            if left > 0:
                await self._node.exchange.wait_progress(min(left, PROVIDER_CHECK_INTERVAL))

    async def _search_providers(self) -> None:
        """Look providers up and connect to them when the session says no peer it has will
        send what it wants (the same rule and the same search as a `fetch`), so the gateway
        serves content that only the DHT knows where to find. The search has its own
        deadlines; the session asks again for a CID at most once a minute."""
        assert self._node is not None
        search = self._node.provider_search
        if search is None or self._session is None:
            return
        for cid in self._session.needs_providers(trio.current_time()):
            await search.connect_providers(cid)

    def want(self, cids: list[CID]) -> None:
        """Want all of `cids` now, in that order, those not here already: the caller (a
        `FilePlan`) bounds how far ahead it asks; the session paces the peers, as in a
        fetch."""
        if self._node is None:
            return
        self._planned = True
        batch = []
        for cid in cids:
            key = cid.multihash
            if (key not in self._wanted and key not in self._arrived
                    and cid.hash_code != HashCode.IDENTITY and not self._store.has(cid)):
                self._pending.pop(key, None)
                batch.append(cid)
        if batch:
            self._want(batch)

    def arrivals(self) -> list[CID]:
        """Blocks that came in since the last call; held here until `get` or `take`."""
        self._collect()
        new, self._new = self._new, []
        return new

    def take(self, cid: CID) -> bytes | None:
        """A block that came in, handed over now (None if it is not held here)."""
        if cid.multihash not in self._arrived:
            return None
        return self._hand_over(cid.multihash)

    def _hand_over(self, key: bytes) -> bytes:
        data = self._arrived.pop(key)
        self._held -= len(data)
        self._fill()
        return data

    def prefetch(self, cids: list[CID]) -> None:
        """Blocks the walk will ask for next, in that order: wanted ahead, within `read_ahead`
        bytes (see `_fill`)."""
        if self._node is None:
            return
        for cid in cids:
            key = cid.multihash
            if (key not in self._wanted and key not in self._arrived
                    and cid.hash_code != HashCode.IDENTITY and not self._store.has(cid)):
                self._pending[key] = cid
        self._fill()

    def _fill(self) -> None:
        """Want pending blocks while what is held, plus MAX_BLOCK_SIZE for every block wanted
        and not yet here, stays within `read_ahead`: a block's size is known only once it
        arrives, so this bound holds whatever the DAG's blocks weigh. The block the walk waits
        for (`get`) is wanted whether or not it fits, so the walk always moves on."""
        room = self.read_ahead - self._held - MAX_BLOCK_SIZE * len(self._wanted)
        batch = []
        while room >= MAX_BLOCK_SIZE and self._pending:
            _, cid = self._pending.popitem(last=False)
            batch.append(cid)
            room -= MAX_BLOCK_SIZE
        if batch:
            self._want(batch)

    def _want(self, cids: list[CID]) -> None:
        assert self._node is not None
        if self._session is None:
            self._session = self._node.bitswap.new_session()
        for cid in cids:
            self._wanted.add(cid.multihash)
        self._session.want(cids, trio.current_time())
        self._node.exchange.pump()

    def _collect(self) -> None:
        if self._session is None:
            return
        for cid, data in self._session.take():
            key = cid.multihash
            if key in self._wanted:
                self._wanted.discard(key)
                self._arrived[key] = data
                self._held += len(data)
                if self._planned:
                    self._new.append(cid)
        if self._planned and self._held > self.read_ahead + HELD_SLACK:
            # A FilePlan wants only blocks within `read_ahead` bytes of what was sent, by the
            # sizes the file's nodes claim; holding more than that means the claims lie.
            raise DecodeError(f"file blocks larger than the sizes its nodes claim: "
                              f"{self._held} bytes arrived ahead of a {self.read_ahead}-byte "
                              f"read-ahead")

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
            assert self._node is not None
            self._node.exchange.pump()
        self._arrived.clear()
        self._held = 0
        self._new.clear()
        self._pending.clear()
        self._wanted.clear()
