"""MAC authenticators (Castro & Liskov's normal-case authentication): client requests, COMMITs.

An Ed25519 check costs ~82 µs here; every replica checking every request's signature was a
fifth of a replica's CPU per request. A client instead attaches one MAC per replica, each under
a key that only that client and that replica can compute, and a replica checks its own entry
(~1 µs). A signed request still carries its signature: the primary verifies it before
proposing (so a client cannot get a request proposed that some backups will refuse), and a
backup whose entry is missing or wrong falls back to it. A MAC-only request (the client's
choice unless `client_signatures_required`) has no signature to fall back to: a backup that
cannot check its own entry holds its vote until f others prepared the batch (engine.py), as
docs/benchmarks.md "MAC-only client requests: what they guarantee" explains.

Pair keys need no handshake: both sides hold Ed25519 keys, which convert to X25519 keys
(libsodium's birational map), so X25519(own private, other public) is a secret the two share.
The MAC key is a keyed BLAKE2b of that secret and both identities, so each (client, replica)
pair gets its own key and a replica cannot present its key as another pair's.

Replicas authenticate their COMMITs the same way, with keys of their own (`Pairing.PEERS`: another
derivation, so a member that is also a client holds unrelated keys in the two roles). A COMMIT
carries an authenticator vector, one MAC per replica (`mac_vector`): relayed by a third replica,
each recipient still checks the entry its author made for it, which the relay cannot forge.
What a vector does not give is agreement among recipients: its author may make the entry right
for one replica and wrong for another. COMMITs count only towards the committed predicate of
the replica that checks them, which needs no more than that their authors sent them; whatever
a replica forwards as proof for others to check (PRE_PREPARE, PREPARE, CHECKPOINT, VIEW_CHANGE,
NEW_VIEW) stays signed (engine.py).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Protocol

from nacl.bindings import crypto_scalarmult
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from blockmesh.control.proto import pbft_pb2 as pb

MAC_SIZE = 16
_KEY_PERSON = b"bm-pbft-pairkey"
_MAC_PERSON = b"bm-pbft-reqmac"
_PEER_KEY_PERSON = b"bm-pbft-peerkey"


class MacKeys(Protocol):
    """What authenticating needs: the MAC of `data` under the key this party shares with
    `peer`, or None when there is no such key."""

    def mac(self, peer: str, data: bytes) -> bytes | None: ...


class Pairing(Enum):
    """Which pairs a party keys and which end of each it is: one value, so that a party cannot
    be told both that it keys replicas among themselves and which end of a client pair it is.
    Both ends of a pair must feed the two ids to the derivation in the same order."""

    #: A client, keyed with each replica: (client, replica).
    CLIENT = "client"
    #: A replica, keyed with each client: (client, replica), as the client orders them.
    REPLICA = "replica"
    #: A replica, keyed with each other replica: the ids sorted, under another derivation.
    PEERS = "peers"


class PairKeys:
    """The MAC keys one party shares with each party `others` lists (derived lazily).

    `private` is this party's Ed25519 private key; `others` maps the other ends' ids to their
    Ed25519 public keys; `pairing` says which pairs these are and which end this party is."""

    def __init__(self, me: str, private: SigningKey, others: Mapping[str, bytes],
                 pairing: Pairing) -> None:
        self._me = me
        self._pairing = pairing
        self._private: PrivateKey = private.to_curve25519_private_key()
        self._others = dict(others)
        self._keys: dict[str, bytes | None] = {}
        self._hashers: dict[str, Any] = {}

    def knows(self, peer: str) -> bool:
        return peer in self._others

    def key(self, peer: str) -> bytes | None:
        """The key shared with `peer`, or None for an unknown peer or an unusable public key."""
        if peer in self._keys:
            return self._keys[peer]
        public = self._others.get(peer)
        key = None if public is None else self._derive(peer, public)
        self._keys[peer] = key
        return key

    def mac(self, peer: str, data: bytes) -> bytes | None:
        """The MAC of `data` under the key shared with `peer`. A keyed BLAKE2b state is set
        up once per peer and copied per message (half the cost of keying it every time)."""
        hasher = self._hashers.get(peer)
        if hasher is None:
            key = self.key(peer)
            if key is None:
                return None
            hasher = self._hashers[peer] = _keyed(key)
        h = hasher.copy()
        h.update(data)
        return h.digest()

    def _derive(self, peer: str, public: bytes) -> bytes | None:
        try:
            theirs: PublicKey = VerifyKey(public).to_curve25519_public_key()
            shared = crypto_scalarmult(bytes(self._private), bytes(theirs))
        except (CryptoError, ValueError, TypeError):
            return None  # a low-order or malformed key: no usable secret, fall back to signatures
        if self._pairing is Pairing.PEERS:
            first, second = sorted((self._me, peer))
        elif self._pairing is Pairing.CLIENT:
            first, second = self._me, peer
        else:
            first, second = peer, self._me
        ids = b"".join(struct.pack(">I", len(x)) + x for x in (first.encode(), second.encode()))
        person = _PEER_KEY_PERSON if self._pairing is Pairing.PEERS else _KEY_PERSON
        return hashlib.blake2b(ids, key=shared, digest_size=32, person=person).digest()


def _keyed(key: bytes) -> Any:
    return hashlib.blake2b(key=key, digest_size=MAC_SIZE, person=_MAC_PERSON)


def authenticate(req: pb.Request, keys: MacKeys, replicas: Sequence[str],
                 signed_bytes: bytes) -> None:
    """Fill `req.authenticator`: one MAC per replica in `replicas` order over `signed_bytes`
    (the request's signing bytes). An entry the client cannot compute is left empty."""
    del req.authenticator[:]
    req.authenticator.extend([keys.mac(replica, signed_bytes) or b"" for replica in replicas])


def verify_entry(req: pb.Request, keys: MacKeys, index: int, signed_bytes: bytes) -> bool:
    """True when the entry for the replica at `index` is the MAC of the request's client."""
    if index >= len(req.authenticator):
        return False
    tag = req.authenticator[index]
    expected = keys.mac(req.client_id, signed_bytes)
    return expected is not None and len(tag) == MAC_SIZE and hmac.compare_digest(tag, expected)


def mac_vector(keys: MacKeys, nodes: Sequence[str], me: str, data: bytes) -> bytes:
    """The authenticator of a replica's message over `data`: one MAC per replica in `nodes`
    order, MAC_SIZE bytes each (zeros for itself and for a peer it has no key with)."""
    blank = bytes(MAC_SIZE)
    return b"".join(blank if node == me else (keys.mac(node, data) or blank) for node in nodes)


def check_vector(keys: MacKeys, sender: str, index: int, count: int, tag: bytes,
                 data: bytes) -> bool:
    """True when the entry at `index` of `tag` (a vector for `count` replicas) is `sender`'s
    MAC of `data` under the key it shares with the replica at `index`."""
    if len(tag) != count * MAC_SIZE:
        return False
    expected = keys.mac(sender, data)
    start = index * MAC_SIZE
    return expected is not None and hmac.compare_digest(tag[start:start + MAC_SIZE], expected)
