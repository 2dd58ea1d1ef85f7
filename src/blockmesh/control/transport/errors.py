"""Errors of the control-plane transports.

`PeerError` is a value as much as an exception: `broadcast` returns one per failed peer instead of
raising, so the caller sees every failure at once (the seed design only kept the last one).
"""

from __future__ import annotations

from blockmesh.errors import BlockmeshError, DecodeError


class TransportError(BlockmeshError):
    """A transport cannot do what was asked (not started, already stopped, bad address)."""


class PeerError(TransportError):
    """One peer could not be reached or refused what was sent to it.

    `reason` is a short machine-readable word (the same one the metrics use) so callers can
    react without parsing the message.
    """

    def __init__(self, node_id: str, reason: str, detail: str = "") -> None:
        self.node_id = node_id
        self.reason = reason
        self.detail = detail
        super().__init__(f"{node_id}: {reason}" + (f" ({detail})" if detail else ""))


class AuthenticationError(TransportError):
    """A handshake failed: unknown node id, wrong key, bad signature or a protocol violation."""


class FrameTooLarge(DecodeError):
    """A frame announces more bytes than the configured maximum; it is rejected unread."""
