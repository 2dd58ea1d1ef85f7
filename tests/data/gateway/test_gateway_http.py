"""The gateway over real HTTP on 127.0.0.1: every status and header the path and trustless
gateway specs define for what blockmesh serves, against content the fixtures build."""

from __future__ import annotations

import io
import re

import h11
import trio
from gateway_fixtures import BIG, exchange, request
from prometheus_client import CollectorRegistry

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagpb, exporter, unixfs
from blockmesh.data.dag.car import CARReader
from blockmesh.data.dag.importer import ImportOptions, import_bytes
from blockmesh.data.dag.unixfs import DataType
from blockmesh.data.gateway.handler import Gateway
from blockmesh.data.gateway.server import GatewayServer
from blockmesh.data.store.memory import MemoryBlockstore

IMMUTABLE = "public, max-age=29030400, immutable"


# -- files -------------------------------------------------------------------------------------
async def test_file_get_carries_the_spec_headers(served, content):
    reply = await request(served.port, f"/ipfs/{content.hello}")
    assert reply.status == 200 and reply.body == b"hello world\n"
    assert reply["etag"] == f'"{content.hello}"'
    assert reply["cache-control"] == IMMUTABLE
    assert reply["x-ipfs-path"] == f"/ipfs/{content.hello}"
    assert reply["x-ipfs-roots"] == str(content.hello)
    assert reply["content-type"] == "text/plain; charset=utf-8"
    assert reply["content-length"] == "12" and reply["accept-ranges"] == "bytes"


async def test_head_has_the_headers_of_get_and_no_body(served, content):
    get = await request(served.port, f"/ipfs/{content.big}")
    head = await request(served.port, f"/ipfs/{content.big}", "HEAD")
    assert head.status == 200 and head.body == b""
    assert get.body == BIG
    for name in ("etag", "content-type", "content-length", "x-ipfs-roots", "cache-control"):
        assert head[name] == get[name], name
    assert head["content-length"] == str(len(BIG))


async def test_if_none_match_gives_304_without_a_body(served, content):
    etag = f'"{content.hello}"'
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        reply = await request(served.port, f"/ipfs/{content.hello}",
                              headers={"if-none-match": value})
        assert reply.status == 304 and reply.body == b"", value
        assert reply["etag"] == etag and reply["cache-control"] == IMMUTABLE
    miss = await request(served.port, f"/ipfs/{content.hello}",
                         headers={"if-none-match": '"something-else"'})
    assert miss.status == 200


async def test_single_ranges_across_blocks(served, content):
    size = len(BIG)
    for header, start, stop in (("bytes=1000-5000", 1000, 5001), ("bytes=-700", size - 700, size),
                                (f"bytes={size - 10}-", size - 10, size),
                                ("bytes=0-0", 0, 1), (f"bytes=5-{size * 2}", 5, size)):
        reply = await request(served.port, f"/ipfs/{content.big}", headers={"range": header})
        assert reply.status == 206, header
        assert reply.body == BIG[start:stop], header
        assert reply["content-range"] == f"bytes {start}-{stop - 1}/{size}"
        assert reply["content-length"] == str(stop - start)
        assert reply["etag"] == f'"{content.big}"'


async def test_multiple_ranges_are_multipart_byteranges(served, content):
    reply = await request(served.port, f"/ipfs/{content.big}",
                          headers={"range": "bytes=0-9, 2048-4096, -5"})
    assert reply.status == 206
    match = re.fullmatch(r"multipart/byteranges; boundary=(\w+)", reply["content-type"])
    assert match
    boundary = match.group(1).encode()
    assert int(reply["content-length"]) == len(reply.body)
    parts = reply.body.split(b"--" + boundary)
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    size = len(BIG)
    expected = [(0, 10), (2048, 4097), (size - 5, size)]
    for raw, (start, stop) in zip(parts[1:-1], expected, strict=True):
        head, _, body = raw.partition(b"\r\n\r\n")
        assert f"Content-Range: bytes {start}-{stop - 1}/{size}".encode() in head
        assert b"Content-Type: application/octet-stream" in head
        assert body.removesuffix(b"\r\n") == BIG[start:stop]


async def test_unsatisfiable_and_malformed_ranges_are_416(served, content):
    size = len(BIG)
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=9-3", "bytes=x-1",
                   "pages=1-2", "bytes=-0"):
        reply = await request(served.port, f"/ipfs/{content.big}", headers={"range": header})
        assert reply.status == 416, header
        assert reply["content-range"] == f"bytes */{size}"


