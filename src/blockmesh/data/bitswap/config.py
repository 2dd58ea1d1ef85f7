"""Every Bitswap bound in one place, with boxo's default where boxo has one.

Values marked "boxo" follow boxo's bitswap defaults (the Go implementation kubo runs); the rest
are blockmesh choices, sized so one misbehaving peer costs a bounded amount of memory and work.
"""

from __future__ import annotations

from dataclasses import dataclass

from blockmesh.data.limits import MAX_BLOCK_SIZE

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class BitswapConfig:
    # -- codec ----------------------------------------------------------------------------------
    max_message_size: int = 4 * MIB
    """Spec: a message MUST be at most 4 MiB. Larger length prefixes drop the stream at once."""
    max_block_size: int = MAX_BLOCK_SIZE
    """Spec: blocks up to 2 MiB MUST be supported; bigger ones are neither accepted nor sent."""
    max_entries_per_message: int = 16_384
    """Wantlist entries one message may carry (blockmesh). A 4 MiB body could otherwise hold
    ~100k tiny entries, each costing a CID parse and a dict update."""
    max_presences_per_message: int = 16_384
    """HAVE/DONT_HAVE presences per message (blockmesh), for the same reason."""
    max_blocks_per_message: int = 8_192
    """Blocks per message (blockmesh): bounds the hashing one message can demand."""
    target_message_size: int = 16 * KIB
    """boxo: the server pops queued tasks for a peer until a reply holds about this many bytes,
    so presences and small blocks travel in batches rather than one message each."""

    # -- server (decision engine) ---------------------------------------------------------------
    max_wantlist_per_peer: int = 1024
    """boxo: at most this many wants are kept per peer; further new wants are dropped."""
    max_outstanding_bytes_per_peer: int = 1 * MIB
    """boxo: bytes handed to the adapter for one peer and not yet reported sent. A peer at the
    limit gets nothing more until `message_sent`, so a slow reader cannot pin unbounded memory."""
    max_replace_have_with_block: int = 1024
    """boxo: a want-have for a block of at most this many bytes is answered with the block."""
    max_link_positions_per_peer: int = 4096
    """Children of dag-pb blocks sent to a peer whose link order the server remembers, to send
    a batch of wanted siblings in walk order rather than in the peer's shuffled priorities
    (blockmesh; see linkorder.py). 4096 covers a few 174-link parents of kubo's file layout."""
    max_dropped_wants_per_peer: int = 16 * 1024
    """Wants dropped because the peer's wantlist was full, before the peer is flagged as a
    flooder (blockmesh). Generous: an honest peer with many sessions overflows now and then."""

    # -- client (want manager and sessions) -----------------------------------------------------
    rebroadcast_interval: float = 30.0
    """boxo: the whole wantlist is re-sent to every peer this often (seconds), healing lost
    messages and peers that forgot us; idle session wants are re-asked as well."""
    want_block_timeout: float = 5.0
    """boxo's dontHaveTimeout: a want-block unanswered this long (seconds) counts as a DONT_HAVE
    and the block is requested from another peer."""
    session_live_wants: int = 256
    """A session asks for at most this many blocks at once; the rest wait in its queue (a
    prefetching caller may want thousands). boxo's broadcast limit is 64; over py-libp2p each
    round trip costs more, and 64 (with 32 per peer) halved throughput (docs/benchmarks.md)."""
    max_inflight_blocks_per_peer: int = 128
    """Want-blocks outstanding to one peer per session (blockmesh); more go to other peers."""
    provider_search_delay: float = 1.0
    """boxo's ProviderSearchDelay: a session that received nothing this long (seconds) asks
    content routing for providers of its oldest unanswered want (at once if it has no peer to
    ask, or every peer asked said DONT_HAVE)."""
    provider_search_interval: float = 60.0
    """boxo's periodic search delay: the same CID is looked up again at most this often."""
    max_strikes: int = 3
    """Unwanted blocks (or broken streams) a peer may send before it is flagged (blockmesh)."""
    max_remembered_bad_peers: int = 4096
    """Flagged peers remembered so a reconnect is refused (blockmesh); oldest forgotten first."""
    recent_blocks_memory: int = 4096
    """Recently received blocks remembered to tell a harmless duplicate from an unsolicited
    block (blockmesh)."""

    def __post_init__(self) -> None:
        if self.max_block_size >= self.max_message_size:
            raise ValueError("max_block_size must leave room for the message around it")
        for name in ("max_message_size", "max_block_size", "target_message_size",
                     "max_wantlist_per_peer", "max_outstanding_bytes_per_peer",
                     "session_live_wants", "max_inflight_blocks_per_peer", "max_strikes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


DEFAULT_CONFIG = BitswapConfig()
