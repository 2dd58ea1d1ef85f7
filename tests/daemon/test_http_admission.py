"""The control API server's two-stage admission, in process on 127.0.0.1: connections that have
not shown the token are bounded by time and number apart from authenticated requests."""

from __future__ import annotations

import contextlib
import json

import trio
from daemons import http_exchange

from blockmesh.daemon.http import HttpServer, JsonReply, Reply

TOKEN = "secret-token"
# Every wait below is bounded by this, far beyond what any step needs.
BOUND = 15.0


def request(path: str = "/api/v0/id", token: str | None = TOKEN, body: bytes = b"{}",
            length: int | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n".encode() if token is not None else b""
    size = len(body) if length is None else length
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + auth
            + f"Content-Length: {size}\r\n\r\n".encode() + body)


async def call(port: int, raw: bytes) -> tuple[int, dict]:
    """Send `raw`, read the whole answer; the status and the JSON body."""
    head, _, body = (await http_exchange(port, raw)).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """True once the server hung up (EOF or reset) without answering anything."""
    try:
        return await stream.receive_some(1024) == b""
    except trio.BrokenResourceError:
        return True


async def start(nursery: trio.Nursery, handler=None, **limits) -> int:
    async def echo(path: str, body: dict) -> Reply:
        return JsonReply({"path": path, "body": body})

    server = HttpServer(handler or echo, TOKEN, **limits)
    return await nursery.start(server.serve, "127.0.0.1", 0)


async def test_idle_and_slow_loris_connections_are_dropped_at_the_head_deadline():
    async with trio.open_nursery() as nursery:
        port = await start(nursery, head_timeout=0.5, max_requests=2)
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(10)]
        loris = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(10)]
        for stream in loris:
            await stream.send_all(b"POST /api/v0/id HTTP/1.1\r\nHost: x\r\n")
        # Twenty connections against two request slots: the real call still goes through.
        with trio.fail_after(BOUND):
            assert await call(port, request(body=b'{"a": 1}')) == (
                200, {"path": "/api/v0/id", "body": {"a": 1}})
        with trio.fail_after(BOUND):
            for stream in loris:
                with contextlib.suppress(trio.BrokenResourceError):  # closed already is fine
                    await stream.send_all(b"X-Drip: 1\r\n")  # dripping buys no more time
            for stream in idle + loris:
                assert await closed_by_server(stream)
        for stream in idle + loris:
            await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_the_oldest_unauthenticated_connection_makes_room_for_a_new_one():
    async with trio.open_nursery() as nursery:
        port = await start(nursery, head_timeout=BOUND * 4, max_unauthenticated=4)
        waiting = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(4)]
        with trio.fail_after(BOUND):
            # Until the server has taken all four in, a call finds room without dropping any.
            dropped = False
            while not dropped:
                assert (await call(port, request()))[0] == 200
                with trio.move_on_after(0.2):
                    dropped = await closed_by_server(waiting[0])
        with trio.move_on_after(0.3):  # the three younger ones are still waiting
            await waiting[1].receive_some(1)
            raise AssertionError("a younger waiting connection was dropped")
        for stream in waiting:
            await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_token_is_checked_on_the_head_before_any_body_is_read():
    seen: list[str] = []

    async def handler(path: str, body: dict) -> Reply:
        seen.append(path)
        return JsonReply({})

    async with trio.open_nursery() as nursery:
        port = await start(nursery, handler)
        with trio.fail_after(BOUND):
            # A body is announced but never sent: the refusal cannot have waited for it.
            for token in (None, "wrong", TOKEN + "x", ""):
                status, answer = await call(port, request(token=token, body=b"", length=100))
                assert status == 403 and "API token" in answer["error"]
            assert (await call(port, request(token="wrong", length=10**9)))[0] == 403
        assert seen == []
        nursery.cancel_scope.cancel()


async def test_authenticated_requests_beyond_the_slots_are_answered_503():
    release = trio.Event()
    entered = trio.Event()

    async def slow(path: str, body: dict) -> Reply:
        entered.set()
        await release.wait()
        return JsonReply({"done": True})

    async with trio.open_nursery() as nursery:
        port = await start(nursery, slow, max_requests=1)
        results: list[tuple[int, dict]] = []

        async def first() -> None:
            results.append(await call(port, request()))

        with trio.fail_after(BOUND):
            nursery.start_soon(first)
            await entered.wait()
            status, answer = await call(port, request())
            assert status == 503 and "try again" in answer["error"]
            release.set()
            while not results:
                await trio.sleep(0.01)
        assert results == [(200, {"done": True})]
        nursery.cancel_scope.cancel()
