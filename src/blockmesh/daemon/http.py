"""A small HTTP/1.1 server on trio with h11: one request per connection, JSON in, JSON or a
byte stream out.

It serves only the local control API, so it stays deliberately narrow: POST with a JSON object
body, a bearer token, one request per connection (`Connection: close`), and bounds on header
size, body size, idle time and concurrent connections. Every failure is answered with a status
code and `{"error": "<one line>"}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import h11
import trio

logger = logging.getLogger(__name__)

MAX_HEADER_SIZE = 16 << 10
MAX_BODY_SIZE = 64 << 10
# A client must finish sending its request within this; responses may take as long as they need.
REQUEST_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
READ_SIZE = 16 << 10
SEND_TIMEOUT = 60.0

Send = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True)
class JsonReply:
    value: Any
    status: int = 200


@dataclass(frozen=True)
class StreamReply:
    """A chunked body written by `produce`, which is handed a send function."""

    produce: Callable[[Send], Awaitable[None]]
    content_type: str = "application/octet-stream"


Reply = JsonReply | StreamReply
Handler = Callable[[str, dict[str, Any]], Awaitable[Reply]]


class HttpError(Exception):
    """Ends a request with `status` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_reply(status: int, message: str) -> JsonReply:
    return JsonReply({"error": " ".join(message.split())}, status)


class HttpServer:
    """Serves `handler(path, body)` to clients that present `token`."""

    def __init__(self, handler: Handler, token: str) -> None:
        self._handler = handler
        self._token = token
        self._slots = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def serve(self, host: str, port: int,
                    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on host:port (0 picks a free port); reports the bound port when started."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            task_status.started(bound)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            await _quietly_close(stream)
            return
        try:
            await self._exchange(stream, h11.Connection(
                h11.SERVER, max_incomplete_event_size=MAX_HEADER_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
            logger.debug("API client went away: %s", exc)
        except Exception:  # one broken request must not take the daemon down
            logger.exception("API request failed")
        finally:
            self._slots.release()
            await _quietly_close(stream)

    async def _exchange(self, stream: trio.SocketStream, conn: h11.Connection) -> None:
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                path, body = await self._read_request(stream, conn)
            reply = await self._handler(path, body)
        except HttpError as exc:
            reply = error_reply(exc.status, str(exc))
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # the request was so broken that h11 cannot even answer it
        if isinstance(reply, JsonReply):
            payload = json.dumps(reply.value).encode()
            await _send(stream, conn, h11.Response(status_code=reply.status, headers=[
                ("content-type", "application/json"), ("content-length", str(len(payload))),
                ("connection", "close")]))
            await _send(stream, conn, h11.Data(data=payload))
        else:
            await _send(stream, conn, h11.Response(status_code=200, headers=[
                ("content-type", reply.content_type), ("connection", "close")]))

            async def send(chunk: bytes) -> None:
                if chunk:
                    await _send(stream, conn, h11.Data(data=chunk))

            await reply.produce(send)
        await _send(stream, conn, h11.EndOfMessage())

    async def _read_request(self, stream: trio.SocketStream,
                            conn: h11.Connection) -> tuple[str, dict[str, Any]]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(exc.error_status_hint, f"bad HTTP request: {exc}") from None
            if event is h11.NEED_DATA:
                data = await stream.receive_some(READ_SIZE)
                conn.receive_data(data)  # b"" marks the end of the stream for h11
                if not data and conn.their_state is not h11.DONE and request is None:
                    raise trio.BrokenResourceError("client closed before sending a request")
                continue
            if isinstance(event, h11.Request):
                request = event
                self._check_request(event)
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY_SIZE:
                    raise HttpError(413, f"request body over {MAX_BODY_SIZE} bytes")
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("client closed mid-request")
        assert request is not None
        return request.target.decode("ascii", "replace").split("?", 1)[0], _parse_body(body)

    def _check_request(self, request: h11.Request) -> None:
        headers = dict(request.headers)
        length = headers.get(b"content-length")
        if length is not None and int(length) > MAX_BODY_SIZE:
            raise HttpError(413, f"request body over {MAX_BODY_SIZE} bytes")
        given = headers.get(b"authorization", b"")
        if not secrets.compare_digest(given, f"Bearer {self._token}".encode()):
            raise HttpError(403, "missing or wrong API token (read it from <repo>/api)")
        if request.method != b"POST":
            raise HttpError(405, "the control API takes POST requests only")


def _parse_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise HttpError(400, f"request body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpError(400, "request body must be a JSON object")
    return value


async def _send(stream: trio.SocketStream, conn: h11.Connection, event: Any) -> None:
    data = conn.send(event)
    if data:
        with trio.fail_after(SEND_TIMEOUT):
            await stream.send_all(data)


async def _quietly_close(stream: trio.SocketStream) -> None:
    with trio.move_on_after(1), contextlib.suppress(
            trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await stream.aclose()
