"""Ed25519 identities of replicas and clients.

Every consensus message, every client request and every transport handshake is signed, so one
small module owns the key format (raw 32-byte keys, hex in TOML files) and the implementation:
libsodium through PyNaCl, which signs in 28 µs and verifies in 82 µs here against 52 / 143 µs
for `cryptography` (docs/benchmarks.md) — signatures are most of a PBFT request's CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from blockmesh.errors import DecodeError

SIGNATURE_SIZE = 64
KEY_SIZE = 32


@dataclass(frozen=True)
class Signer:
    """A private key with the identity it signs for."""

    node_id: str
    private: SigningKey

    @classmethod
    def generate(cls, node_id: str) -> Signer:
        return cls(node_id, SigningKey.generate())

    @classmethod
    def from_hex(cls, node_id: str, private_hex: str) -> Signer:
        return cls(node_id, SigningKey(_unhex(private_hex, "private key")))

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data).signature

    @property
    def public_key(self) -> bytes:
        return bytes(self.private.verify_key)

    def private_hex(self) -> str:
        return bytes(self.private).hex()


class Verifier:
    """Checks signatures by public key; loading each key once keeps the hot path cheap."""

    def __init__(self, public_keys: dict[str, bytes]) -> None:
        self._keys = {node: VerifyKey(_check_len(raw, node)) for node, raw in public_keys.items()}

    def knows(self, node_id: str) -> bool:
        return node_id in self._keys

    def verify(self, node_id: str, signature: bytes, data: bytes) -> bool:
        """True only for a known signer whose signature over `data` is valid."""
        key = self._keys.get(node_id)
        if key is None or len(signature) != SIGNATURE_SIZE:
            return False
        try:
            key.verify(data, signature)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True


def public_key_from_hex(text: str) -> bytes:
    return _check_len(_unhex(text, "public key"), "public key")


def _unhex(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError as exc:
        raise DecodeError(f"{what} is not hex: {exc}") from None
    return _check_len(raw, what)


def _check_len(raw: bytes, what: str) -> bytes:
    if len(raw) != KEY_SIZE:
        raise DecodeError(f"{what}: an Ed25519 key has {KEY_SIZE} bytes, got {len(raw)}")
    return raw
