"""Turning an HTTP request into what to serve: pure functions, no I/O.

Three steps, each a function the tests call directly:

- `route`: the request target and `Host` header give either a content path (CID + path
  remainder) or a redirect. Path requests to a subdomain gateway host (kubo's default is
  `localhost`) are redirected to `{cidv1-base32}.ipfs.{host}`, as the subdomain gateway spec
  asks; requests to any other host (127.0.0.1 included) are served as a path gateway.
- `negotiate`: `?format=` first, then `Accept` (with q-values), choose a deserialized, raw block
  or CAR response, with the CAR parameters resolved to what will actually be sent.
- the CAR `entity-bytes` and `dag-scope` parameters, parsed here, are applied by `car.py`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field

from blockmesh.data.cid import CID
from blockmesh.data.gateway.errors import BadRequest, NotAcceptable, PathNotImplemented
from blockmesh.errors import InvalidCID

MAX_TARGET = 8 << 10
MAX_SEGMENTS = 256
DNS_LABEL_MAX = 63
RAW = "application/vnd.ipld.raw"
CAR = "application/vnd.ipld.car"
DAG_CBOR = "application/vnd.ipld.dag-cbor"
# Response formats the specs define that this gateway does not produce: asking for one alone
# is a 406 that names it, not a silent fallback to something else.
UNSUPPORTED_FORMATS = {
    "tar": "application/x-tar", "dag-json": "application/vnd.ipld.dag-json",
    "json": "application/json", "cbor": "application/cbor",
    "ipns-record": "application/vnd.ipfs.ipns-record",
}
FORMATS = {"raw": RAW, "car": CAR, "dag-cbor": DAG_CBOR, **UNSUPPORTED_FORMATS}
_BY_MEDIA = {media: name for name, media in FORMATS.items()}


@dataclass(frozen=True)
class ContentPath:
    """`/ipfs/{cid}/{segments…}`; `trailing_slash` matters for directories (301 without it)."""

    cid: CID
    segments: tuple[str, ...] = ()
    trailing_slash: bool = False

    def text(self, cid_text: str | None = None) -> str:
        """The content path as X-Ipfs-Path shows it (the CID as the client wrote it)."""
        parts = [cid_text or str(self.cid), *self.segments]
        path = "/ipfs/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)
        return path + "/" if self.trailing_slash else path


@dataclass(frozen=True)
class Redirect:
    location: str


@dataclass(frozen=True)
class Routed:
    path: ContentPath
    cid_text: str
    query: dict[str, str] = field(default_factory=dict)
    subdomain: bool = False  # served from {cid}.ipfs.{host}: the path starts at the root


def split_target(target: str) -> tuple[str, dict[str, str], str]:
    """(path, query parameters (last one wins), raw query string) of an origin-form target."""
    if len(target) > MAX_TARGET:
        raise BadRequest(f"request target longer than {MAX_TARGET} bytes")
    if not target.startswith("/"):
        raise BadRequest("request target must be an absolute path")
    path, _, raw_query = target.partition("?")
    try:
        query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True,
                                            max_num_fields=64, errors="strict"))
    except ValueError as exc:
        raise BadRequest(f"bad query string: {exc}") from None
    return path, query, raw_query


def _segments(path: str) -> tuple[tuple[str, ...], bool]:
    parts = path.split("/")
    trailing = len(parts) > 1 and parts[-1] == ""
    try:
        decoded = tuple(urllib.parse.unquote(p, errors="strict") for p in parts if p)
    except UnicodeDecodeError:
        raise BadRequest("path is not UTF-8 after percent-decoding") from None
    if len(decoded) > MAX_SEGMENTS:
        raise BadRequest(f"path has more than {MAX_SEGMENTS} segments")
    for segment in decoded:
        if segment in (".", "..") or "/" in segment or "\0" in segment:
            raise BadRequest(f"path segment {segment!r} is not allowed")
    return decoded, trailing


def parse_cid(text: str) -> CID:
    try:
        return CID.parse(text)
    except InvalidCID as exc:
        raise BadRequest(f"invalid CID {text!r}: {exc}") from None


def canonical_label(cid: CID) -> str:
    """The case-insensitive form a subdomain needs: CIDv1 in base32 (v0 becomes v1 dag-pb)."""
    return cid.to_v1().encode("base32")


def route(target: str, host: str | None, subdomain_hosts: tuple[str, ...] = ("localhost",),
          scheme: str = "http") -> Routed | Redirect:
    """Where a request points; BadRequest for what names no content, 501 for /ipns/."""
    path, query, raw_query = split_target(target)
    hostname, port = _split_host(host or "")
    suffix = f"?{raw_query}" if raw_query else ""
    for gateway_host in subdomain_hosts:
        label_end = f".ipfs.{gateway_host}"
        if hostname.endswith(label_end):
            label = hostname[: -len(label_end)]
            if not label or "." in label:
                raise BadRequest(f"host {hostname!r} has no single CID label before {label_end}")
            if len(label) > DNS_LABEL_MAX:
                raise BadRequest(f"CID label longer than {DNS_LABEL_MAX} characters")
            cid = parse_cid(label)
            canonical = canonical_label(cid)
            if label != canonical:
                return Redirect(f"{scheme}://{canonical}{label_end}{port}{path}{suffix}")
            segments, trailing = _segments(path)
            return Routed(ContentPath(cid, segments, trailing), label, query, subdomain=True)
        if hostname == gateway_host and path.startswith("/ipfs/"):
            cid_text, _, rest = path[len("/ipfs/"):].partition("/")
            label = canonical_label(parse_cid(urllib.parse.unquote(cid_text)))
            if len(label) > DNS_LABEL_MAX:
                raise BadRequest(f"CID {cid_text} is longer than a DNS label in base32")
            return Redirect(f"{scheme}://{label}.ipfs.{gateway_host}{port}/{rest}{suffix}")
    segments, trailing = _segments(path)
    if not segments or segments[0] != "ipfs":
        if segments and segments[0] == "ipns":
            raise PathNotImplemented("/ipns/ paths need IPNS, which blockmesh does not "
                                     "implement yet")
        raise BadRequest("only /ipfs/{cid}[/path] is served here")
    if len(segments) < 2:
        raise BadRequest("missing CID after /ipfs/")
    return Routed(ContentPath(parse_cid(segments[1]), segments[2:], trailing), segments[1],
                  query)


def _split_host(host: str) -> tuple[str, str]:
    """(lower-case host name, ':port' or '') of a Host header."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1], host[end + 1:]
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, f":{port}"
    return host, ""


