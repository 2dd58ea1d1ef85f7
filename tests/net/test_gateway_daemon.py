"""The gateway inside `blockmesh daemon`: the banner line and `id --json` name it, it serves
the repo, fetches what the repo lacks from a second daemon over Bitswap, answers 504 when no
peer has a block, redirects path requests on localhost to the subdomain gateway, a client that
stops reading holds the fetch back to the read-ahead window, and a client that disconnects
mid-stream leaves no want behind."""

from __future__ import annotations

import http.client
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemons import Daemon, as_json, connect, run, start_daemon

from blockmesh.data.cid import CID, Codec
from blockmesh.data.gateway.address import parse_listen

HTTP_TIMEOUT = 60
READ_AHEAD_MIB = 1
MiB = 1 << 20
pytestmark = pytest.mark.slow  # two daemons and several CLI calls: about a minute


def gateway_port(daemon: Daemon) -> int:
    return parse_listen(as_json(run(daemon.repo, "id", "--json"))["Gateway"])[1]


def get(port: int, target: str, headers: dict[str, str] | None = None,
        method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        conn.request(method, target, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon, list[str]]]:
    base = tmp_path_factory.mktemp("gateway-daemons")
    run(base / "b", "init")
    config = base / "b" / "config.toml"
    config.write_text(config.read_text().replace("timeout = 30.0", "timeout = 3.0")
                      .replace("read_ahead_mib = 32", f"read_ahead_mib = {READ_AHEAD_MIB}"))
    banner: list[str] = []
    a = start_daemon(base / "a", banner)
    try:
        b = start_daemon(base / "b")
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b, banner
    finally:
        b.stop()
        a.stop()


def test_banner_and_id_name_the_gateway(pair):
    a, _, banner = pair
    ident = as_json(run(a.repo, "id", "--json"))
    assert f"Gateway server listening on {ident['Gateway']}" in banner
    host, port = parse_listen(ident["Gateway"])
    assert host == "127.0.0.1" and port > 0
    other = as_json(run(a.repo.parent / "b", "id", "--json"))["Gateway"]
    assert other.startswith("/ip4/127.0.0.1/tcp/") and parse_listen(other)[1] != port


def test_serves_local_content_and_fetches_the_rest_over_bitswap(pair, tmp_path: Path):
    a, b, _ = pair
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "payload.bin"
    src.write_bytes(data)
    cid = run(a.repo, "add", "-Q", "--cid-version", "1", str(src)).stdout.decode().strip()
    status, headers, body = get(gateway_port(a), f"/ipfs/{cid}")
    assert status == 200 and body == data and headers["etag"] == f'"{cid}"'
    connect(a, b)
    status, headers, body = get(gateway_port(b), f"/ipfs/{cid}",
                                {"range": "bytes=1000000-1999999"})
    assert status == 206 and body == data[1000000:2000000]
    status, _, body = get(gateway_port(b), f"/ipfs/{cid}")  # the rest, still over Bitswap
    assert status == 200 and body == data
    stat = as_json(run(b.repo, "bitswap", "stat", "--json"))
    assert stat["blocks_received"] >= 13 and stat["wantlist_size"] == 0


def test_missing_block_is_504_after_the_timeout(pair):
    _, b, _ = pair
    missing = CID.of(os.urandom(32), Codec.RAW)
    started = time.monotonic()
    status, headers, body = get(gateway_port(b), f"/ipfs/{missing}")
    assert status == 504 and headers["retry-after"]
    assert b"did not arrive over Bitswap" in body
    assert 2.5 < time.monotonic() - started < 30
    assert as_json(run(b.repo, "bitswap", "stat", "--json"))["wantlist_size"] == 0


def test_localhost_redirects_to_the_subdomain_gateway(pair):
    a, _, _ = pair
    port = gateway_port(a)
    cid = CID.of(b"sub", Codec.RAW)
    status, headers, _ = get(port, f"/ipfs/{cid}/x", {"host": f"localhost:{port}"})
    assert status == 301 and headers["location"] == f"http://{cid}.ipfs.localhost:{port}/x"


def test_client_gone_mid_stream_leaves_no_want_behind(pair, tmp_path: Path):
    a, b, _ = pair
    data = os.urandom(8 * 1024 * 1024)
    src = tmp_path / "gone.bin"
    src.write_bytes(data)
    cid = run(a.repo, "add", "-Q", "--cid-version", "1", str(src)).stdout.decode().strip()
    connect(a, b)
    with socket.create_connection(("127.0.0.1", gateway_port(b)), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(f"GET /ipfs/{cid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 30
    while as_json(run(b.repo, "bitswap", "stat", "--json"))["wantlist_size"] != 0:
        assert time.monotonic() < deadline, "wants outlived the client"
        time.sleep(0.2)
    status, _, body = get(gateway_port(b), f"/ipfs/{cid}")  # the daemon serves on
    assert status == 200 and body == data


def test_a_client_that_stops_reading_holds_the_fetch_to_the_window(pair, tmp_path: Path):
    a, b, _ = pair
    data = os.urandom(48 * MiB)  # 192 blocks of 256 KiB
    src = tmp_path / "slow.bin"
    src.write_bytes(data)
    cid = run(a.repo, "add", "-Q", "--cid-version", "1", str(src)).stdout.decode().strip()
    connect(a, b)
    before = as_json(run(b.repo, "bitswap", "stat", "--json"))["blocks_received"]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(HTTP_TIMEOUT)
        sock.connect(("127.0.0.1", gateway_port(b)))
        sock.sendall(f"GET /ipfs/{cid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # the client reads nothing more: the fetch goes on only until the socket buffers and
        # the read-ahead window are full, then stops
        received, deadline = -1, time.monotonic() + 30
        while True:
            time.sleep(1.0)
            now = as_json(run(b.repo, "bitswap", "stat", "--json"))["blocks_received"]
            if now == received:
                break
            assert time.monotonic() < deadline, "the fetch never settled"
            received = now
        fetched = (received - before) * 256 * 1024
        # kernel buffers on loopback hold a few MiB at most; far from the whole file
        assert fetched < 24 * MiB, f"{fetched / MiB:.0f} MiB fetched for a client reading none"
    deadline = time.monotonic() + 30
    while as_json(run(b.repo, "bitswap", "stat", "--json"))["wantlist_size"] != 0:
        assert time.monotonic() < deadline, "wants outlived the client"
        time.sleep(0.2)
