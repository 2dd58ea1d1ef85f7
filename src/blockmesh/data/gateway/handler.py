"""The gateway engine: one HTTP request in, one planned response out (status, headers and a
lazy body), with no socket in sight. `server.py` is the HTTP/1.1 adapter around it.

What each response carries follows the path and trustless gateway specs:

- every /ipfs/ response: `Cache-Control: public, max-age=29030400, immutable`, `X-Ipfs-Path`
  (the content path as requested) and `X-Ipfs-Roots` (the CID of each logical path segment);
- `ETag`: `"<cid>"` for file bytes, `"<cid>.raw"` for a block, `"<cid>.car.<hash of the CAR
  parameters>"` for a CAR, `"DirIndex-<template>_CID-<cid>"` for a generated listing; a match
  in `If-None-Match` gives 304 with no body;
- raw and CAR responses: `Content-Disposition: attachment` with `<cid>.bin` / `<cid>.car`,
  `X-Content-Type-Options: nosniff`, and `Content-Location` with `?format=` when only the
  `Accept` header chose the format.

Errors are GatewayError subclasses (status in the class); the spec's 404 covers a path that a
DAG does not contain and a block a non-recursive gateway lacks.
"""

from __future__ import annotations

import hashlib
import logging
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from blockmesh.data.cid import CID, HashCode
from blockmesh.data.dag import car as carfile
from blockmesh.data.dag.unixfs import DataType
from blockmesh.data.gateway import listing, ranges, sniff, walk
from blockmesh.data.gateway.blocks import DEFAULT_READ_AHEAD, RequestBlocks
from blockmesh.data.gateway.errors import (
    BadRequest,
    ContentNotFound,
    GatewayError,
    NotAcceptable,
    NotCached,
)
from blockmesh.data.gateway.request import (
    DAG_CBOR,
    RAW,
    CarParams,
    Negotiated,
    Redirect,
    Routed,
    negotiate,
    resolve_entity_bytes,
    route,
)
from blockmesh.data.store.blockstore import Blockstore
from blockmesh.errors import BlockmeshError, DecodeError, UnsupportedError

if TYPE_CHECKING:
    from blockmesh.data.node import Node

IMMUTABLE = "public, max-age=29030400, immutable"
DEFAULT_TIMEOUT = 30.0
MAX_LISTING = 100_000

logger = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes] | None = None
    length: int | None = None  # Content-Length when known; None streams chunked
    close: Callable[[], None] = lambda: None  # releases the request's Bitswap session

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def error_response(exc: GatewayError) -> Response:
    body = (" ".join(str(exc).split()) + "\n").encode()
    return Response(exc.status, [("content-type", "text/plain; charset=utf-8"),
                                 *exc.headers], _once(body), len(body))


