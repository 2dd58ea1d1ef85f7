"""dag-cbor (codec 0x71): CBOR restricted to one canonical form, links as tag 42.

Decoding re-encodes and compares: any block that is not in the canonical form (unsorted map
keys, non-minimal integers, indefinite lengths, floats where an integer fits...) is refused, so
a CID always names exactly one value.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import cbor2

from blockmesh.data.cid import CID
from blockmesh.errors import DecodeError, InvalidCID

CID_TAG = 42
MAX_BLOCK_SIZE = 4 * 1024 * 1024


class DagCBORError(DecodeError):
    """Bytes that are not canonical dag-cbor, or a value dag-cbor cannot hold."""


def _default(encoder: cbor2.CBOREncoder, value: Any) -> None:
    if isinstance(value, CID):
        encoder.encode(cbor2.CBORTag(CID_TAG, b"\x00" + bytes(value)))
        return
    raise DagCBORError(f"dag-cbor cannot hold a {type(value).__name__}")


def _check(value: Any, depth: int = 0) -> None:
    if depth > 256:
        raise DagCBORError("dag-cbor value nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise DagCBORError("dag-cbor forbids NaN and infinities")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise DagCBORError("dag-cbor map keys must be strings")
            _check(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check(item, depth + 1)


def encode(value: Any) -> bytes:
    _check(value)
    return cbor2.dumps(value, canonical=True, default=_default)


def _tag_hook(tag: cbor2.CBORTag, _immutable: bool) -> Any:
    """cbor2 6 calls tag hooks with (tag, immutable)."""
    if tag.tag != CID_TAG:
        raise DagCBORError(f"dag-cbor allows only tag 42, found tag {tag.tag}")
    raw = tag.value
    if not isinstance(raw, bytes) or raw[:1] != b"\x00":
        raise DagCBORError("tag 42 must hold bytes starting with the identity multibase 0x00")
    try:
        return CID.decode(raw[1:])
    except InvalidCID as exc:
        raise DagCBORError(f"invalid CID in tag 42: {exc}") from None


def decode(block: bytes) -> Any:
    if len(block) > MAX_BLOCK_SIZE:
        raise DagCBORError(f"dag-cbor block of {len(block)} bytes exceeds {MAX_BLOCK_SIZE}")
    try:
        value = cbor2.loads(block, tag_hook=_tag_hook, allow_indefinite=False,
                            allow_duplicate_keys=False)
    except DagCBORError:
        raise
    except Exception as exc:  # cbor2 raises several unrelated types for malformed input
        raise DagCBORError(f"not valid CBOR: {exc}") from None
    try:
        canonical = encode(value)
    except DagCBORError:
        raise
    except Exception as exc:
        raise DagCBORError(f"value cannot be dag-cbor: {exc}") from None
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


def from_json(value: Any) -> Any:
    """dag-json's conventions to values: {"/": "cid"} is a link, {"/": {"bytes": b64}} bytes."""
    if isinstance(value, dict):
        if set(value) == {"/"}:
            inner = value["/"]
            if isinstance(inner, str):
                return CID.parse(inner)
            if isinstance(inner, dict) and set(inner) == {"bytes"}:
                text = inner["bytes"]
                return base64.b64decode(text + "=" * (-len(text) % 4))
        return {key: from_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_json(item) for item in value]
    return value


def to_json(value: Any) -> Any:
    if isinstance(value, CID):
        return {"/": str(value)}
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode().rstrip("=")}}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value
