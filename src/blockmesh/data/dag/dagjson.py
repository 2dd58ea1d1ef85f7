"""dag-json as `dag put` reads it and `dag get` prints it: JSON plus the IPLD link and bytes forms.

`{"/": "<cid>"}` is a link and `{"/": {"bytes": "<base64, unpadded>"}}` is a byte string; every
other object is a map. A number written with a fraction or an exponent is a float, any other an
integer, as go-ipld-prime reads them. Input is bounded in size and nesting, and anything JSON or
the IPLD data model does not allow (NaN, duplicate keys, a malformed link...) is a DagJSONError,
so a hostile document never surfaces as a Python RecursionError or TypeError.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from blockmesh.data.cid import CID
from blockmesh.data.dag.dagcbor import MAX_DEPTH
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.errors import DecodeError

MAX_INPUT_SIZE = 4 * MAX_BLOCK_SIZE
"""JSON is wordier than the block it becomes (whitespace, base64); beyond this it cannot fit."""


class DagJSONError(DecodeError):
    """Text that is not dag-json, or names a value the IPLD data model does not have."""


def _no_constants(name: str) -> Any:
    raise DagJSONError(f"dag-json has no {name}")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise DagJSONError("duplicate map key in dag-json")
    return value


def decode(raw: bytes | str) -> Any:
    """The IPLD value (links as CID, bytes as bytes) that dag-json text describes."""
    if len(raw) > MAX_INPUT_SIZE:
        raise DagJSONError(f"dag-json input of {len(raw)} bytes exceeds {MAX_INPUT_SIZE}")
    try:
        parsed = json.loads(raw, parse_constant=_no_constants, object_pairs_hook=_pairs)
    except DagJSONError:
        raise
    except RecursionError:
        raise DagJSONError(f"dag-json nested deeper than {MAX_DEPTH}") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, an integer of > 4300 digits
        raise DagJSONError(f"input is not JSON: {exc}") from None
    return _from_json(parsed, 0)


def _from_json(value: Any, depth: int) -> Any:
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        raise DagJSONError(f"dag-json nested deeper than {MAX_DEPTH}")
    if isinstance(value, list):
        return [_from_json(item, depth + 1) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"/"}:
        inner = value["/"]
        if isinstance(inner, str):
            return CID.parse(inner)
        if isinstance(inner, dict) and set(inner) == {"bytes"}:
            return _bytes(inner["bytes"])
    return {key: _from_json(item, depth + 1) for key, item in value.items()}


def _bytes(text: Any) -> bytes:
    if not isinstance(text, str):
        raise DagJSONError('dag-json bytes must be {"/": {"bytes": "<base64>"}}')
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise DagJSONError(f"dag-json bytes are not base64: {text[:40]!r}") from None


def to_json(value: Any) -> Any:
    """The JSON-ready form of an IPLD value: links and bytes in their dag-json objects."""
    if isinstance(value, CID):
        return {"/": str(value)}
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode().rstrip("=")}}
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value


def encode(value: Any) -> str:
    """dag-json text for a decoded dag-cbor value, map keys sorted bytewise."""
    return json.dumps(to_json(value), sort_keys=True)
