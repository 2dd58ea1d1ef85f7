"""Client identities as key files: one file per client, readable by its owner only.

Replicas must never hold a client's private key, or any replica could sign requests in that
client's name and the cluster would execute them. So `cluster.toml`, which every replica
loads, lists only each client's public key and role, and the private half lives in a key file
of its own (`clients/clientK.key`, mode 0600) that only the programs acting as that client
read (`cluster submit --identity FILE`, the load generator, the demo).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from blockmesh.control.keys import Signer
from blockmesh.errors import BlockmeshError, DecodeError

#: What a client identity may ask of the cluster. A reader may read state and status and
#: submit read-only operations; a writer may also submit operations that change state.
ROLES = ("writer", "reader")


class IdentityError(BlockmeshError):
    """A client key file is missing, malformed, or not the identity the caller expected."""


def write_secret(path: Path, text: str) -> None:
    """Write `text` to `path` readable and writable by the owner only (0600), with no moment
    at which the file exists with wider permissions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
        with os.fdopen(fd, "w") as out:
            fd = -1
            out.write(text)
    finally:
        if fd >= 0:
            os.close(fd)


@dataclass(frozen=True)
class ClientIdentity:
    """One client's private material: its Ed25519 request-signing key (hex) and, for
    transports, its TLS private key and certificate (PEM)."""

    client_id: str
    private_key: str
    tls_key: str = ""
    tls_cert: str = ""

    def signer(self) -> Signer:
        return Signer.from_hex(self.client_id, self.private_key)

    def save(self, path: Path) -> None:
        write_secret(path, tomli_w.dumps({"client_id": self.client_id,
                                          "private_key": self.private_key,
                                          "tls_key": self.tls_key, "tls_cert": self.tls_cert}))

    @classmethod
    def load(cls, path: Path) -> ClientIdentity:
        try:
            raw = tomllib.loads(path.read_text())
            identity = cls(str(raw["client_id"]), str(raw["private_key"]),
                           str(raw.get("tls_key", "")), str(raw.get("tls_cert", "")))
            identity.signer()
        except FileNotFoundError:
            raise IdentityError(f"no such client key file: {path}") from None
        except (tomllib.TOMLDecodeError, KeyError, DecodeError, UnicodeDecodeError) as exc:
            raise IdentityError(f"{path}: not a client key file ({exc})") from None
        return identity
