"""Validation and selection of DHT values, by key namespace (go-libp2p-record's validators).

PUT_VALUE and GET_VALUE carry opaque bytes under keys "/<namespace>/<rest>". A node stores only
values it can validate and, given several answers for one key, keeps the one `select` picks.
Two namespaces exist, as in kubo: "/pk/<peer id>" holds the peer's public key, "/ipns/<peer
id>" a signed IPNS record. Anything else is refused: an unvalidated value is an open store.
"""

from __future__ import annotations

from blockmesh.data.routing import ipns, pubkey
from blockmesh.data.routing.errors import RecordError

#: Larger keys are refused before any parsing (a namespace and a peer id need far less).
MAX_KEY_SIZE = 1024
#: The largest value any namespace accepts (an IPNS record, by spec; a public key is smaller).
MAX_VALUE_SIZE = ipns.MAX_RECORD_SIZE


def split_key(key: bytes) -> tuple[str, bytes]:
    """("pk", peer id bytes) for b"/pk/<id>": the namespace and the rest of the key."""
    if len(key) > MAX_KEY_SIZE:
        raise RecordError(f"record key of {len(key)} bytes exceeds {MAX_KEY_SIZE}")
    if not key.startswith(b"/"):
        raise RecordError("record key does not start with '/'")
    namespace, slash, rest = key[1:].partition(b"/")
    if not slash or not namespace or not rest:
        raise RecordError("record key is not of the form /<namespace>/<key>")
    try:
        return namespace.decode("ascii"), rest
    except UnicodeDecodeError:
        raise RecordError("record namespace is not ASCII") from None


def validate(key: bytes, value: bytes, now: float) -> None:
    """RecordError unless `value` is valid under `key` at Unix time `now`."""
    namespace, rest = split_key(key)
    if len(value) > MAX_VALUE_SIZE:
        raise RecordError(f"record value of {len(value)} bytes exceeds {MAX_VALUE_SIZE}")
    if namespace == "pk":
        pubkey.check_peer_id(rest)
        if pubkey.parse_public_key(value).peer_id_bytes() != rest:
            raise RecordError("public key does not match the peer id in its key")
    elif namespace == ipns.NAMESPACE:
        ipns.validate(rest, value, now)
    else:
        raise RecordError(f"no validator for record namespace {namespace!r}")


def select(key: bytes, values: list[bytes]) -> int:
    """Index of the value to keep among valid `values` for `key`."""
    namespace, _ = split_key(key)
    if not values:
        raise RecordError("no values to choose from")
    if namespace == "pk":
        return 0  # every valid value for a key is the same key
    if namespace == ipns.NAMESPACE:
        return ipns.select(values)
    raise RecordError(f"no validator for record namespace {namespace!r}")
