"""dag-cbor (codec 0x71): CBOR restricted to one canonical form, links as tag 42.

The form follows the IPLD DAG-CBOR spec and what kubo (go-ipld-prime) and the JS
`@ipld/dag-cbor` write: integers and lengths in their shortest head, every float as a 64-bit
IEEE 754 double (never half or single precision), map keys only strings, sorted by the length of
their UTF-8 bytes and then bytewise, definite lengths only, and no tag but 42 (a CID). NaN and the
infinities, CBOR `undefined` and the other simple values, and bignums (tags 2 and 3) are outside
the IPLD data model: never written, refused when read.

The encoder is written here rather than borrowed because a generic canonical CBOR encoder picks
the shortest float that holds the value (1.5 becomes a float16), which gives other CIDs than
every IPLD implementation. Decoding lets cbor2 parse (its C code bounds nesting and never
allocates before the bytes are there), turns all of cbor2's built-in tag interpretations into
refusals, then re-encodes the value and requires the very same bytes, so any block accepted is
in the canonical form and a CID always names exactly one value.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any

import cbor2

from blockmesh.data.cid import CID
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.errors import DecodeError, InvalidCID

CID_TAG = 42
MAX_DEPTH = 256
"""Nesting of lists and maps: deep enough for real documents, shallow enough for recursion."""
MAX_INT = 2**64 - 1
MIN_INT = -(2**64)
"""CBOR's major types 0 and 1 hold these; anything wider needs a bignum tag dag-cbor forbids."""

# Tags cbor2 interprets itself (dates, bignums, decimals, regexes, shared references...) without
# ever calling tag_hook; each is mapped to a refusal so hostile bytes never reach that code.
_CBOR2_SEMANTIC_TAGS = (0, 1, 2, 3, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258,
                        260, 261, 1004, 43000, 55799)


class DagCBORError(DecodeError):
    """Bytes that are not canonical dag-cbor, or a value dag-cbor cannot hold."""


_U8 = struct.Struct(">BB").pack
_U16 = struct.Struct(">BH").pack
_U32 = struct.Struct(">BI").pack
_U64 = struct.Struct(">BQ").pack
_F64 = struct.Struct(">Bd").pack


def _head(major: int, value: int) -> bytes:
    """A CBOR initial byte and argument in the shortest form (the spec's canonical head)."""
    if value < 24:
        return bytes((major << 5 | value,))
    if value < 0x100:
        return _U8(major << 5 | 24, value)
    if value < 0x10000:
        return _U16(major << 5 | 25, value)
    if value < 0x100000000:
        return _U32(major << 5 | 26, value)
    return _U64(major << 5 | 27, value)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise DagCBORError("dag-cbor strings must be valid Unicode (found a lone surrogate)") \
            from None


def _map_entry_order(entry: tuple[bytes, Any]) -> tuple[int, bytes]:
    return len(entry[0]), entry[0]


