"""Typed failures of the Bitswap codec, so an adapter can drop one bad stream and keep the node.

Every class derives from DecodeError: whatever a peer sends, the decoder raises nothing else.
"""

from __future__ import annotations

from blockmesh.errors import DecodeError, UnsupportedError


class BitswapError(DecodeError):
    """A peer sent bytes that are not a Bitswap message this node accepts."""


class FrameTooLarge(BitswapError):
    """A length prefix announces more than a message may hold: the stream is dropped at once."""


class MessageTooLarge(BitswapError):
    """A message body exceeds the size limit (checked before any parsing)."""


class MalformedMessage(BitswapError):
    """The protobuf is not well formed or a field has the wrong shape."""


class TooManyItems(BitswapError):
    """A message carries more wantlist entries, blocks or presences than allowed."""


class BlockTooLarge(BitswapError):
    """A block exceeds the per-block limit."""


class BadCID(BitswapError):
    """A CID in a wantlist entry or block presence cannot be parsed."""


class BadPrefix(BitswapError):
    """A payload block's CID prefix is malformed."""


class UnsupportedPrefix(BadPrefix, UnsupportedError):
    """A payload prefix names a CID version, codec or hash function this node cannot rebuild."""
