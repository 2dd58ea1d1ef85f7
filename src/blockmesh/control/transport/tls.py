"""Mutual TLS for both transports, from certificates the cluster file lists.

Why TLS and not Noise: grpcio ships TLS (BoringSSL) and nothing else, so TLS is the only way to
encrypt the gRPC transport without replacing gRPC's own connection layer, and Python's `ssl`
gives the TCP transport the same protocol; one mechanism is simpler to argue about than two.

Trust model: every member and every client identity has its own self-signed ECDSA P-256
certificate (ECDSA because both BoringSSL and OpenSSL accept it as a TLS 1.3 signature
scheme; it is a transport key only, separate from the Ed25519 key that signs consensus
messages and requests). `cluster.toml` lists every certificate, and the set of listed
certificates is the whole trust store: there is no CA, so nobody can mint a new identity.
TLS proves the peer holds the private key of *some* listed certificate; `identify` then maps the
peer's exact leaf certificate (DER bytes, not a name in it) to the one identity it is listed
for, and the transports check that identity against the one the peer claims. A leaf chained
to a listed certificate instead of being listed itself is refused by that exact match.

Cost: certificates are checked once per connection (a handshake: one ECDH and two ECDSA
signatures each side, well under a millisecond); after that TLS costs only the record layer
(AES-GCM or ChaCha20-Poly1305, a few GB/s per core here), never per-message certificate work.
"""

from __future__ import annotations

import datetime
import functools
import os
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from blockmesh.control.transport.errors import AuthenticationError
from blockmesh.errors import DecodeError

#: Certificates outlive any cluster: membership, not expiry, decides who is trusted.
_VALIDITY = datetime.timedelta(days=100 * 365)


def generate_certificate(name: str) -> tuple[str, str]:
    """A fresh ECDSA P-256 key and a self-signed certificate for identity `name`:
    (private key PEM, certificate PEM). The name goes in the subject and as a DNS SAN, which
    gRPC checks against `grpc.ssl_target_name_override` when dialing a member."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem.decode(), cert.public_bytes(serialization.Encoding.PEM).decode()


def pem_to_der(pem: str | bytes) -> bytes:
    try:
        data = pem.encode() if isinstance(pem, str) else pem
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise DecodeError(f"not a PEM certificate: {exc}") from None


@dataclass(frozen=True)
class TlsConfig:
    """This party's TLS key and certificate plus the cluster's listed certificates.

    `members` maps replica ids to their certificate PEMs, `clients` client ids to theirs.
    """

    key_pem: str
    cert_pem: str
    members: dict[str, str]
    clients: dict[str, str] = field(default_factory=dict)
    _ids: dict[bytes, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids: dict[bytes, str] = {}
        for identity, pem in [*self.members.items(), *self.clients.items()]:
            ids[pem_to_der(pem)] = identity
        object.__setattr__(self, "_ids", ids)

    @property
    def roots(self) -> bytes:
        """Every listed certificate: the whole trust store."""
        return "".join([*self.members.values(), *self.clients.values()]).encode()

    def identify(self, der: bytes | None) -> str | None:
        """The identity whose listed certificate is exactly `der`, or None."""
        return None if der is None else self._ids.get(der)

    def may_read(self, der: bytes | None) -> str:
        """The identity behind a peer certificate that may read state and status (a member or
        a listed client, readers included); AuthenticationError otherwise."""
        identity = self.identify(der)
        if identity is None:
            raise AuthenticationError("the peer's certificate is not listed in the cluster")
        return identity

    def expect(self, der: bytes | None, identity: str) -> None:
        """Check that the peer's certificate is the one listed for `identity`."""
        if self.identify(der) != identity:
            raise AuthenticationError(f"the peer's TLS certificate is not the one the cluster "
                                      f"lists for {identity!r}")

    # --- Python ssl (the TCP transport) -----------------------------------------------------

    def server_context(self) -> ssl.SSLContext:
        return self._context(ssl.PROTOCOL_TLS_SERVER)

    def client_context(self) -> ssl.SSLContext:
        return self._context(ssl.PROTOCOL_TLS_CLIENT)

    def _context(self, protocol: int) -> ssl.SSLContext:
        context = ssl.SSLContext(protocol)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        # Names are not what identifies a peer here: its exact certificate is (`expect`).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.roots.decode())
        _load_chain(context, self.cert_pem, self.key_pem)
        return context

    # --- gRPC -------------------------------------------------------------------------------

    def grpc_server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem.encode(), self.cert_pem.encode())],
            root_certificates=self.roots, require_client_auth=True)

    def grpc_channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.roots, self.key_pem.encode(),
                                            self.cert_pem.encode())


def grpc_peer_certificate(context: grpc.aio.ServicerContext) -> bytes | None:
    """The DER certificate the caller of an RPC presented, or None (plaintext)."""
    pems: Iterable[bytes] = context.auth_context().get("x509_pem_cert", ())
    for pem in pems:
        return _der_of_pem(pem)
    return None


@functools.lru_cache(maxsize=4096)
def _der_of_pem(pem: bytes) -> bytes | None:
    """gRPC hands over the peer certificate as PEM on every call; parse each one once."""
    try:
        return pem_to_der(pem)
    except DecodeError:
        return None


def _load_chain(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """`ssl` loads a key pair from files only: write them to a private temporary directory
    for the duration of the call."""
    with tempfile.TemporaryDirectory(prefix="bm-tls-") as tmp:
        cert_path, key_path = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        for path, text in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(text)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise DecodeError(f"TLS key and certificate do not load: {exc}") from None