def _encode_into(out: bytearray, value: Any, depth: int) -> None:
    """Append `value`'s canonical encoding. Dispatch is on the exact type, most common first:
    decode re-encodes every block it accepts, so this loop bounds how fast blocks are read."""
    kind = type(value)
    if kind is int:
        if 0 <= value < 24:
            out.append(value)
        elif value >= 0:
            if value > MAX_INT:
                raise DagCBORError(f"integer {value} does not fit in 64 bits; dag-cbor has no "
                                   "bignums")
            out += _head(0, value)
        else:
            if value < MIN_INT:
                raise DagCBORError(f"integer {value} does not fit in 64 bits; dag-cbor has no "
                                   "bignums")
            out += _head(1, -1 - value)
    elif kind is str:
        raw = _utf8(value)
        out += _head(3, len(raw))
        out += raw
    elif kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise DagCBORError(f"dag-cbor value nested deeper than {MAX_DEPTH}")
        out += _head(4, len(value))
        for item in value:
            _encode_into(out, item, depth + 1)
    elif kind is dict:
        if depth >= MAX_DEPTH:
            raise DagCBORError(f"dag-cbor value nested deeper than {MAX_DEPTH}")
        entries = []
        for key, item in value.items():
            if type(key) is not str:
                raise DagCBORError("dag-cbor map keys must be strings")
            entries.append((_utf8(key), item))
        entries.sort(key=_map_entry_order)
        out += _head(5, len(entries))
        for key_bytes, item in entries:
            out += _head(3, len(key_bytes))
            out += key_bytes
            _encode_into(out, item, depth + 1)
    elif kind is float:
        if not math.isfinite(value):
            raise DagCBORError("dag-cbor forbids NaN and infinities")
        out += _F64(0xFB, value)
    elif kind is bytes:
        out += _head(2, len(value))
        out += value
    elif value is None:
        out.append(0xF6)
    elif kind is bool:
        out.append(0xF5 if value else 0xF4)
    elif kind is CID:
        raw = b"\x00" + bytes(value)
        out += _head(6, CID_TAG)
        out += _head(2, len(raw))
        out += raw
    elif value is cbor2.undefined:
        raise DagCBORError("CBOR undefined is not in the IPLD data model")
    elif kind is cbor2.CBORSimpleValue:
        raise DagCBORError(f"CBOR simple value {value.value} is not in the IPLD data model")
    else:  # subclasses (an IntEnum, an OrderedDict) as the value they stand for
        for base in (bool, int, float, str, bytes, list, tuple, dict):
            if isinstance(value, base):
                _encode_into(out, base(value), depth)
                return
        raise DagCBORError(f"dag-cbor cannot hold a {kind.__name__}")


def encode(value: Any) -> bytes:
    """The one canonical dag-cbor encoding of `value` (None, bool, int, float, str, bytes, CID,
    lists and string-keyed dicts of these)."""
    out = bytearray()
    _encode_into(out, value, 0)
    return bytes(out)


def _tag_hook(tag: cbor2.CBORTag, _immutable: bool) -> Any:
    """cbor2 6 calls this, with (tag, immutable), for every tag it has no built-in meaning for."""
    if tag.tag != CID_TAG:
        raise DagCBORError(f"dag-cbor allows only tag 42, found tag {tag.tag}")
    raw = tag.value
    if not isinstance(raw, bytes) or raw[:1] != b"\x00":
        raise DagCBORError("tag 42 must hold bytes starting with the identity multibase 0x00")
    try:
        return CID.decode(raw[1:])
    except InvalidCID as exc:
        raise DagCBORError(f"invalid CID in tag 42: {exc}") from None


def _refuse_tag(tag: int) -> Any:
    def refuse(*_args: object) -> Any:
        kind = "bignums" if tag in (2, 3) else f"tag {tag}"
        raise DagCBORError(f"dag-cbor allows only tag 42, found {kind}")
    return refuse


_SEMANTIC_REFUSALS: Mapping[int, Any] = {tag: _refuse_tag(tag) for tag in _CBOR2_SEMANTIC_TAGS}


def _own_error(exc: BaseException) -> DagCBORError | None:
    """The DagCBORError a hook raised, if cbor2 wrapped one (it chains hook errors)."""
    while exc is not None:
        if isinstance(exc, DagCBORError):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def decode(block: bytes) -> Any:
    """The value in a dag-cbor block; DagCBORError unless the block is canonical dag-cbor."""
    if len(block) > MAX_BLOCK_SIZE:
        raise DagCBORError(f"dag-cbor block of {len(block)} bytes exceeds {MAX_BLOCK_SIZE}")
    try:
        value = cbor2.loads(block, tag_hook=_tag_hook, semantic_decoders=_SEMANTIC_REFUSALS,
                            allow_indefinite=False, allow_duplicate_keys=False,
                            max_depth=MAX_DEPTH)
    except DagCBORError:
        raise
    except Exception as exc:  # cbor2 raises several unrelated types for malformed input
        own = _own_error(exc)
        if own is not None:
            raise DagCBORError(str(own)) from None
        raise DagCBORError(f"not valid CBOR: {exc}") from None
    canonical = encode(value)
    if canonical != block:
        raise DagCBORError("CBOR is not in dag-cbor canonical form")
    return value


def links(value: Any) -> list[CID]:
    """Every CID in a decoded value, in document order."""
    found: list[CID] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, CID):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found
