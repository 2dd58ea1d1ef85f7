"""The gateway's HTTP adapter against clients that misbehave at the byte level, over real
sockets on 127.0.0.1: a trickled head or body must not hold a connection slot, a body too big
is refused, a malformed one answered 400, and the server keeps serving throughout."""

from __future__ import annotations

import contextlib

import trio
from gateway_fixtures import request

from blockmesh.data.gateway.handler import Gateway
from blockmesh.data.gateway.server import GatewayServer


async def _raw(port: int, data: bytes) -> bytes:
    """Send `data` and read until the server closes; the whole answer."""
    got = bytearray()
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(data)
            with contextlib.suppress(trio.BrokenResourceError):
                while chunk := await stream.receive_some(1 << 16):
                    got += chunk
    return bytes(got)


def _head(target: str, *headers: str) -> bytes:
    return ("\r\n".join([f"GET {target} HTTP/1.1", "host: 127.0.0.1", *headers]) +
            "\r\n\r\n").encode()


async def _one_slot_server(content, nursery: trio.Nursery) -> int:
    server = GatewayServer(Gateway(content.store), max_connections=1, head_timeout=1.0,
                           body_timeout=1.0, max_body=1024)
    return await nursery.start(server.serve, "127.0.0.1", 0)


async def _trickle(stream: trio.SocketStream, pieces: list[bytes], answer: bytearray) -> None:
    """Send `pieces` one every 0.1 s while collecting what the server answers; stops sending
    once an answer came (bounded: at most len(pieces) sends)."""
    async def read() -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while chunk := await stream.receive_some(1 << 16):
                answer.extend(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            for piece in pieces:
                if answer:
                    break
                await stream.send_all(piece)
                await trio.sleep(0.1)


async def test_a_trickled_body_gets_408_and_frees_the_only_slot(content, nursery):
    port = await _one_slot_server(content, nursery)
    slow = await trio.open_tcp_stream("127.0.0.1", port)
    answer = bytearray()
    async with slow:
        await slow.send_all(_head(f"/ipfs/{content.hello}", "transfer-encoding: chunked"))
        nursery.start_soon(_trickle, slow, [b"1\r\nx\r\n"] * 200, answer)
        with trio.fail_after(8):  # the trickler alone would last 20 s
            reply = await request(port, f"/ipfs/{content.hello}")
        assert reply.status == 200 and reply.body == b"hello world\n"
        with trio.fail_after(5):
            while b"\r\n\r\n" not in answer:
                await trio.sleep(0.05)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer.lower()


async def test_a_trickled_head_is_dropped_and_frees_the_only_slot(content, nursery):
    port = await _one_slot_server(content, nursery)
    slow = await trio.open_tcp_stream("127.0.0.1", port)
    head = _head(f"/ipfs/{content.hello}")
    async with slow:
        nursery.start_soon(_trickle, slow, [head[i:i + 1] for i in range(len(head) - 1)],
                           bytearray())
        with trio.fail_after(8):
            reply = await request(port, f"/ipfs/{content.hello}")
        assert reply.status == 200


async def test_request_bodies_over_the_cap_are_413_before_any_content_lookup(content, nursery):
    port = await _one_slot_server(content, nursery)
    declared = await _raw(port, _head(f"/ipfs/{content.hello}", "content-length: 1000000"))
    assert declared.startswith(b"HTTP/1.1 413 ")
    chunked = await _raw(port, _head(f"/ipfs/{content.hello}", "transfer-encoding: chunked")
                         + b"800\r\n" + b"x" * 0x800 + b"\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 413 ")
    small = await _raw(port, _head(f"/ipfs/{content.hello}", "content-length: 5",
                                   "connection: close") + b"12345")
    assert small.startswith(b"HTTP/1.1 200 ") and small.endswith(b"hello world\n")


async def test_malformed_requests_are_400_and_the_server_keeps_serving(content, nursery):
    port = await _one_slot_server(content, nursery)
    bad_chunk = await _raw(port, _head(f"/ipfs/{content.hello}", "transfer-encoding: chunked")
                           + b"zz\r\nnot hex\r\n")
    assert bad_chunk.startswith(b"HTTP/1.1 400 ")
    bad_head = await _raw(port, b"GET /ipfs/x HTTP/1.1\r\nno colon here\r\n\r\n")
    assert bad_head.startswith(b"HTTP/1.1 400 ")
    bad_length = await _raw(port, _head(f"/ipfs/{content.hello}", "content-length: 3x"))
    assert bad_length.startswith(b"HTTP/1.1 400 ")
    assert (await request(port, f"/ipfs/{content.hello}")).status == 200