class Gateway:
    """Serves /ipfs/ content from `store`, fetching what is missing over Bitswap through
    `node` (None: a non-recursive gateway, missing content is 404)."""

    def __init__(self, store: Blockstore, node: Node | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, read_ahead: int = DEFAULT_READ_AHEAD,
                 subdomain_hosts: tuple[str, ...] = ("localhost",)) -> None:
        self.store = store
        self.node = node
        self.timeout = timeout
        self.read_ahead = read_ahead
        self.subdomain_hosts = subdomain_hosts

    async def respond(self, request: Request) -> Response:
        blocks = RequestBlocks(self.store, self.node, self.timeout,
                               read_ahead=self.read_ahead)
        try:
            response = await self._respond(request, blocks)
        except GatewayError as exc:
            blocks.close()
            return error_response(exc)
        except (DecodeError, UnsupportedError) as exc:
            blocks.close()
            return error_response(ContentNotFound(f"cannot traverse the DAG: {exc}"))
        except BlockmeshError as exc:  # e.g. a block collected meanwhile, a Bitswap failure
            blocks.close()
            logger.warning("gateway request for %s failed: %s", request.target, exc)
            return error_response(GatewayError(str(exc)))
        except BaseException:
            blocks.close()
            raise
        if response.body is None:
            blocks.close()
        else:
            response.close = blocks.close
        if request.method == "HEAD" and response.body is not None:
            response.body = None
            blocks.close()
        return response

    async def _respond(self, request: Request, blocks: RequestBlocks) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise _MethodNotAllowed(f"{request.method} is not served; use GET or HEAD",
                                    headers=(("allow", "GET, HEAD"),))
        routed = route(request.target, request.header("host"), self.subdomain_hosts,
                       "https" if request.header("x-forwarded-proto") == "https" else "http")
        if isinstance(routed, Redirect):
            return Response(301, [("location", routed.location)])
        path = routed.path
        if (request.header("service-worker") == "script" and not path.segments
                and not path.trailing_slash):
            raise BadRequest("a service worker may only register below /ipfs/{cid}/")
        chosen = negotiate(routed.query, request.header("accept"))
        if ("only-if-cached" in (request.header("cache-control") or "")
                and not blocks.has_local(path.cid)):
            raise NotCached(f"{path.cid} is not in this gateway's repo")
        target = await walk.resolve(blocks, path.cid, path.segments)
        common = [("cache-control", IMMUTABLE),
                  ("x-ipfs-path", path.text(routed.cid_text)),
                  ("x-ipfs-roots", ",".join(str(c) for c in target.roots))]
        if chosen.kind == "raw":
            return self._raw(request, routed, chosen, target, common)
        if chosen.kind == "car":
            assert chosen.car is not None
            return self._car(request, routed, chosen, chosen.car, target, common, blocks)
        if chosen.kind == "dag-cbor":
            if target.kind != "dag-cbor":
                raise NotAcceptable(f"{target.cid} is {target.cid.codec_name}; converting it "
                                    "to dag-cbor is not implemented")
            return self._block(request, target, DAG_CBOR, f'"{target.cid}.dag-cbor"', common,
                               _content_location(request, chosen, "dag-cbor"))
        return await self._deserialized(request, routed, target, common, blocks)

    # -- trustless responses ---------------------------------------------------------------------
    def _raw(self, request: Request, routed: Routed, chosen: Negotiated, target: walk.Resolved,
             common: list[tuple[str, str]]) -> Response:
        name = routed.query.get("filename") or f"{target.cid}.bin"
        extra = [("content-disposition", _disposition("attachment", name)),
                 ("x-content-type-options", "nosniff"),
                 *_content_location(request, chosen, "raw")]
        return self._block(request, target, RAW, f'"{target.cid}.raw"', common, extra)

    def _block(self, request: Request, target: walk.Resolved, content_type: str, etag: str,
               common: list[tuple[str, str]], extra: list[tuple[str, str]]) -> Response:
        headers = [("etag", etag), *common]
        if _matches(request.header("if-none-match"), etag):
            return Response(304, headers)
        headers += [("content-type", content_type), *extra]
        return Response(200, headers, _once(target.block), len(target.block))

    def _car(self, request: Request, routed: Routed, chosen: Negotiated, params: CarParams,
             target: walk.Resolved, common: list[tuple[str, str]],
             blocks: RequestBlocks) -> Response:
        key = hashlib.sha256(f"{'/'.join(routed.path.segments)}|{params.etag_key()}".encode())
        etag = f'"{routed.path.cid}.car.{key.hexdigest()[:16]}"'
        headers = [("etag", etag), *common]
        if _matches(request.header("if-none-match"), etag):
            return Response(304, headers)
        name = routed.query.get("filename") or f"{routed.path.cid}.car"
        headers += [("content-type", params.content_type()),
                    ("content-disposition", _disposition("attachment", name)),
                    ("x-content-type-options", "nosniff"), ("accept-ranges", "none"),
                    *_content_location(request, chosen, "car")]
        return Response(200, headers, _car_body(blocks, routed.path.cid, target, params))

    # -- deserialized responses ------------------------------------------------------------------
    async def _deserialized(self, request: Request, routed: Routed, target: walk.Resolved,
                            common: list[tuple[str, str]], blocks: RequestBlocks) -> Response:
        if target.kind == "directory":
            return await self._directory(request, routed, target, common, blocks)
        if target.kind == "dag-cbor":
            return self._block(request, target, DAG_CBOR, f'"{target.cid}"', common, [])
        if target.kind == "symlink":
            assert target.unixfs is not None
            body = target.unixfs.data or b""
            return Response(200, [("etag", f'"{target.cid}"'), *common,
                                  ("content-type", "inode/symlink")], _once(body), len(body))
        if target.kind not in ("file", "raw"):
            raise NotAcceptable(f"{target.cid} ({target.cid.codec_name}) has no deserialized "
                                "form here; ask for ?format=raw or ?format=car")
        return await self._file(request, routed, target, common, blocks)

    async def _directory(self, request: Request, routed: Routed, target: walk.Resolved,
                         common: list[tuple[str, str]], blocks: RequestBlocks) -> Response:
        if not routed.path.trailing_slash:
            raw_path, _, raw_query = request.target.partition("?")
            location = raw_path + "/" + (f"?{raw_query}" if raw_query else "")
            return Response(301, [("location", location), *common])
        index_path: list[CID] = []
        index = await walk._dir_lookup(blocks, target, "index.html", index_path)
        if index is not None:
            page = await walk.load(blocks, index)
            if page.kind in ("file", "raw"):
                page.name = "index.html"
                return await self._file(request, routed, page, common, blocks)
        etag = listing.etag(target.cid)
        headers = [("etag", etag), *common]
        if _matches(request.header("if-none-match"), etag):
            return Response(304, headers)
        items = []
        async for entry in walk.entries(blocks, target):
            items.append(entry)
            if len(items) > MAX_LISTING:
                raise GatewayError(f"directory has more than {MAX_LISTING} entries; fetch it "
                                   "as ?format=car")
        raw_path = request.target.partition("?")[0]
        page_bytes = listing.render(routed.path.text(routed.cid_text), target.cid, items,
                                    raw_path)
        headers.append(("content-type", "text/html; charset=utf-8"))
        return Response(200, headers, _once(page_bytes), len(page_bytes))

    async def _file(self, request: Request, routed: Routed, target: walk.Resolved,
                    common: list[tuple[str, str]], blocks: RequestBlocks) -> Response:
        etag = f'"{target.cid}"'
        headers = [("etag", etag), *common]
        if _matches(request.header("if-none-match"), etag):
            return Response(304, headers)
        size = target.size
        filename = routed.query.get("filename")
        content_type = sniff.by_extension(filename or target.name or "")
        if content_type is None:
            head = b"".join([piece async for piece in
                             walk.file_range(blocks, target, 0, min(size, sniff.SNIFF_LEN))])
            content_type = sniff.detect(head)
        headers += [("content-type", content_type), ("accept-ranges", "bytes")]
        download = routed.query.get("download")
        if filename or download == "true":
            kind = "attachment" if download == "true" else "inline"
            headers.append(("content-disposition", _disposition(kind, filename)))
        selected = ranges.parse_range(request.header("range"), size)
        if selected is None:
            return Response(200, headers, walk.file_range(blocks, target, 0, size), size)
        if len(selected) == 1:
            only = selected[0]
            headers.append(("content-range", only.content_range(size)))
            return Response(206, headers, walk.file_range(blocks, target, only.start, only.stop),
                            only.length)
        parts = ranges.multipart(selected, size, content_type)
        headers = [(k, v) for k, v in headers if k != "content-type"]
        headers.append(("content-type", parts.content_type))
        return Response(206, headers, _multipart_body(blocks, target, selected, parts),
                        parts.length)


