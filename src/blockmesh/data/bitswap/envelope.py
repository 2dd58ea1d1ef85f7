"""What an engine hands the adapter to send: a message for one peer, already framed."""

from __future__ import annotations

from dataclasses import dataclass

from blockmesh.data.bitswap.message import Message
from blockmesh.data.bitswap.protocol import PeerId


@dataclass(frozen=True)
class Envelope:
    """`frames` go, in order, on a stream the adapter opens to `peer` (peers read only streams
    they did not open). `work` is the byte budget the server charged to the peer; the adapter
    returns it with `message_sent` once the frames are written."""

    peer: PeerId
    message: Message
    frames: tuple[bytes, ...]
    work: int = 0

    @property
    def data(self) -> bytes:
        return b"".join(self.frames)