async def test_content_type_by_extension_then_by_bytes(served, content):
    cases = {f"/ipfs/{content.site}/style.css": "text/css; charset=utf-8",
             f"/ipfs/{content.plain}/picture": "image/png",
             f"/ipfs/{content.plain}/noext": "text/plain; charset=utf-8",
             f"/ipfs/{content.plain}/nested/deeper/file.bin": "application/octet-stream",
             f"/ipfs/{content.hello}?filename=x.json": "application/json"}
    for target, expected in cases.items():
        reply = await request(served.port, target)
        assert reply.status == 200 and reply["content-type"] == expected, target


async def test_filename_and_download_set_content_disposition(served, content):
    name = "test%D1%82%D0%B5%D1%81%D1%82.txt"  # the spec's example: "testтест"
    reply = await request(served.port, f"/ipfs/{content.hello}?filename={name}")
    assert reply["content-disposition"] == (
        "inline; filename=\"test____.txt\"; filename*=UTF-8''test%D1%82%D0%B5%D1%81%D1%82.txt")
    reply = await request(served.port, f"/ipfs/{content.hello}?filename=a.txt&download=true")
    assert reply["content-disposition"] == 'attachment; filename="a.txt"'


# -- directories -------------------------------------------------------------------------------
async def test_directory_without_slash_redirects_and_index_html_is_served(served, content):
    reply = await request(served.port, f"/ipfs/{content.site}?x=1")
    assert reply.status == 301 and reply["location"] == f"/ipfs/{content.site}/?x=1"
    page = await request(served.port, f"/ipfs/{content.site}/")
    assert page.status == 200 and page.body == b"<!DOCTYPE html><p>welcome</p>\n"
    assert page["content-type"] == "text/html; charset=utf-8"
    sub = await request(served.port, f"/ipfs/{content.site}/sub")
    assert sub.status == 301 and sub["location"] == f"/ipfs/{content.site}/sub/"


async def test_directory_listing_escapes_names_and_has_its_own_etag(served, content):
    reply = await request(served.port, f"/ipfs/{content.plain}/")
    assert reply.status == 200 and reply["content-type"] == "text/html; charset=utf-8"
    assert re.fullmatch(rf'"DirIndex-[0-9a-f]+_CID-{content.plain}"', reply["etag"])
    page = reply.body.decode()
    assert "sp ace &amp; &lt;b&gt;.txt" in page and "<b>.txt" not in page
    assert f'href="/ipfs/{content.plain}/sp%20ace%20%26%20%3Cb%3E.txt"' in page
    for name in ("a.txt", "nested", "picture"):
        assert f">{name}</a>" in page
    again = await request(served.port, f"/ipfs/{content.plain}/",
                          headers={"if-none-match": reply["etag"]})
    assert again.status == 304


async def test_nested_path_roots_name_every_segment(served, content):
    reply = await request(served.port, f"/ipfs/{content.plain}/nested/deeper/file.bin")
    assert reply.status == 200 and reply.body == bytes(range(256))
    roots = [CID.parse(c) for c in reply["x-ipfs-roots"].split(",")]
    assert len(roots) == 4 and roots[0] == content.plain and roots[-1] == CID.parse(
        reply["etag"].strip('"'))
    assert reply["x-ipfs-path"] == f"/ipfs/{content.plain}/nested/deeper/file.bin"
    spaced = await request(served.port, f"/ipfs/{content.plain}/sp%20ace%20%26%20%3Cb%3E.txt")
    assert spaced.body == b"odd name\n"


async def test_paths_through_a_hamt_sharded_directory(served, content):
    reply = await request(served.port, f"/ipfs/{content.sharded}/{content.shard_name}")
    assert reply.status == 200 and reply.body == content.shard_value
    roots = reply["x-ipfs-roots"].split(",")
    assert len(roots) == 2 and roots[0] == str(content.sharded)  # shard nodes are no roots
    missing = await request(served.port, f"/ipfs/{content.sharded}/no-such-entry")
    assert missing.status == 404
    listing = await request(served.port, f"/ipfs/{content.sharded}/")
    assert listing.body.count(b"<tr><td>") == 1400


# -- trustless responses -----------------------------------------------------------------------
async def test_raw_block_by_format_and_by_accept(served, content):
    reply = await request(served.port, f"/ipfs/{content.big}?format=raw")
    block = content.store.get(content.big)
    assert reply.status == 200 and reply.body == block
    content.big.verify(reply.body)
    assert reply["content-type"] == "application/vnd.ipld.raw"
    assert reply["etag"] == f'"{content.big}.raw"'
    assert reply["content-disposition"] == f'attachment; filename="{content.big}.bin"'
    assert reply["x-content-type-options"] == "nosniff"
    assert "content-location" not in reply.headers
    by_accept = await request(served.port, f"/ipfs/{content.big}",
                              headers={"accept": "application/vnd.ipld.raw"})
    assert by_accept.body == block
    assert by_accept["content-location"] == f"/ipfs/{content.big}?format=raw"


