"""Fixtures for the gateway tests: content built here (files, nested, index and HAMT-sharded
directories, raw and dag-cbor blocks), a gateway server in the test's trio loop on 127.0.0.1,
and a small HTTP/1.1 client on h11 that returns status, headers and body."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest
import trio

from blockmesh.data.cid import CID, Codec
from blockmesh.data.dag import dagcbor
from blockmesh.data.dag.importer import ImportOptions, import_bytes, import_path
from blockmesh.data.gateway.handler import Gateway
from blockmesh.data.gateway.server import GatewayServer
from blockmesh.data.store.memory import MemoryBlockstore

HTTP_TIMEOUT = 20


@dataclass
class Content:
    store: MemoryBlockstore
    hello: CID  # "hello world\n", one block, CIDv0
    big: CID  # BIG bytes, 1 KiB chunks, CIDv1 raw leaves: many blocks, two levels
    big_bytes: bytes
    site: CID  # index.html, style.css, sub/page.txt
    plain: CID  # no index.html: a.txt, nested/deeper/file.bin, "sp ace & <b>.txt"
    sharded: CID  # a HAMT-sharded directory of SHARD_COUNT entries
    shard_name: str
    shard_value: bytes
    raw: CID  # a raw block
    cbor: CID  # dag-cbor {"file": hello link, "n": 1, "list": [raw link]}
    names: dict[str, CID] = field(default_factory=dict)


SHARD_COUNT = 1400
BIG = bytes((i * 7 + i // 1024) % 251 for i in range(300 * 1024 + 123))


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _add_dir(store: MemoryBlockstore, path: Path, opts: ImportOptions) -> CID:
    return list(import_path(path, opts, store.put, recursive=True))[-1].cid


@pytest.fixture(scope="session")
def content(tmp_path_factory: pytest.TempPathFactory) -> Content:
    store = MemoryBlockstore()
    base = tmp_path_factory.mktemp("gateway-content")
    v1 = ImportOptions(cid_version=1)
    hello = import_bytes(b"hello world\n", ImportOptions(), store.put).cid
    big = import_bytes(BIG, ImportOptions(cid_version=1, chunk_size=1024), store.put).cid
    _tree(base / "site", {"index.html": b"<!DOCTYPE html><p>welcome</p>\n",
                          "style.css": b"p { color: red }\n", "sub/page.txt": b"page\n"})
    _tree(base / "plain", {"a.txt": b"aaa\n", "nested/deeper/file.bin": bytes(range(256)),
                           "sp ace & <b>.txt": b"odd name\n", "picture": b"\x89PNG\r\n\x1a\n" +
                           bytes(40), "noext": b"plain text without extension\n"})
    shard_dir = base / "sharded"
    shard_dir.mkdir()
    long = "x" * 180
    for i in range(SHARD_COUNT):
        (shard_dir / f"{long}-{i:05d}.txt").write_bytes(f"entry {i}\n".encode())
    raw = CID.of(b"a raw block\n", Codec.RAW)
    store.put(raw, b"a raw block\n")
    cbor_bytes = dagcbor.encode({"file": hello, "n": 1, "list": [raw]})
    cbor = CID.of(cbor_bytes, Codec.DAG_CBOR)
    store.put(cbor, cbor_bytes)
    return Content(store, hello, big, BIG, _add_dir(store, base / "site", v1),
                   _add_dir(store, base / "plain", v1), _add_dir(store, shard_dir, v1),
                   f"{long}-00777.txt", b"entry 777\n", raw, cbor)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def __getitem__(self, name: str) -> str:
        return self.headers[name]


async def request(port: int, target: str, method: str = "GET",
                  headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> Reply:
    """One request on a fresh connection."""
    with trio.fail_after(HTTP_TIMEOUT):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            return await exchange(stream, h11.Connection(h11.CLIENT), target, method, headers,
                                  host, port)


async def exchange(stream: trio.SocketStream, conn: h11.Connection, target: str,
                   method: str = "GET", headers: dict[str, str] | None = None,
                   host: str = "127.0.0.1", port: int = 0) -> Reply:
    all_headers = [("host", f"{host}:{port}" if port else host),
                   *(headers or {}).items()]
    await stream.send_all(conn.send(h11.Request(method=method, target=target,
                                                headers=all_headers)))
    await stream.send_all(conn.send(h11.EndOfMessage()))
    status, got, body = 0, {}, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(1 << 16))
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            got = {k.decode().lower(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return Reply(status, got, bytes(body))
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("server closed mid-response")


@dataclass
class Served:
    port: int
    server: GatewayServer


@pytest.fixture
async def served(content: Content, nursery: trio.Nursery) -> Served:
    server = GatewayServer(Gateway(content.store, timeout=2.0))
    port = await nursery.start(server.serve, "127.0.0.1", 0)
    return Served(port, server)