# -- content negotiation ------------------------------------------------------------------------
@dataclass(frozen=True)
class CarParams:
    version: int = 1
    order: str = "dfs"
    dups: bool = False
    scope: str = "all"
    entity_bytes: tuple[int, int | None] | None = None

    def content_type(self) -> str:
        dups = "y" if self.dups else "n"
        return f"{CAR}; version={self.version}; order={self.order}; dups={dups}"

    def etag_key(self) -> str:
        """What distinguishes one CAR response of a root from another (for the ETag)."""
        entity = ""
        if self.entity_bytes is not None:
            first, last = self.entity_bytes
            entity = f"{first}:{'*' if last is None else last}"
        return f"v{self.version}.{self.order}.{'y' if self.dups else 'n'}.{self.scope}.{entity}"


@dataclass(frozen=True)
class Negotiated:
    """`kind` is "deserialized", "raw", "car" or "dag-cbor"; `from_accept` is True when only
    the Accept header chose it (the response then names the URL with ?format= in
    Content-Location, so caches keep the variants apart)."""

    kind: str
    car: CarParams | None = None
    from_accept: bool = False


@dataclass(frozen=True)
class _MediaRange:
    media: str
    params: dict[str, str]
    q: float


def parse_accept(value: str) -> list[_MediaRange]:
    """Media ranges by preference: q-value, then order of appearance (RFC 9110 12.5.1)."""
    ranges = []
    for index, item in enumerate(value.split(",")[:64]):
        media, *raw_params = (part.strip() for part in item.split(";"))
        if not media:
            continue
        params: dict[str, str] = {}
        for raw in raw_params:
            key, _, val = raw.partition("=")
            params[key.strip().lower()] = val.strip().strip('"')
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            ranges.append((-q, index, _MediaRange(media.lower(), params, q)))
    return [r for _, _, r in sorted(ranges, key=lambda t: (t[0], t[1]))]


