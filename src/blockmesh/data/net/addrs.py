"""Multiaddr strings at the edge of the adapter: parse once, fail with a typed error."""

from __future__ import annotations

from dataclasses import dataclass

import multiaddr
from libp2p.peer.id import ID

from blockmesh.data import varint
from blockmesh.data.cid import CID, Codec
from blockmesh.data.net.errors import InvalidMultiaddr
from blockmesh.errors import InvalidCID

# Far more than any real address (`/ip6/…/tcp/…/p2p/…` is under 120 characters).
MAX_MULTIADDR_LEN = 1024
_IDENTITY = 0x00
_SHA2_256 = 0x12
_SHA2_256_LEN = 32
# go-libp2p inlines public keys of at most 42 bytes into the peer id.
_MAX_IDENTITY_LEN = 42


@dataclass(frozen=True)
class PeerAddr:
    """A dialable address split into the transport part and the peer it must reach."""

    peer_id: str
    transport: str

    def __str__(self) -> str:
        return f"{self.transport}/p2p/{self.peer_id}"


def parse_multiaddr(text: str) -> multiaddr.Multiaddr:
    if not isinstance(text, str) or len(text) > MAX_MULTIADDR_LEN:
        raise InvalidMultiaddr("a multiaddr must be a string of at most 1024 characters")
    try:
        return multiaddr.Multiaddr(text)
    except Exception as exc:  # the library raises a zoo of types for bad input
        raise InvalidMultiaddr(f"invalid multiaddr {text!r}: {exc}") from exc


def parse_peer_addr(text: str) -> PeerAddr:
    """Split `/ip4/…/tcp/…/p2p/<id>`; the peer id is mandatory (a dial must know whom)."""
    addr = parse_multiaddr(text)
    try:
        peer_text = addr.value_for_protocol("p2p")
    except Exception:
        peer_text = None
    if not peer_text:
        raise InvalidMultiaddr(f"multiaddr {text!r} does not end in /p2p/<peer id>")
    peer_id = parse_peer_id(str(peer_text))
    transport = addr.decapsulate(multiaddr.Multiaddr(f"/p2p/{peer_text}"))
    if not str(transport):
        raise InvalidMultiaddr(f"multiaddr {text!r} has no transport part to dial")
    return PeerAddr(peer_id=peer_id, transport=str(transport))


def parse_peer_id(text: str) -> str:
    """Validate a peer id (base58, or a CIDv1 of the libp2p-key codec) and return it in
    canonical form: base58, as kubo prints it."""
    return to_libp2p_id(text).to_base58()


def to_libp2p_id(text: str) -> ID:
    """A peer id is a multihash of the public key: identity (small keys such as Ed25519) or
    sha2-256 (RSA); base58 alone would also accept strings that name no key at all. The
    peer-id spec's text forms are both read: a bare base58 multihash ("Qm…", "1…") and a
    multibase CIDv1 whose codec is libp2p-key (kubo's `k51…` base36 names)."""
    if not isinstance(text, str) or not 0 < len(text) <= 128:
        raise InvalidMultiaddr("a peer id is a string of at most 128 characters")
    try:
        if text.startswith(("Qm", "1")):
            peer = ID.from_base58(text)
        else:
            peer = ID(_key_cid_multihash(text))
        raw = peer.to_bytes()
        code, pos = varint.decode(raw)
        length, pos = varint.decode(raw, pos)
    except Exception as exc:
        raise InvalidMultiaddr(f"invalid peer id {text!r}: {exc}") from exc
    valid_length = length == _SHA2_256_LEN if code == _SHA2_256 else length <= _MAX_IDENTITY_LEN
    if code not in (_IDENTITY, _SHA2_256) or not valid_length or len(raw) - pos != length:
        raise InvalidMultiaddr(f"invalid peer id {text!r}: not an identity or sha2-256 multihash")
    return peer


def _key_cid_multihash(text: str) -> bytes:
    try:
        cid = CID.parse(text)
    except InvalidCID as exc:
        raise ValueError(f"neither base58 nor a CID: {exc}") from None
    if cid.version != 1 or cid.codec != Codec.LIBP2P_KEY:
        raise ValueError("a CID naming a peer must be a CIDv1 of the libp2p-key codec")
    return cid.multihash