class _MethodNotAllowed(GatewayError):
    status = 405


async def _multipart_body(blocks: RequestBlocks, target: walk.Resolved,
                          selected: list[ranges.ByteRange],
                          parts: ranges.Multipart) -> AsyncIterator[bytes]:
    for head, part in zip(parts.heads, selected, strict=True):
        yield head
        async for piece in walk.file_range(blocks, target, part.start, part.stop):
            yield piece
    yield parts.tail


async def _car_body(blocks: RequestBlocks, root: CID, target: walk.Resolved,
                    params: CarParams) -> AsyncIterator[bytes]:
    """The CARv1 stream: header, the blocks that prove the path, then the terminal entity as
    dag-scope and entity-bytes select it, depth-first; identity blocks are never sent."""
    emitted: set[bytes] = set()

    def piece(cid: CID, block: bytes) -> bytes | None:
        if cid.hash_code == HashCode.IDENTITY:
            return None
        if not params.dups:
            if cid.multihash in emitted:
                return None
            emitted.add(cid.multihash)
        return _section(cid, block)

    yield next(iter(carfile.car_pieces([root], [])))
    for cid in target.path_blocks[:-1]:
        data = piece(cid, await blocks.get(cid))
        if data is not None:
            yield data
    data = piece(target.cid, target.block)
    if data is not None:
        yield data
    if params.scope == "block":
        return
    if params.scope == "entity":
        async for cid, block in _entity_blocks(blocks, target, params):
            data = piece(cid, block)
            if data is not None:
                yield data
        return
    # dag_blocks skips (and does not descend into) what `emitted` holds, and adds to it
    async for cid, block in walk.dag_blocks(blocks, target.cid, target.block,
                                            None if params.dups else emitted):
        yield _section(cid, block)


async def _entity_blocks(blocks: RequestBlocks, target: walk.Resolved,
                         params: CarParams) -> AsyncIterator[tuple[CID, bytes]]:
    if target.kind == "file":
        size = target.size
        span: tuple[int, int] | None = (0, size)
        if params.entity_bytes is not None:
            span = resolve_entity_bytes(params.entity_bytes, size)
        if span is not None:
            async for item in walk.file_blocks(blocks, target, *span):
                yield item
    elif (target.kind == "directory" and target.unixfs is not None
          and target.unixfs.type == DataType.HAMT_SHARD):
        async for cid in walk.shard_blocks(blocks, target):
            yield cid, await blocks.get(cid)


def _section(cid: CID, block: bytes) -> bytes:
    return b"".join(carfile.car_pieces([], [(cid, block)]))[_EMPTY_HEADER_LEN:]


_EMPTY_HEADER_LEN = len(next(iter(carfile.car_pieces([], []))))


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2), as If-None-Match uses; `*` matches anything."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def _disposition(kind: str, filename: str | None) -> str:
    """`inline`/`attachment` with an ASCII filename and, when it is not ASCII, the RFC 8187
    UTF-8 form beside it (what the path gateway spec asks)."""
    if not filename:
        return kind
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    value = f'{kind}; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    return value


def _content_location(request: Request, chosen: Negotiated,
                      fmt: str) -> list[tuple[str, str]]:
    if not chosen.from_accept:
        return []
    raw_path, _, raw_query = request.target.partition("?")
    joined = f"{raw_query}&format={fmt}" if raw_query else f"format={fmt}"
    return [("content-location", f"{raw_path}?{joined}")]