def negotiate(query: dict[str, str], accept: str | None) -> Negotiated:
    fmt = query.get("format")
    if fmt is not None:
        if fmt not in FORMATS:
            raise BadRequest(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        if fmt in UNSUPPORTED_FORMATS:
            raise NotAcceptable(f"format={fmt} ({FORMATS[fmt]}) is not produced by this gateway")
        car = _car_params(query, {}) if fmt == "car" else None
        return Negotiated(fmt, car)
    refused = []
    for media_range in parse_accept(accept or ""):
        name = _BY_MEDIA.get(media_range.media)
        if name in ("raw", "dag-cbor"):
            return Negotiated(name, None, from_accept=True)
        if name == "car":
            try:
                return Negotiated("car", _car_params(query, media_range.params), from_accept=True)
            except NotAcceptable as exc:
                refused.append(str(exc))
                continue
        if name is not None:
            refused.append(f"{media_range.media} is not produced by this gateway")
            continue
        return Negotiated("deserialized")  # */*, text/html, anything a browser sends
    if refused:
        raise NotAcceptable("; ".join(refused))
    return Negotiated("deserialized")


def _car_params(query: dict[str, str], accept: dict[str, str]) -> CarParams:
    """CAR parameters: URL query first (car-version/car-order/car-dups), then Accept params."""
    version = query.get("car-version", accept.get("version", "1"))
    if version != "1":
        raise NotAcceptable(f"CAR version {version} is not produced (only version=1)")
    order = query.get("car-order", accept.get("order", "dfs")) or "dfs"
    if order not in ("dfs", "unk"):
        raise NotAcceptable(f"CAR order {order!r} is not produced (dfs, or unk answered as dfs)")
    dups = query.get("car-dups", accept.get("dups", "n")) or "n"
    if dups not in ("y", "n"):
        raise NotAcceptable(f"CAR dups={dups!r} is not defined (y or n)")
    scope = query.get("dag-scope", "all")
    if scope not in ("block", "entity", "all"):
        raise BadRequest(f"dag-scope must be block, entity or all, not {scope!r}")
    entity = None
    if "entity-bytes" in query:
        entity = parse_entity_bytes(query["entity-bytes"])
        scope = "entity"
    return CarParams(1, "dfs", dups == "y", scope, entity)


def parse_entity_bytes(value: str) -> tuple[int, int | None]:
    """`from:to`, inclusive; `to` may be `*`; either may be negative (from the end)."""
    start, sep, end = value.partition(":")
    try:
        if not sep:
            raise ValueError(value)
        first = int(start)
        last = None if end == "*" else int(end)
    except ValueError:
        raise BadRequest(f"entity-bytes must be from:to (integers, to may be *), got "
                         f"{value!r}") from None
    if last is not None and first >= 0 and 0 <= last < first:
        raise BadRequest(f"entity-bytes {value!r} ends before it starts")
    return first, last


def resolve_entity_bytes(spec: tuple[int, int | None], size: int) -> tuple[int, int] | None:
    """The half-open byte range [start, stop) `entity-bytes` selects in an entity of `size`
    bytes, clipped to it; None when nothing is selected (the response is then dag-scope=block)."""
    first, last = spec
    start = max(0, size + first if first < 0 else first)
    stop = size if last is None else min(size, (size + last if last < 0 else last) + 1)
    return (start, stop) if start < stop else None
