"""Typed failures of the libp2p host adapter; callers never see a py-libp2p exception."""

from __future__ import annotations

from blockmesh.errors import BlockmeshError, DecodeError


class NetError(BlockmeshError):
    """A network operation failed."""


class InvalidMultiaddr(NetError, DecodeError):
    """A multiaddr string does not parse, or lacks the `/p2p/<peer id>` a dial needs."""


class IdentityError(NetError):
    """The identity key file is unreadable, malformed or not private enough."""


class DialError(NetError):
    """A connection to a peer could not be established."""


class DialFiltered(DialError):
    """The filters deny the peer or the address: the dial was refused before it started."""


class DialTimeout(DialError, TimeoutError):
    """A dial did not finish within its deadline."""


class NotConnected(NetError):
    """The operation needs a live connection to the peer and there is none."""


class StreamOpenError(NetError):
    """A stream could not be opened or the peer speaks none of the offered protocols."""


class StreamError(NetError):
    """A read or write on an open stream failed."""


class StreamReset(StreamError):
    """The stream was reset (by the peer, by us, or because its connection died)."""


class ProtocolViolation(NetError, DecodeError):
    """A peer answered a built-in protocol (ping, identify) with bytes the protocol forbids."""


class PingTimeout(NetError, TimeoutError):
    """A ping got no answer within its deadline."""
