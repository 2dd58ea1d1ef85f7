"""The node's Ed25519 identity, kept in `<repo>/identity.key` so the peer id survives restarts.

The file holds the libp2p `PrivateKey` protobuf exactly as go-libp2p and kubo serialise an
Ed25519 key (type 1, data = 32-byte seed followed by the 32-byte public key): the bytes kubo
base64-encodes into its config's `Identity.PrivKey`, so a key can move between the two.
Only that canonical 68-byte form is accepted; anything else is refused rather than guessed at.

Like ssh, a key file that group or others may read is refused: a leaked key is a stolen peer id.
Creation is atomic and first-writer-wins (write a temp file, then hard-link it into place), so
two processes starting on one fresh repo end up with the same identity.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from libp2p.crypto.ed25519 import Ed25519PrivateKey as Libp2pEd25519PrivateKey
from libp2p.crypto.ed25519 import Ed25519PublicKey as Libp2pEd25519PublicKey
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

from blockmesh.data.net.errors import IdentityError

IDENTITY_FILE = "identity.key"
_SEED_LEN = 32
# protobuf PrivateKey{Type: Ed25519 (1), Data: 64 bytes}: field 1 varint, field 2 length 64.
_HEADER = bytes((0x08, 0x01, 0x12, 0x40))
_FILE_LEN = len(_HEADER) + 2 * _SEED_LEN
_FILE_MODE = 0o600


@dataclass(frozen=True)
class Identity:
    """An Ed25519 key pair and the peer id it yields (`12D3KooW…`)."""

    seed: bytes = field(repr=False)
    public_key: bytes

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_seed(secrets.token_bytes(_SEED_LEN))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != _SEED_LEN:
            raise IdentityError(f"an Ed25519 seed is {_SEED_LEN} bytes, got {len(seed)}")
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        return cls(seed=bytes(seed), public_key=public.public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def peer_id(self) -> str:
        return ID.from_pubkey(Libp2pEd25519PublicKey.from_bytes(self.public_key)).to_base58()

    def to_bytes(self) -> bytes:
        return _HEADER + self.seed + self.public_key

    @classmethod
    def from_bytes(cls, data: bytes) -> Identity:
        if len(data) != _FILE_LEN or not data.startswith(_HEADER):
            raise IdentityError(
                f"not an Ed25519 libp2p private key ({len(data)} bytes; expected the "
                f"{_FILE_LEN}-byte protobuf form)"
            )
        seed = data[len(_HEADER) : len(_HEADER) + _SEED_LEN]
        identity = cls.from_seed(seed)
        if identity.public_key != data[len(_HEADER) + _SEED_LEN :]:
            raise IdentityError("the key file's public key does not belong to its private key")
        return identity

    def key_pair(self) -> KeyPair:
        """The same key in py-libp2p's types, for `new_host`."""
        private = Libp2pEd25519PrivateKey.from_bytes(self.seed)
        return KeyPair(private, private.get_public_key())


def identity_path(repo: str | os.PathLike[str]) -> Path:
    return Path(repo) / IDENTITY_FILE


def load_identity(repo: str | os.PathLike[str]) -> Identity:
    """Read `<repo>/identity.key`; IdentityError if it is missing, too open or malformed."""
    path = identity_path(repo)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise IdentityError(f"cannot open identity key {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise IdentityError(f"identity key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise IdentityError(
                f"identity key {path} is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):o}); run: chmod 600 {path}"
            )
        data = handle.read(_FILE_LEN + 1)
    try:
        return Identity.from_bytes(data)
    except IdentityError as exc:
        raise IdentityError(f"identity key {path}: {exc}") from exc


def load_or_create_identity(repo: str | os.PathLike[str]) -> Identity:
    """The repo's identity, creating the repo directory and a new key on first use."""
    path = identity_path(repo)
    if path.exists() or path.is_symlink():
        return load_identity(repo)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity = Identity.generate()
    tmp = path.with_name(f".{IDENTITY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(identity.to_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            # Another process created it first: its key wins.
            return load_identity(repo)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return identity