def _car(body: bytes) -> tuple[list[CID], list[tuple[CID, bytes]]]:
    reader = CARReader(io.BytesIO(body))  # verifies every block against its CID
    return reader.roots, list(reader)


async def test_car_reimports_into_a_fresh_store_block_by_block(served, content):
    reply = await request(served.port, f"/ipfs/{content.big}?format=car")
    assert reply.status == 200
    assert reply["content-type"] == "application/vnd.ipld.car; version=1; order=dfs; dups=n"
    assert reply["content-disposition"] == f'attachment; filename="{content.big}.car"'
    assert reply["x-content-type-options"] == "nosniff"
    assert reply["etag"].startswith(f'"{content.big}.car.')
    roots, blocks = _car(reply.body)
    assert roots == [content.big]
    fresh = MemoryBlockstore()
    for cid, data in blocks:
        assert data == content.store.get(cid)
        fresh.put(cid, data)
    assert blocks[0][0] == content.big  # depth-first from the root
    assert b"".join(exporter.read_file(fresh.get, content.big)) == BIG


async def test_car_of_a_path_carries_the_blocks_that_prove_it(served, content):
    reply = await request(served.port, f"/ipfs/{content.plain}/nested/deeper/file.bin",
                          headers={"accept": "application/vnd.ipld.car"})
    assert reply.status == 200
    assert reply["content-location"] == (f"/ipfs/{content.plain}/nested/deeper/file.bin"
                                         "?format=car")
    roots, blocks = _car(reply.body)
    assert roots == [content.plain]
    assert [cid for cid, _ in blocks] == [CID.parse(c) for c in reply["x-ipfs-roots"].split(",")]


async def test_dag_scope_block_entity_and_all(served, content):
    base = f"/ipfs/{content.plain}/nested?format=car"
    _, block = _car((await request(served.port, base + "&dag-scope=block")).body)
    _, entity = _car((await request(served.port, base + "&dag-scope=entity")).body)
    _, everything = _car((await request(served.port, base + "&dag-scope=all")).body)
    assert len(block) == 2 and len(entity) == 2  # plain, nested: a directory's entity is itself
    assert len(everything) == 4  # plus deeper/ and file.bin
    _, sharded = _car((await request(served.port, f"/ipfs/{content.sharded}?format=car"
                                     "&dag-scope=entity")).body)
    kinds = {unixfs.decode(dagpb.decode(block).data).type for _, block in sharded}
    assert kinds == {DataType.HAMT_SHARD} and len(sharded) > 1  # the shards, none of the files


async def test_entity_bytes_sends_only_the_blocks_of_the_range(served, content):
    target = f"/ipfs/{content.big}?format=car&entity-bytes="
    _, first = _car((await request(served.port, target + "0:1023")).body)
    leaves = [cid for cid, _ in first if cid.codec == Codec.RAW]
    assert len(leaves) == 1 and first[0][0] == content.big
    _, tail = _car((await request(served.port, target + "-1500:*")).body)
    tail_bytes = b"".join(data for cid, data in tail if cid.codec == Codec.RAW)
    assert BIG.endswith(tail_bytes) and len(tail_bytes) < 4096
    _, outside = _car((await request(served.port, target + f"{len(BIG) + 10}:*")).body)
    assert [cid for cid, _ in outside] == [content.big]  # nothing selected: dag-scope=block
    bad = await request(served.port, target + "abc")
    assert bad.status == 400


async def test_dups_y_repeats_blocks_and_dups_n_does_not(served, content):
    repeated = import_bytes(bytes(4096), ImportOptions(cid_version=1, chunk_size=1024),
                            content.store.put).cid
    _, once = _car((await request(served.port, f"/ipfs/{repeated}?format=car")).body)
    reply = await request(served.port, f"/ipfs/{repeated}",
                          headers={"accept": "application/vnd.ipld.car; order=dfs; dups=y"})
    assert reply["content-type"] == "application/vnd.ipld.car; version=1; order=dfs; dups=y"
    _, dups = _car(reply.body)
    assert len(once) == 2 and len(dups) == 5  # the root and 4 links to one zero leaf


async def test_unsupported_formats_are_406_and_unknown_ones_400(served, content):
    target = f"/ipfs/{content.hello}"
    for query, headers in (("?format=car&car-version=2", {}), ("?format=tar", {}),
                           ("", {"accept": "application/vnd.ipld.car; version=2"}),
                           ("", {"accept": "application/x-tar"}),
                           ("?format=dag-cbor", {})):
        reply = await request(served.port, target + query, headers=headers)
        assert reply.status == 406, (query, headers)
    assert (await request(served.port, target + "?format=zip")).status == 400
    fallback = await request(served.port, target, headers={
        "accept": "application/vnd.ipld.car; version=2, application/vnd.ipld.raw;q=0.5"})
    assert fallback.status == 200 and fallback["content-type"] == "application/vnd.ipld.raw"


