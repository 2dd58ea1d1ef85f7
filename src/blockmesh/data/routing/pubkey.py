"""libp2p public keys as records carry them: the `PublicKey` protobuf, peer ids, signatures.

A record names its signer by peer id; the verifier must get from those bytes to a key and
check that the key really hashes to that id. go-libp2p re-marshals a parsed key before
hashing it, so a key is accepted only in its canonical form (type, then data): the id then
depends on the key alone, never on how a peer chose to encode it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from blockmesh.data import pbwire
from blockmesh.data.routing.errors import RecordError

ED25519 = 1
RSA = 0
SECP256K1 = 2
ECDSA = 3
_NAMES = {RSA: "RSA", ED25519: "Ed25519", SECP256K1: "secp256k1", ECDSA: "ECDSA"}

#: Keys this long or shorter (serialized) are inlined into the peer id (identity multihash).
MAX_INLINE_KEY_LENGTH = 42
#: Largest serialized key accepted: an 8192-bit RSA key (go-libp2p's ceiling) fits easily.
MAX_KEY_SIZE = 2048
_IDENTITY = 0x00
_SHA2_256 = 0x12


@dataclass(frozen=True)
class PublicKey:
    key_type: int
    data: bytes

    def serialize(self) -> bytes:
        """The canonical protobuf form, the bytes a peer id is derived from."""
        return pbwire.varint_field(1, self.key_type) + pbwire.len_field(2, self.data)

    def peer_id_bytes(self) -> bytes:
        """The peer id as a binary multihash (identity for small keys, else sha2-256)."""
        raw = self.serialize()
        if len(raw) <= MAX_INLINE_KEY_LENGTH:
            return bytes((_IDENTITY, len(raw))) + raw
        return bytes((_SHA2_256, 32)) + hashlib.sha256(raw).digest()

    def verify(self, message: bytes, signature: bytes) -> None:
        """RecordError unless `signature` is this key's signature of `message`."""
        if self.key_type == ED25519:
            try:
                Ed25519PublicKey.from_public_bytes(self.data).verify(signature, message)
            except (InvalidSignature, ValueError):
                raise RecordError("signature does not verify with the signer's key") from None
            return
        if self._libp2p_verify(message, signature):
            return
        raise RecordError("signature does not verify with the signer's key")

    def _libp2p_verify(self, message: bytes, signature: bytes) -> bool:
        """RSA and secp256k1 through py-libp2p's key classes (same schemes as go-libp2p)."""
        from libp2p.crypto.rsa import RSAPublicKey
        from libp2p.crypto.secp256k1 import Secp256k1PublicKey

        kinds = {RSA: RSAPublicKey, SECP256K1: Secp256k1PublicKey}
        kind = kinds.get(self.key_type)
        if kind is None:
            raise RecordError(f"{_NAMES.get(self.key_type, self.key_type)} keys are not supported")
        try:
            return bool(kind.from_bytes(self.data).verify(message, signature))
        except Exception:  # these libraries raise many unrelated types for malformed keys
            return False


def parse_public_key(raw: bytes) -> PublicKey:
    """A `PublicKey` protobuf, accepted only in canonical form and of a known type and size."""
    if len(raw) > MAX_KEY_SIZE:
        raise RecordError(f"public key of {len(raw)} bytes exceeds {MAX_KEY_SIZE}")
    key_type: int | None = None
    data: bytes | None = None
    try:
        for field, wire, value in pbwire.fields(raw):
            if field == 1 and wire == pbwire.VARINT and key_type is None:
                key_type = int(value)  # type: ignore[arg-type]
            elif field == 2 and wire == pbwire.LEN and data is None:
                data = bytes(value)  # type: ignore[arg-type]
            else:
                raise RecordError(f"unexpected field {field} in a public key")
    except pbwire.ProtobufError as exc:
        raise RecordError(f"malformed public key: {exc}") from None
    if key_type is None or data is None:
        raise RecordError("public key lacks its type or its data")
    if key_type not in _NAMES:
        raise RecordError(f"unknown public key type {key_type}")
    if key_type == ED25519 and len(data) != 32:
        raise RecordError(f"an Ed25519 public key is 32 bytes, got {len(data)}")
    key = PublicKey(key_type, data)
    if key.serialize() != raw:
        raise RecordError("public key is not in canonical protobuf form")
    return key


def key_from_peer_id(peer_id: bytes) -> PublicKey | None:
    """The key inlined in an identity-multihash peer id, or None for a hashed id."""
    if len(peer_id) >= 2 and peer_id[0] == _IDENTITY and peer_id[1] == len(peer_id) - 2:
        return parse_public_key(peer_id[2:])
    return None


def check_peer_id(peer_id: bytes) -> None:
    """RecordError unless `peer_id` is a well-formed identity or sha2-256 peer-id multihash."""
    if len(peer_id) >= 2 and peer_id[0] == _IDENTITY and peer_id[1] == len(peer_id) - 2:
        if peer_id[1] > MAX_INLINE_KEY_LENGTH:
            raise RecordError("inline peer id longer than any inlined key")
        parse_public_key(peer_id[2:])
        return
    if len(peer_id) == 34 and peer_id[0] == _SHA2_256 and peer_id[1] == 32:
        return
    raise RecordError("not a peer id (expected an identity or sha2-256 multihash)")
