"""IPNS records (specs.ipfs.tech/ipns/ipns-record): create, validate, order.

A record is an `IpnsEntry` protobuf whose authoritative content is its `data` field, a DAG-CBOR
map (Value, Validity, ValidityType, Sequence, TTL), signed by the name's key as
"ipns-signature:" + data (signature V2). The legacy V1 protobuf fields may accompany it; when
present they must say what `data` says, so a reader that looks at either sees one record. V1
signatures are never trusted (kubo and js-ipns dropped them), only written for old readers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blockmesh.data import pbwire
from blockmesh.data.dag import dagcbor
from blockmesh.data.routing import pubkey
from blockmesh.data.routing.errors import RecordError

if TYPE_CHECKING:  # the CLI reads records without loading py-libp2p
    from blockmesh.data.net.identity import Identity

NAMESPACE = "ipns"
#: The spec's cap: larger records are refused unread.
MAX_RECORD_SIZE = 10 * 1024
SIGNATURE_PREFIX = b"ipns-signature:"
EOL = 0  # the only ValidityType there is
#: boxo's defaults for new records.
DEFAULT_LIFETIME = timedelta(hours=48)
DEFAULT_TTL_NS = 60 * 60 * 10**9

# IpnsEntry field numbers
_VALUE, _SIG_V1, _VALIDITY_TYPE, _VALIDITY, _SEQUENCE, _TTL, _PUBKEY, _SIG_V2, _DATA = range(1, 10)
_LEN_FIELDS = {_VALUE, _SIG_V1, _VALIDITY, _PUBKEY, _SIG_V2, _DATA}
_INT_FIELDS = {_VALIDITY_TYPE, _SEQUENCE, _TTL}
_NS = 10**9
_RFC3339 = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))")


@dataclass(frozen=True)
class IpnsRecord:
    """The validated content of a record (what `data` says), plus the raw protobuf fields."""

    value: bytes
    validity: bytes
    validity_type: int
    sequence: int
    ttl_ns: int
    eol_ns: int
    signature_v2: bytes
    data: bytes
    public_key: bytes | None  # the embedded PublicKey protobuf, if any


def routing_key(peer_id: bytes) -> bytes:
    """The DHT key of a name: "/ipns/" + the binary peer id."""
    return b"/ipns/" + peer_id


def parse(raw: bytes) -> tuple[IpnsRecord, dict[int, bytes | int]]:
    """Decode a record and check its shape (not its signature): sizes, `data`, V1 agreement."""
    if len(raw) > MAX_RECORD_SIZE:
        raise RecordError(f"IPNS record of {len(raw)} bytes exceeds {MAX_RECORD_SIZE}")
    found: dict[int, bytes | int] = {}
    try:
        for field, wire, value in pbwire.fields(raw, canonical=False):
            if field in _LEN_FIELDS and wire == pbwire.LEN:
                found[field] = bytes(value)  # type: ignore[arg-type]
            elif field in _INT_FIELDS and wire == pbwire.VARINT:
                found[field] = value  # type: ignore[assignment]
            elif field in _LEN_FIELDS | _INT_FIELDS:
                raise RecordError(f"IPNS record field {field} has the wrong wire type")
            # unknown fields are skipped, as protobuf readers do
    except pbwire.ProtobufError as exc:
        raise RecordError(f"malformed IPNS record: {exc}") from None
    data = found.get(_DATA)
    signature = found.get(_SIG_V2)
    if not isinstance(data, bytes) or not data or not isinstance(signature, bytes):
        raise RecordError("IPNS record lacks data or signatureV2 (V1-only records are refused)")
    fields = _data_fields(data)
    _check_v1_agrees(found, fields)
    if fields["ValidityType"] != EOL:
        raise RecordError(f"unknown IPNS validity type {fields['ValidityType']}")
    pub = found.get(_PUBKEY)
    record = IpnsRecord(
        value=fields["Value"], validity=fields["Validity"], validity_type=fields["ValidityType"],
        sequence=fields["Sequence"], ttl_ns=fields["TTL"], eol_ns=parse_rfc3339(fields["Validity"]),
        signature_v2=signature, data=data, public_key=pub if isinstance(pub, bytes) else None)
    return record, found


def _data_fields(data: bytes) -> dict[str, Any]:
    try:
        decoded = dagcbor.decode(data)
    except dagcbor.DagCBORError as exc:
        raise RecordError(f"IPNS record data is not DAG-CBOR: {exc}") from None
    if not isinstance(decoded, dict):
        raise RecordError("IPNS record data is not a map")
    kinds = {"Value": bytes, "Validity": bytes, "ValidityType": int, "Sequence": int, "TTL": int}
    for name, kind in kinds.items():
        value = decoded.get(name)
        if type(value) is not kind:
            raise RecordError(f"IPNS record data lacks {name} ({kind.__name__})")
        if kind is int and not 0 <= value < 2**64:
            raise RecordError(f"IPNS record data {name} out of range")
    return decoded


def _check_v1_agrees(found: dict[int, bytes | int], fields: dict[str, Any]) -> None:
    pairs = ((_VALUE, "Value"), (_VALIDITY, "Validity"), (_VALIDITY_TYPE, "ValidityType"),
             (_SEQUENCE, "Sequence"), (_TTL, "TTL"))
    for number, name in pairs:
        if number in found and found[number] != fields[name]:
            raise RecordError(f"IPNS record field {name} differs between protobuf and data")


def parse_rfc3339(text: bytes) -> int:
    """An RFC 3339 timestamp (Go's RFC3339Nano output) as Unix nanoseconds."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise RecordError("IPNS validity is not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, zulu, sign, off_h, off_m = match.groups()[6:]
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise RecordError(f"IPNS validity is not a real time: {exc}") from None
    seconds = int(moment.timestamp())
    if not zulu:
        offset = (int(off_h) * 60 + int(off_m)) * 60
        seconds -= offset if sign == b"+" else -offset
    nanos = int((fraction or b"0").ljust(9, b"0"))
    return seconds * _NS + nanos


def format_rfc3339(eol_ns: int) -> bytes:
    """Unix nanoseconds as Go's RFC3339Nano in UTC (fraction without trailing zeros)."""
    seconds, nanos = divmod(eol_ns, _NS)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return f"{stamp}{fraction}Z".encode()


def validate(peer_id: bytes, raw: bytes, now: float) -> IpnsRecord:
    """The record, if it is a valid, unexpired record of the name `peer_id` at Unix time `now`."""
    pubkey.check_peer_id(peer_id)
    record, _ = parse(raw)
    key = _signer(peer_id, record)
    key.verify(SIGNATURE_PREFIX + record.data, record.signature_v2)
    if int(now * _NS) >= record.eol_ns:
        raise RecordError(f"IPNS record expired at {record.validity.decode()}")
    return record


def _signer(peer_id: bytes, record: IpnsRecord) -> pubkey.PublicKey:
    if record.public_key is not None:
        key = pubkey.parse_public_key(record.public_key)
        if key.peer_id_bytes() != peer_id:
            raise RecordError("the record's embedded public key is not the name's key")
        return key
    key = pubkey.key_from_peer_id(peer_id)
    if key is None:
        raise RecordError("the name's key is neither inlined in its id nor embedded in the record")
    return key


def compare(a: IpnsRecord, b: IpnsRecord) -> int:
    """Which record is newer: higher sequence, then later end of validity (boxo's order)."""
    key_a, key_b = (a.sequence, a.eol_ns), (b.sequence, b.eol_ns)
    return (key_a > key_b) - (key_a < key_b)


def select(values: list[bytes]) -> int:
    """Index of the best record; ties go to the greater raw bytes, as boxo breaks them."""
    if not values:
        raise RecordError("no IPNS records to choose from")
    records = [parse(value)[0] for value in values]
    best = 0
    for index in range(1, len(values)):
        order = compare(records[index], records[best]) or (
            (values[index] > values[best]) - (values[index] < values[best]))
        if order > 0:
            best = index
    return best


def create(identity: Identity, value: bytes, *, sequence: int, eol_ns: int,
           ttl_ns: int = DEFAULT_TTL_NS, v1_compatible: bool = True,
           embed_public_key: bool = False) -> bytes:
    """A record for `identity`'s name pointing at `value` (e.g. b"/ipfs/<cid>"), signed V2.

    With `v1_compatible` (kubo's default) the V1 fields and signature are written too, so
    readers that predate V2 can still resolve the name."""
    if not 0 <= sequence < 2**64 or not 0 <= ttl_ns < 2**64:
        raise RecordError("IPNS sequence and TTL must fit in 64 unsigned bits")
    validity = format_rfc3339(eol_ns)
    data = dagcbor.encode({"Value": value, "Validity": validity, "ValidityType": EOL,
                           "Sequence": sequence, "TTL": ttl_ns})
    private = Ed25519PrivateKey.from_private_bytes(identity.seed)
    out = b""
    if v1_compatible:
        signature_v1 = private.sign(value + validity + b"EOL")
        out += (pbwire.len_field(_VALUE, value) + pbwire.len_field(_SIG_V1, signature_v1)
                + pbwire.varint_field(_VALIDITY_TYPE, EOL) + pbwire.len_field(_VALIDITY, validity)
                + pbwire.varint_field(_SEQUENCE, sequence) + pbwire.varint_field(_TTL, ttl_ns))
    if embed_public_key:
        out += pbwire.len_field(_PUBKEY, pubkey.PublicKey(pubkey.ED25519,
                                                          identity.public_key).serialize())
    out += (pbwire.len_field(_SIG_V2, private.sign(SIGNATURE_PREFIX + data))
            + pbwire.len_field(_DATA, data))
    if len(out) > MAX_RECORD_SIZE:
        raise RecordError(f"IPNS record would be {len(out)} bytes, over {MAX_RECORD_SIZE}")
    return out


def lifetime_eol(now: float, lifetime: timedelta = DEFAULT_LIFETIME) -> int:
    """The end of validity `lifetime` after Unix time `now`, in nanoseconds."""
    return int(now * _NS) + int(lifetime.total_seconds() * _NS)