async def test_dag_cbor_blocks_and_paths_through_their_links(served, content):
    reply = await request(served.port, f"/ipfs/{content.cbor}")
    assert reply.status == 200 and reply.body == content.store.get(content.cbor)
    assert reply["content-type"] == "application/vnd.ipld.dag-cbor"
    assert (await request(served.port, f"/ipfs/{content.cbor}/file")).body == b"hello world\n"
    assert (await request(served.port, f"/ipfs/{content.cbor}/list/0")).body == b"a raw block\n"
    assert (await request(served.port, f"/ipfs/{content.cbor}/n")).status == 501
    assert (await request(served.port, f"/ipfs/{content.cbor}/nope")).status == 404


# -- errors ------------------------------------------------------------------------------------
async def test_error_statuses(served, content):
    missing = CID.of(b"nobody has this", Codec.RAW)
    cases = [("/ipfs/not-a-cid", {}, 400), ("/ipfs/", {}, 400), ("/other", {}, 400),
             (f"/ipfs/{content.plain}/nope.txt", {}, 404), (f"/ipfs/{missing}", {}, 404),
             (f"/ipfs/{content.hello}/below-a-file", {}, 404),
             (f"/ipfs/{missing}", {"cache-control": "only-if-cached"}, 412),
             (f"/ipfs/{content.site}", {"service-worker": "script"}, 400),
             ("/ipns/example.com", {}, 501)]
    for target, headers, status in cases:
        reply = await request(served.port, target, headers=headers)
        assert reply.status == status, (target, reply.body)
        assert reply["content-type"] == "text/plain; charset=utf-8"
        assert reply.body.endswith(b"\n") and reply.body.count(b"\n") == 1
    cached = await request(served.port, f"/ipfs/{content.hello}",
                           headers={"cache-control": "only-if-cached"})
    assert cached.status == 200
    post = await request(served.port, f"/ipfs/{content.hello}", "POST")
    assert post.status == 405 and post["allow"] == "GET, HEAD"


async def test_keep_alive_serves_several_requests_on_one_connection(served, content):
    stream = await trio.open_tcp_stream("127.0.0.1", served.port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        for target in (f"/ipfs/{content.hello}", f"/ipfs/{content.big}?format=raw",
                       f"/ipfs/{content.plain}/nope"):
            reply = await exchange(stream, conn, target)
            assert reply.status in (200, 404)
            conn.start_next_cycle()


# -- subdomain gateway -------------------------------------------------------------------------
async def test_localhost_path_requests_redirect_to_the_subdomain(served, content):
    reply = await request(served.port, f"/ipfs/{content.hello}/a/b?q=1", host="localhost")
    label = content.hello.to_v1().encode("base32")
    assert reply.status == 301
    assert reply["location"] == f"http://{label}.ipfs.localhost:{served.port}/a/b?q=1"


async def test_subdomain_requests_serve_the_root_at_slash(served, content):
    label = content.site.encode("base32")
    page = await request(served.port, "/", host=f"{label}.ipfs.localhost")
    assert page.status == 200 and page.body == b"<!DOCTYPE html><p>welcome</p>\n"
    css = await request(served.port, "/style.css", host=f"{label}.ipfs.localhost")
    assert css.body == b"p { color: red }\n"
    assert css["x-ipfs-path"] == f"/ipfs/{label}/style.css"
    base36 = content.site.encode("base36")
    moved = await request(served.port, "/style.css", host=f"{base36}.ipfs.localhost")
    assert moved.status == 301
    assert moved["location"] == f"http://{label}.ipfs.localhost:{served.port}/style.css"


async def test_requests_are_counted_by_status_on_the_given_registry(content, nursery):
    registry = CollectorRegistry()
    server = GatewayServer(Gateway(content.store), registry=registry)
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    await request(port, f"/ipfs/{content.hello}")
    await request(port, f"/ipfs/{content.hello}", "HEAD")
    await request(port, "/ipfs/not-a-cid")

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("blockmesh_gateway_requests_total", method="GET", status="200") == 1
    assert sample("blockmesh_gateway_requests_total", method="HEAD", status="200") == 1
    assert sample("blockmesh_gateway_requests_total", method="GET", status="400") == 1
    assert sample("blockmesh_gateway_request_duration_seconds_count", method="GET") == 2
