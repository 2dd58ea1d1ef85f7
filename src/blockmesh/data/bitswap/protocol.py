"""Bitswap protocol identifiers and what each version may carry."""

from __future__ import annotations

from collections.abc import Hashable
from enum import Enum

from blockmesh.errors import UnsupportedError

# Whatever identifies a remote peer to the adapter (a libp2p ID, a string in tests); the engines
# only hash and compare it.
PeerId = Hashable


class ProtocolVersion(Enum):
    """A negotiated Bitswap protocol; the value is the libp2p protocol id."""

    V1_0_0 = "/ipfs/bitswap/1.0.0"
    V1_1_0 = "/ipfs/bitswap/1.1.0"
    V1_2_0 = "/ipfs/bitswap/1.2.0"

    @classmethod
    def from_protocol_id(cls, protocol_id: str) -> ProtocolVersion:
        """Map a negotiated protocol id; the bare `/ipfs/bitswap` is the 1.0.0 wire format."""
        if protocol_id == BARE_PROTOCOL_ID:
            return cls.V1_0_0
        try:
            return cls(protocol_id)
        except ValueError:
            raise UnsupportedError(f"not a Bitswap protocol: {protocol_id!r}") from None

    @property
    def uses_payload(self) -> bool:
        """1.1.0 replaced the CIDv0-only `blocks` field with prefixed `payload` blocks."""
        return self is not ProtocolVersion.V1_0_0

    @property
    def supports_have(self) -> bool:
        """Only 1.2.0 knows want-have entries, HAVE/DONT_HAVE presences and pendingBytes."""
        return self is ProtocolVersion.V1_2_0


BARE_PROTOCOL_ID = "/ipfs/bitswap"

# Newest first: the order a host offers them in during negotiation.
PROTOCOL_IDS = (
    ProtocolVersion.V1_2_0.value,
    ProtocolVersion.V1_1_0.value,
    ProtocolVersion.V1_0_0.value,
    BARE_PROTOCOL_ID,
)
