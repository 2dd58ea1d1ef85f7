"""Reading a peer's identify (`/ipfs/id/1.0.0`) reply into plain data.

The reply is a run of varint-length-prefixed `Identify` protobufs that merge into one: go-libp2p
sends a large reply in two pieces (the signed peer record after the rest). The whole reply is
bounded by the caller, each piece by that same bound, and the count of protocols and addresses
by the constants below; an address this multiaddr library cannot parse (a newer transport) is
skipped rather than failing the whole reply.
"""

from __future__ import annotations

from dataclasses import dataclass

import multiaddr
from google.protobuf.message import DecodeError as ProtobufDecodeError
from libp2p.identity.identify.pb.identify_pb2 import Identify

from blockmesh.data import varint
from blockmesh.data.net.errors import ProtocolViolation

IDENTIFY_PROTOCOL = "/ipfs/id/1.0.0"
# go-libp2p stops reading after 10 pieces; a reply is normally one or two.
MAX_PIECES = 10
MAX_PROTOCOLS = 1024
MAX_PROTOCOL_LEN = 1024
MAX_ADDRS = 256


@dataclass(frozen=True)
class IdentifyInfo:
    """What a peer says about itself. Protocols keep the peer's order."""

    peer_id: str
    protocols: tuple[str, ...]
    agent_version: str
    protocol_version: str
    listen_addrs: tuple[str, ...]
    observed_addr: str | None


def decode_identify(peer_id: str, data: bytes) -> IdentifyInfo:
    """Decode a complete identify reply; ProtocolViolation for anything malformed."""
    message = Identify()
    offset = 0
    pieces = 0
    while offset < len(data):
        pieces += 1
        if pieces > MAX_PIECES:
            raise ProtocolViolation(f"identify reply has more than {MAX_PIECES} pieces")
        try:
            length, offset = varint.decode(data, offset)
        except varint.VarintError as exc:
            raise ProtocolViolation(f"identify reply: bad length prefix: {exc}") from exc
        end = offset + length
        if end > len(data):
            raise ProtocolViolation("identify reply is truncated")
        try:
            message.MergeFromString(data[offset:end])
        except (ProtobufDecodeError, ValueError, RecursionError) as exc:
            raise ProtocolViolation(f"identify reply is not a valid protobuf: {exc}") from exc
        offset = end
    if pieces == 0:
        raise ProtocolViolation("identify reply is empty")
    if len(message.protocols) > MAX_PROTOCOLS:
        raise ProtocolViolation(f"identify lists more than {MAX_PROTOCOLS} protocols")
    if any(len(p) > MAX_PROTOCOL_LEN for p in message.protocols):
        raise ProtocolViolation(f"identify lists a protocol id over {MAX_PROTOCOL_LEN} chars")
    if len(message.listen_addrs) > MAX_ADDRS:
        raise ProtocolViolation(f"identify lists more than {MAX_ADDRS} addresses")
    addrs = tuple(a for a in map(_addr_text, message.listen_addrs) if a is not None)
    observed = _addr_text(message.observed_addr) if message.HasField("observed_addr") else None
    return IdentifyInfo(
        peer_id=peer_id,
        protocols=tuple(message.protocols),
        agent_version=message.agent_version,
        protocol_version=message.protocol_version,
        listen_addrs=addrs,
        observed_addr=observed,
    )


def _addr_text(raw: bytes) -> str | None:
    if not raw:
        return None
    try:
        return str(multiaddr.Multiaddr(raw))
    except Exception:  # unknown or malformed protocol codes; the library's error types vary
        return None
