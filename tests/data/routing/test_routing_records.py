"""DHT record validation and selection: spec vectors, our own records, tampering, fuzz."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.peer.id import ID

from blockmesh.data import pbwire
from blockmesh.data.cid import CID
from blockmesh.data.net.identity import Identity
from blockmesh.data.routing import ipns, pubkey, records
from blockmesh.data.routing.errors import RecordError
from blockmesh.errors import BlockmeshError

VECTORS = Path(__file__).parent.parent / "vectors" / "ipns"
NOW = time.time()
HOUR_NS = 3600 * 10**9


def _vector(suffix: str) -> tuple[bytes, bytes]:
    (path,) = VECTORS.glob(f"*_{suffix}.ipns-record")
    name = CID.parse(path.name.split("_")[0])
    return ipns.routing_key(name.multihash), path.read_bytes()


def _peer_bytes(identity: Identity) -> bytes:
    return ID.from_base58(identity.peer_id).to_bytes()


@pytest.fixture(scope="module")
def me() -> Identity:
    return Identity.from_seed(bytes(range(32)))


def _record(me: Identity, seq: int = 1, eol_ns: int | None = None, **kw: object) -> bytes:
    eol = ipns.lifetime_eol(NOW) if eol_ns is None else eol_ns
    return ipns.create(me, b"/ipfs/bafkqaddwgevxmmraojswg33smq", sequence=seq, eol_ns=eol, **kw)


# -- spec vectors ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["v1-v2", "v2", "v1-v2-broken-signature-v1"])
def test_spec_vectors_that_are_valid(suffix: str) -> None:
    key, raw = _vector(suffix)
    records.validate(key, raw, NOW)
    assert records.select(key, [raw]) == 0


@pytest.mark.parametrize(("suffix", "reason"), [
    ("v1-v2-broken-signature-v2", "signature"),
    ("v1-v2-broken-v1-value", "differs"),
    ("v1", "lacks data or signatureV2"),
])
def test_spec_vectors_that_are_refused(suffix: str, reason: str) -> None:
    key, raw = _vector(suffix)
    with pytest.raises(RecordError, match=reason):
        records.validate(key, raw, NOW)


def test_spec_vector_content_and_v1_signature_scheme() -> None:
    """The V1 signature our `create` writes is the scheme the vectors were signed with."""
    key, raw = _vector("v1-v2")
    record, found = ipns.parse(raw)
    assert record.value == b"/ipfs/bafkqaddwgevxmmraojswg33smq"
    assert record.eol_ns == ipns.parse_rfc3339(b"2123-08-14T12:17:03.694052Z")
    signer = pubkey.key_from_peer_id(key[len(b"/ipns/"):])
    assert signer is not None
    signer.verify(found[1] + found[4] + b"EOL", found[2])  # type: ignore[operator,arg-type]


def test_spec_vector_expired_after_its_eol() -> None:
    key, raw = _vector("v2")
    later = ipns.parse_rfc3339(b"2123-08-14T12:17:04Z") / 1e9
    with pytest.raises(RecordError, match="expired"):
        records.validate(key, raw, later)


# -- records we create -----------------------------------------------------------------------
@pytest.mark.parametrize("v1", [True, False])
@pytest.mark.parametrize("embed", [True, False])
def test_created_record_validates(me: Identity, v1: bool, embed: bool) -> None:
    raw = _record(me, 7, v1_compatible=v1, embed_public_key=embed)
    record = ipns.validate(_peer_bytes(me), raw, NOW)
    assert (record.sequence, record.value) == (7, b"/ipfs/bafkqaddwgevxmmraojswg33smq")
    records.validate(ipns.routing_key(_peer_bytes(me)), raw, NOW)


def test_record_of_another_key_is_refused(me: Identity) -> None:
    other = Identity.from_seed(bytes(32))
    with pytest.raises(RecordError, match="signature"):
        records.validate(ipns.routing_key(_peer_bytes(other)), _record(me), NOW)
    with pytest.raises(RecordError, match="embedded public key"):
        records.validate(ipns.routing_key(_peer_bytes(other)),
                         _record(me, embed_public_key=True), NOW)


def test_tampered_data_is_refused(me: Identity) -> None:
    raw = _record(me, 5, v1_compatible=False)
    tampered = raw.replace(b"Sequence\x05", b"Sequence\x06")
    assert tampered != raw
    with pytest.raises(RecordError, match="signature"):
        ipns.validate(_peer_bytes(me), tampered, NOW)


def test_expired_record_is_refused(me: Identity) -> None:
    raw = _record(me, eol_ns=int(NOW * 1e9) - 1)
    with pytest.raises(RecordError, match="expired"):
        ipns.validate(_peer_bytes(me), raw, NOW)


def test_oversized_record_is_refused(me: Identity) -> None:
    with pytest.raises(RecordError, match="over"):
        ipns.create(me, b"/ipfs/" + b"a" * ipns.MAX_RECORD_SIZE, sequence=1, eol_ns=1)
    raw = _record(me) + pbwire.len_field(15, b"x" * ipns.MAX_RECORD_SIZE)
    with pytest.raises(RecordError, match="exceeds"):
        ipns.validate(_peer_bytes(me), raw, NOW)


def test_select_prefers_sequence_then_validity(me: Identity) -> None:
    key = ipns.routing_key(_peer_bytes(me))
    eol = ipns.lifetime_eol(NOW)
    old, new = _record(me, 1, eol + HOUR_NS), _record(me, 2, eol)
    assert records.select(key, [old, new]) == 1
    assert records.select(key, [new, old]) == 0
    short, long = _record(me, 2, eol), _record(me, 2, eol + HOUR_NS)
    assert records.select(key, [short, long]) == 1
    assert records.select(key, [long, short]) == 0
    twin_a, twin_b = sorted([_record(me, 3, eol, v1_compatible=False),
                             _record(me, 3, eol, v1_compatible=True)])
    assert records.select(key, [twin_b, twin_a]) == 0  # greater bytes break an exact tie


def test_rfc3339_round_trip_and_offsets() -> None:
    assert ipns.parse_rfc3339(ipns.format_rfc3339(1_700_000_000_123_456_789)) == (
        1_700_000_000_123_456_789)
    assert ipns.format_rfc3339(1_700_000_000 * 10**9) == b"2023-11-14T22:13:20Z"
    assert ipns.parse_rfc3339(b"2023-11-14T23:13:20+01:00") == 1_700_000_000 * 10**9
    for bad in (b"2023-13-01T00:00:00Z", b"yesterday", b"2023-11-14 22:13:20Z"):
        with pytest.raises(RecordError):
            ipns.parse_rfc3339(bad)


# -- public keys -----------------------------------------------------------------------------
def test_public_key_record(me: Identity) -> None:
    key = pubkey.PublicKey(pubkey.ED25519, me.public_key)
    assert key.peer_id_bytes() == _peer_bytes(me)
    records.validate(b"/pk/" + _peer_bytes(me), key.serialize(), NOW)
    assert records.select(b"/pk/" + _peer_bytes(me), [key.serialize()] * 2) == 0
    other = Identity.from_seed(bytes(32))
    with pytest.raises(RecordError, match="does not match"):
        records.validate(b"/pk/" + _peer_bytes(other), key.serialize(), NOW)


def test_hashed_peer_id_key_matches_sha256_form() -> None:
    big = pubkey.PublicKey(pubkey.RSA, b"\x30" * 270)
    assert big.peer_id_bytes()[:2] == b"\x12\x20"
    records.validate(b"/pk/" + big.peer_id_bytes(), big.serialize(), NOW)


def test_non_canonical_public_key_is_refused(me: Identity) -> None:
    swapped = pbwire.len_field(2, me.public_key) + pbwire.varint_field(1, pubkey.ED25519)
    with pytest.raises(RecordError, match="canonical"):
        pubkey.parse_public_key(swapped)


@pytest.mark.parametrize("key", [b"", b"pk/x", b"/pk", b"/pk/", b"/unknown/abc",
                                 b"/\xff/abc", b"/" + b"a" * 2000 + b"/x"])
def test_bad_keys_are_refused(key: bytes) -> None:
    with pytest.raises(RecordError):
        records.validate(key, b"", NOW)


# -- fuzz ------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([b"/pk/", b"/ipns/"]), st.binary(max_size=40))
def test_arbitrary_bytes_raise_only_typed_errors(value: bytes, ns: bytes, rest: bytes) -> None:
    for key in (ns + rest, ns + bytes((0, 36, 8, 1, 18, 32)) + bytes(32)):
        with contextlib.suppress(BlockmeshError):
            records.validate(key, value, NOW)
        with contextlib.suppress(BlockmeshError):
            records.select(key, [value])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_records_raise_only_typed_errors(me: Identity, data: st.DataObject) -> None:
    raw = bytearray(_record(me))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        ipns.validate(_peer_bytes(me), bytes(raw), NOW)
    except BlockmeshError:
        return
    assert bytes(raw) == _record(me) or ipns.parse(bytes(raw))  # a survivor must still parse
