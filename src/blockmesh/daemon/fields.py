"""The fields of an API request body, checked: every route reads its arguments through these,
so a wrong type or an absurd value is a one-line 400 whichever way the request came (over HTTP
or in-process from the CLI)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from blockmesh.daemon.http import HttpError
from blockmesh.data.cid import CID

MAX_TEXT = 4096
MAX_LIST = 1024


def text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise HttpError(400, f"field {key!r} must be a non-empty string")
    return value


def required_text(body: dict[str, Any], key: str) -> str:
    value = text(body, key)
    assert value is not None
    return value


def cid(body: dict[str, Any], key: str = "cid") -> CID:
    return CID.parse(required_text(body, key))


def cids(body: dict[str, Any], key: str = "cids") -> list[CID]:
    """A list of CIDs, all parsed before a route acts on any (one bad CID changes nothing)."""
    value = body.get(key)
    if (not isinstance(value, list) or not 0 < len(value) <= MAX_LIST
            or not all(isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in value)):
        raise HttpError(400, f"field {key!r} must be a list of 1 to {MAX_LIST} CIDs")
    return [CID.parse(v) for v in value]


def flag(body: dict[str, Any], key: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise HttpError(400, f"field {key!r} must be true or false")
    return value


def optional_flag(body: dict[str, Any], key: str) -> bool | None:
    return None if body.get(key) is None else flag(body, key)


def optional_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise HttpError(400, f"field {key!r} must be an integer")
    return value


def choice(body: dict[str, Any], key: str, options: tuple[str, ...]) -> str:
    value = body.get(key, options[0])
    if value not in options:
        raise HttpError(400, f"field {key!r} must be one of {', '.join(options)}")
    return str(value)


def absolute(body: dict[str, Any], key: str) -> Path:
    path = Path(required_text(body, key))
    if not path.is_absolute():
        raise HttpError(400, f"field {key!r} must be an absolute path (the daemon has its own "
                             "working directory)")
    return path


def absolute_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if (not isinstance(value, list) or not 0 < len(value) <= MAX_LIST
            or not all(isinstance(p, str) and 0 < len(p) <= MAX_TEXT and os.path.isabs(p)
                       for p in value)):
        raise HttpError(400, f"{key} must be a list of 1 to {MAX_LIST} absolute paths")
    return value
