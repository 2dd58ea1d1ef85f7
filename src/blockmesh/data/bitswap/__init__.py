"""Bitswap 1.0.0/1.1.0/1.2.0 as sans-I/O engines: codec, framing, server, client sessions.

The libp2p adapter owns streams and time; these modules only turn events into envelopes.
"""

from blockmesh.data.bitswap.client import Client, ClientStats
from blockmesh.data.bitswap.config import DEFAULT_CONFIG, BitswapConfig
from blockmesh.data.bitswap.engine import Bitswap, BitswapStat
from blockmesh.data.bitswap.envelope import Envelope
from blockmesh.data.bitswap.errors import (
    BadCID,
    BadPrefix,
    BitswapError,
    BlockTooLarge,
    FrameTooLarge,
    MalformedMessage,
    MessageTooLarge,
    TooManyItems,
    UnsupportedPrefix,
)
from blockmesh.data.bitswap.framing import (
    FrameDecoder,
    MessageReader,
    encode_frames,
    frame,
    split_message,
)
from blockmesh.data.bitswap.ledger import LedgerSnapshot, Want
from blockmesh.data.bitswap.message import (
    Block,
    Entry,
    Message,
    Presence,
    PresenceType,
    WantType,
    cid_from_prefix,
    decode_message,
    encode_message,
    prefix_of,
)
from blockmesh.data.bitswap.protocol import PROTOCOL_IDS, PeerId, ProtocolVersion
from blockmesh.data.bitswap.server import DecisionEngine
from blockmesh.data.bitswap.session import Session
from blockmesh.data.bitswap.strikes import PeerStrikes

__all__ = [
    "DEFAULT_CONFIG", "PROTOCOL_IDS", "BadCID", "BadPrefix", "Bitswap", "BitswapConfig",
    "BitswapError", "BitswapStat", "Block", "BlockTooLarge", "Client", "ClientStats",
    "DecisionEngine", "Entry", "Envelope", "FrameDecoder", "FrameTooLarge", "LedgerSnapshot",
    "MalformedMessage", "Message", "MessageReader", "MessageTooLarge", "PeerId", "PeerStrikes",
    "Presence", "PresenceType", "ProtocolVersion", "Session", "TooManyItems", "UnsupportedPrefix",
    "Want", "WantType", "cid_from_prefix", "decode_message", "encode_frames", "encode_message",
    "frame", "prefix_of", "split_message",
]
