"""Content identifiers: CIDv0 and CIDv1 over multihash, with the codecs and hashes blockmesh speaks.

Text decoding leans on the maintained multiformats packages (py-multibase for every base, py-cid's
rules for what a CID may look like); the binary form and hashing are done here because they sit
on the import hot path, where a per-chunk call into a generic library would cost more than the
SHA-256 itself.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from enum import IntEnum

import base58
import blake3
import multibase

from blockmesh.data import varint
from blockmesh.errors import HashMismatch, InvalidCID, UnsupportedError

MAX_DIGEST_SIZE = 128
MAX_CID_SIZE = 256


class Codec(IntEnum):
    RAW = 0x55
    DAG_PB = 0x70
    DAG_CBOR = 0x71
    LIBP2P_KEY = 0x72


class HashCode(IntEnum):
    IDENTITY = 0x00
    SHA2_256 = 0x12
    BLAKE3 = 0x1E


CODEC_NAMES: dict[int, str] = {Codec.RAW: "raw", Codec.DAG_PB: "dag-pb",
                               Codec.DAG_CBOR: "dag-cbor", Codec.LIBP2P_KEY: "libp2p-key"}
HASH_NAMES = {HashCode.IDENTITY: "identity", HashCode.SHA2_256: "sha2-256",
              HashCode.BLAKE3: "blake3"}
_CODEC_BY_NAME = {name: Codec(code) for code, name in CODEC_NAMES.items()}
_HASH_BY_NAME = {name: code for code, name in HASH_NAMES.items()}

_SHA256_PREFIX = b"\x12\x20"


def codec_from_name(name: str) -> Codec:
    try:
        return _CODEC_BY_NAME[name]
    except KeyError:
        known = ", ".join(_CODEC_BY_NAME)
        raise UnsupportedError(f"unknown codec {name!r} (known: {known})") from None


def hash_from_name(name: str) -> HashCode:
    try:
        return _HASH_BY_NAME[name]
    except KeyError:
        raise UnsupportedError(
            f"unknown hash function {name!r} (known: {', '.join(_HASH_BY_NAME)})"
        ) from None


@dataclass(frozen=True, slots=True)
class Multihash:
    """A decoded multihash: function code and digest."""

    code: int
    digest: bytes

    @classmethod
    def decode(cls, raw: bytes) -> Multihash:
        mh, end = cls.read(raw, 0)
        if end != len(raw):
            raise InvalidCID("trailing bytes after multihash")
        return mh

    @classmethod
    def read(cls, buf: bytes | memoryview, offset: int) -> tuple[Multihash, int]:
        try:
            code, pos = varint.decode(buf, offset)
            length, pos = varint.decode(buf, pos)
        except varint.VarintError as exc:
            raise InvalidCID(f"bad multihash: {exc}") from None
        if length > MAX_DIGEST_SIZE:
            raise InvalidCID(f"multihash digest of {length} bytes exceeds {MAX_DIGEST_SIZE}")
        if pos + length > len(buf):
            raise InvalidCID("truncated multihash digest")
        return cls(code, bytes(buf[pos : pos + length])), pos + length

    def encode(self) -> bytes:
        return varint.encode(self.code) + varint.encode(len(self.digest)) + self.digest


def digest(data: bytes | memoryview, code: int = HashCode.SHA2_256) -> bytes:
    """Hash `data` with a supported function and return the full multihash bytes."""
    if code == HashCode.SHA2_256:
        return _SHA256_PREFIX + hashlib.sha256(data).digest()
    if code == HashCode.BLAKE3:
        return b"\x1e\x20" + blake3.blake3(data).digest()
    if code == HashCode.IDENTITY:
        raw = bytes(data)
        if len(raw) > MAX_DIGEST_SIZE:
            raise UnsupportedError(f"identity multihash limited to {MAX_DIGEST_SIZE} bytes")
        return b"\x00" + varint.encode(len(raw)) + raw
    raise UnsupportedError(f"hash function 0x{code:x} is not supported")


@dataclass(frozen=True, slots=True)
class CID:
    """A content identifier. Equality is by (version, codec, multihash), as the spec defines."""

    version: int
    codec: int
    multihash: bytes

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def v0(cls, multihash: bytes) -> CID:
        return cls(0, Codec.DAG_PB, multihash)

    @classmethod
    def v1(cls, codec: int, multihash: bytes) -> CID:
        return cls(1, codec, multihash)

    @classmethod
    def of(cls, data: bytes | memoryview, codec: int = Codec.RAW, version: int = 1,
           hash_code: int = HashCode.SHA2_256) -> CID:
        """The CID of `data` under the given codec, CID version and hash function."""
        if version == 0 and (codec != Codec.DAG_PB or hash_code != HashCode.SHA2_256):
            raise UnsupportedError("CIDv0 is only defined for dag-pb with sha2-256")
        return cls(version, codec, digest(data, hash_code))

    @classmethod
    def parse(cls, value: str | bytes | CID) -> CID:
        """Parse a CID from its text form (any multibase, or bare base58 CIDv0) or binary form."""
        if isinstance(value, CID):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls.decode(bytes(value))
        text = value.strip()
        if not text:
            raise InvalidCID("empty CID")
        if len(text) == 46 and text.startswith("Qm"):
            try:
                raw = base58.b58decode(text)
            except ValueError:
                raise InvalidCID(f"invalid base58 in CIDv0 {text!r}") from None
            return cls.decode(raw)
        try:
            if text[0] == "b" and text.islower():  # base32, kubo's CIDv1 text form
                body = text[1:].upper()
                raw = base64.b32decode(body + "=" * (-len(body) % 8))
            else:
                raw = multibase.decode(text)
        except Exception:  # py-multibase raises bare ValueError/KeyError for unknown bases
            raise InvalidCID(f"not a CID: {text!r} (unknown multibase or bad characters)") from None
        if raw[:1] == b"\x12":
            raise InvalidCID(f"CIDv0 must not carry a multibase prefix: {text!r}")
        try:
            return cls.decode(raw)
        except InvalidCID as exc:  # text that decodes to bytes which are no CID ("zzzz")
            raise InvalidCID(f"not a CID: {text!r} ({exc})") from None

    @classmethod
    def decode(cls, raw: bytes) -> CID:
        cid, end = cls.read(raw, 0)
        if end != len(raw):
            raise InvalidCID("trailing bytes after CID")
        return cid

    @classmethod
    def read(cls, buf: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
        """Read one binary CID starting at `offset` (CAR sections and dag-pb links embed them)."""
        if len(buf) - offset >= 34 and buf[offset] == 0x12 and buf[offset + 1] == 0x20:
            return cls(0, Codec.DAG_PB, bytes(buf[offset : offset + 34])), offset + 34
        try:
            version, pos = varint.decode(buf, offset)
            if version != 1:
                raise InvalidCID(f"unsupported CID version {version}")
            codec, pos = varint.decode(buf, pos)
        except varint.VarintError as exc:
            raise InvalidCID(f"bad CID: {exc}") from None
        start = pos
        _, end = Multihash.read(buf, pos)
        return cls(1, codec, bytes(buf[start:end])), end

    # Written out rather than generated by @dataclass (which defines them with exec, as Python
    # functions, even in a mypyc build): CIDs key every dict of the Bitswap engine, ~190,000
    # hashes per 10,000-block fetch served.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CID):
            return NotImplemented
        return (self.multihash == other.multihash and self.codec == other.codec
                and self.version == other.version)

    def __hash__(self) -> int:
        return hash((self.version, self.codec, self.multihash))

    # -- views --------------------------------------------------------------------------------
    def __bytes__(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return varint.encode(1) + varint.encode(self.codec) + self.multihash

    @property
    def hash_code(self) -> int:
        return varint.decode(self.multihash)[0]

    @property
    def codec_name(self) -> str:
        return CODEC_NAMES.get(self.codec, f"0x{self.codec:x}")

    def encode(self, base: str = "base32") -> str:
        if self.version == 0:
            if base not in ("base58btc", "base32"):
                raise UnsupportedError("CIDv0 is always base58btc")
            return base58.b58encode(self.multihash).decode()
        if base == "base32":  # the common case, without a round-trip through py-multibase
            return "b" + base64.b32encode(bytes(self)).decode().lower().rstrip("=")
        try:
            return multibase.encode(base, bytes(self)).decode()
        except Exception:
            raise UnsupportedError(f"unknown multibase {base!r}") from None

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"CID({self})"

    def to_v1(self) -> CID:
        return CID(1, self.codec, self.multihash)

    def verify(self, data: bytes | memoryview) -> None:
        """Raise HashMismatch unless `data` hashes to this CID's multihash."""
        if digest(data, self.hash_code) != self.multihash:
            raise HashMismatch(f"block bytes do not hash to {self}")
