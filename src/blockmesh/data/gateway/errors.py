"""Gateway failures, each carrying the HTTP status the path and trustless gateway specs give it.

The HTTP adapter turns any of these into a plain-text response with that status; everything else
that goes wrong is a 500 and is logged.
"""

from __future__ import annotations

from blockmesh.errors import BlockmeshError


class GatewayError(BlockmeshError):
    """A request the gateway answers with `status` and this one-line message."""

    status = 500

    def __init__(self, message: str, *, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.headers = headers


class BadRequest(GatewayError):
    """400: the content path, CID or a parameter is malformed."""

    status = 400


class ContentNotFound(GatewayError):
    """404: the path does not exist in the DAG, or a non-recursive gateway lacks the root."""

    status = 404


class NotAcceptable(GatewayError):
    """406: no response format the client accepts can be produced for this content."""

    status = 406


class NotCached(GatewayError):
    """412: `Cache-Control: only-if-cached` and the root block is not in the local repo."""

    status = 412


class RangeNotSatisfiable(GatewayError):
    """416: the Range header is malformed or selects no byte of the entity."""

    status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, headers=(("content-range", f"bytes */{size}"),))
        self.size = size


class PathNotImplemented(GatewayError):
    """501: a path reaches into IPLD data other than through links (the spec leaves it open)."""

    status = 501


class GatewayTimeout(GatewayError):
    """504: a block needed for the response did not arrive over Bitswap in time."""

    status = 504

    def __init__(self, message: str, retry_after: int = 30) -> None:
        super().__init__(message, headers=(("retry-after", str(retry_after)),))
