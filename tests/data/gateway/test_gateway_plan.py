"""The gateway's pure planning: routing (path and subdomain), content negotiation, Range
parsing and multipart framing, content sniffing. The specs' own examples where they give them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blockmesh.data.cid import CID
from blockmesh.data.gateway import sniff
from blockmesh.data.gateway.errors import BadRequest, NotAcceptable, RangeNotSatisfiable
from blockmesh.data.gateway.ranges import ByteRange, multipart, parse_range
from blockmesh.data.gateway.request import (
    Redirect,
    Routed,
    negotiate,
    parse_entity_bytes,
    resolve_entity_bytes,
    route,
)

SPEC_V0 = "QmbWqxBEKC3P8tqsKc98xmWNzrzDtRLMiMPL8wBuTGsMnR"
SPEC_V1 = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def test_subdomain_spec_example_redirects_v0_to_base32_v1():
    # subdomain-gateway spec: dweb.link/ipfs/Qmb… -> https://bafybeigdyrz….ipfs.dweb.link/
    moved = route(f"/ipfs/{SPEC_V0}", "dweb.link", ("dweb.link",), "https")
    assert moved == Redirect(f"https://{SPEC_V1}.ipfs.dweb.link/")
    moved = route(f"/ipfs/{SPEC_V0}/wiki/x?a=b", "localhost:8080")
    assert moved == Redirect(f"http://{SPEC_V1}.ipfs.localhost:8080/wiki/x?a=b")


def test_subdomain_host_gives_the_content_path():
    routed = route("/dir/file.txt?x=1", f"{SPEC_V1}.ipfs.localhost:8080")
    assert isinstance(routed, Routed) and routed.subdomain
    assert routed.path.cid == CID.parse(SPEC_V0).to_v1()
    assert routed.path.segments == ("dir", "file.txt") and routed.query == {"x": "1"}
    with pytest.raises(BadRequest):
        route("/", f"{'b' * 70}.ipfs.localhost")  # longer than a DNS label


def test_other_hosts_are_path_gateways():
    routed = route(f"/ipfs/{SPEC_V0}/a%20b/", "127.0.0.1:8080")
    assert isinstance(routed, Routed) and not routed.subdomain
    assert routed.path.segments == ("a b",) and routed.path.trailing_slash
    assert routed.path.text(SPEC_V0) == f"/ipfs/{SPEC_V0}/a%20b/"
    for bad in (f"/ipfs/{SPEC_V0}/..", f"/ipfs/{SPEC_V0}/%2e%2e", f"/ipfs/{SPEC_V0}/a%2Fb",
                "/ipfs/Qmnope", "relative"):
        with pytest.raises(BadRequest):
            route(bad, "127.0.0.1")


def test_format_wins_over_accept_and_q_values_order_the_rest():
    assert negotiate({"format": "raw"}, "application/vnd.ipld.car").kind == "raw"
    chosen = negotiate({}, "application/vnd.ipld.car;q=0.4, application/vnd.ipld.raw;q=0.9")
    assert chosen.kind == "raw" and chosen.from_accept
    assert negotiate({}, "text/html,*/*;q=0.8").kind == "deserialized"
    assert negotiate({}, None).kind == "deserialized"


def test_car_parameters_from_query_then_accept():
    car = negotiate({"format": "car", "car-dups": "y", "dag-scope": "entity"}, None).car
    assert car is not None and car.dups and car.scope == "entity"
    assert car.content_type() == "application/vnd.ipld.car; version=1; order=dfs; dups=y"
    # order=unk is answered in dfs, which it allows; the response says dfs
    car = negotiate({}, "application/vnd.ipld.car; version=1; order=unk; dups=n").car
    assert car is not None and car.order == "dfs" and not car.dups
    with pytest.raises(NotAcceptable):
        negotiate({}, "application/vnd.ipld.car; order=random")
    with pytest.raises(BadRequest):
        negotiate({"format": "car", "dag-scope": "most"}, None)


def test_entity_bytes_follow_the_spec_examples():
    size = 10_000
    assert resolve_entity_bytes(parse_entity_bytes("0:*"), size) == (0, size)
    assert resolve_entity_bytes(parse_entity_bytes("-1024:*"), size) == (size - 1024, size)
    assert resolve_entity_bytes(parse_entity_bytes("499:-1000"), size) == (499, size - 999)
    assert resolve_entity_bytes(parse_entity_bytes("0:99"), size) == (0, 100)
    assert resolve_entity_bytes(parse_entity_bytes("20000:*"), size) is None
    for bad in ("", "1", "a:b", "5:2"):
        with pytest.raises(BadRequest):
            parse_entity_bytes(bad)


def test_range_parsing():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9,20-29", 100) == [ByteRange(0, 10), ByteRange(20, 30)]
    assert parse_range("bytes=-10", 100) == [ByteRange(90, 100)]
    assert parse_range("bytes=90-", 100) == [ByteRange(90, 100)]
    assert parse_range("bytes=0-99,0-99", 100) is None  # more than the entity: send it whole
    assert parse_range("bytes=200-300, 5-6", 100) == [ByteRange(5, 7)]
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range("bytes=200-300", 100)
    assert info.value.headers == (("content-range", "bytes */100"),)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + ",".join(["0-0"] * 40), 100)


@given(st.integers(1, 5000), st.lists(st.tuples(st.integers(0, 6000), st.integers(0, 6000)),
                                      min_size=1, max_size=5))
def test_parsed_ranges_lie_inside_the_entity(size, pairs):
    header = "bytes=" + ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in pairs)
    try:
        got = parse_range(header, size)
    except RangeNotSatisfiable:
        assert all(min(a, b) >= size for a, b in pairs)
        return
    for r in got or []:
        assert 0 <= r.start < r.stop <= size


def test_multipart_length_is_exact():
    parts = multipart([ByteRange(0, 10), ByteRange(50, 60)], 100, "text/plain", "b0undary")
    body = parts.heads[0] + b"x" * 10 + parts.heads[1] + b"y" * 10 + parts.tail
    assert len(body) == parts.length
    assert body.startswith(b"--b0undary\r\nContent-Type: text/plain\r\n"
                           b"Content-Range: bytes 0-9/100\r\n\r\n")
    assert body.endswith(b"\r\n--b0undary--\r\n")


@pytest.mark.parametrize(("head", "expected"), [
    (b"  <!DOCTYPE html><html>", "text/html; charset=utf-8"),
    (b"<HTML><body>", "text/html; charset=utf-8"),
    (b"<?xml version='1.0'?><note/>", "text/xml; charset=utf-8"),
    (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
    (b"%PDF-1.7", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    (b"\xff\xd8\xff\xe0", "image/jpeg"),
    (b"GIF89a....", "image/gif"),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
    (b"\x1f\x8b\x08\x00", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x00asm\x01\x00\x00\x00", "application/wasm"),
    (b"\xef\xbb\xbfhello", "text/plain; charset=utf-8"),
    (b"plain words\n", "text/plain; charset=utf-8"),
    (b"\x00\x01\x02binary", "application/octet-stream"),
])
def test_sniffing_follows_the_mime_sniffing_tables(head, expected):
    assert sniff.detect(head) == expected


def test_extension_comes_first():
    assert sniff.content_type("a.html", b"\x00\x01") == "text/html; charset=utf-8"
    assert sniff.content_type("song.mp3", b"") == "audio/mpeg"
    assert sniff.content_type("notes.txt", b"\x00") == "text/plain; charset=utf-8"
    assert sniff.content_type("archive.unknownext", b"%PDF-") == "application/pdf"
    assert sniff.content_type(None, b"hi") == "text/plain; charset=utf-8"
