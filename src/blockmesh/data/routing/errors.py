"""Routing's typed errors, apart from the interface so every module can raise them."""

from blockmesh.errors import BlockmeshError


class RoutingError(BlockmeshError):
    """A routing operation failed (no peers to ask, a lookup that could not complete, ...)."""


class RecordError(RoutingError):
    """A DHT record (public key, IPNS) that is malformed, badly signed, expired or unknown."""
