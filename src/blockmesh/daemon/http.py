"""A small HTTP/1.1 server on trio with h11: one request per connection, JSON in, JSON or a
byte stream out.

It serves only the local control API, so it stays deliberately narrow: POST with a JSON object
body, a bearer token, one request per connection (`Connection: close`), and bounds on header
size, body size, the time to send a request and concurrent requests. GET requests go to an
optional `WebRoutes` (the dashboard, /events, /metrics), which decides in the head stage, from
the request head alone, whether a request is authorised (docs/security.md). Connections that
have not shown the token yet are bounded apart from authenticated ones (HEAD_TIMEOUT), so a
local process that opens many connections cannot lock the CLI out. Every failure is answered
with a status code and `{"error": "<one line>"}`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import h11
import trio

logger = logging.getLogger(__name__)

MAX_HEADER_SIZE = 16 << 10
MAX_BODY_SIZE = 64 << 10
# A connection is unauthenticated until its request head has arrived with the right token. Until
# then it holds no request slot, must send the whole head within HEAD_TIMEOUT of being accepted,
# and counts only against MAX_UNAUTHENTICATED, past which the oldest waiting one is dropped for the
# newcomer: idle or slow-loris connections delay nothing but each other, never a real CLI call
# (whose head comes in the first packet).
HEAD_TIMEOUT = 2.0
MAX_UNAUTHENTICATED = 256
# An authenticated client must finish sending its body within this; responses may take as long
# as they need.
REQUEST_TIMEOUT = 10.0
# Authenticated requests served at once; one more is answered 503 rather than queued.
MAX_REQUESTS = 64
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
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BytesReply:
    """A whole body with its content type and extra headers (pages, redirects, metrics)."""

    body: bytes
    content_type: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


Reply = JsonReply | StreamReply | BytesReply
Handler = Callable[[str, dict[str, Any]], Awaitable[Reply]]


class WebRoutes(Protocol):
    """What serves GET requests beside the POST API."""

    def authorise(self, request: h11.Request, bearer_ok: bool) -> object:
        """A grant for an authorised GET (handed back to `get`); raises HttpError if refused.
        Called in the head stage, before the request takes a slot: it must not block."""
        ...

    async def get(self, target: str, grant: object) -> Reply: ...


class HttpError(Exception):
    """Ends a request with `status` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def error_reply(status: int, message: str) -> JsonReply:
    return JsonReply({"error": " ".join(message.split())}, status)


class HttpServer:
    """Serves `handler(path, body)` to clients that present `token`.

    Admission has two stages with separate bounds (see HEAD_TIMEOUT): waiting for an authorised
    request head, then serving the request in one of `max_requests` slots.
    """

    def __init__(self, handler: Handler, token: str, *, head_timeout: float = HEAD_TIMEOUT,
                 max_unauthenticated: int = MAX_UNAUTHENTICATED,
                 max_requests: int = MAX_REQUESTS, web: WebRoutes | None = None) -> None:
        self._handler = handler
        self._web = web
        self._authorization = f"Bearer {token}".encode()
        self._head_timeout = head_timeout
        self._max_unauthenticated = max_unauthenticated
        # Connections still waiting for their head, oldest first (a dict keeps insertion order).
        self._waiting: dict[trio.CancelScope, None] = {}
        self._slots = trio.CapacityLimiter(max_requests)

    async def serve(self, host: str, port: int,
                    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on host:port (0 picks a free port); reports the bound port when started."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve_connection, listeners)
            task_status.started(bound)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_SIZE)
        try:
            admitted = await self._admit(stream, conn)
            if admitted is None:
                return
            request, grant = admitted
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                await self._exchange(stream, conn, request, grant, busy=True)
                return
            try:
                await self._exchange(stream, conn, request, grant, busy=False)
            finally:
                self._slots.release()
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError) as exc:
            logger.debug("API client went away: %s", exc)
        except Exception:  # one broken request must not take the daemon down
            logger.exception("API request failed")
        finally:
            await _quietly_close(stream)

    async def _admit(self, stream: trio.SocketStream,
                     conn: h11.Connection) -> tuple[h11.Request, object] | None:
        """The connection's authorised request head and its grant, read under the head deadline
        and liable to be dropped for a newer connection; None once it was refused, timed out
        or dropped."""
        scope = trio.CancelScope(deadline=trio.current_time() + self._head_timeout)
        if len(self._waiting) >= self._max_unauthenticated:
            oldest = next(iter(self._waiting))
            del self._waiting[oldest]
            oldest.cancel()
        self._waiting[scope] = None
        try:
            with scope:
                try:
                    return await self._read_head(stream, conn)
                except HttpError as exc:
                    # Answered within what is left of the deadline: the client is still unknown.
                    await _send_reply(stream, conn, error_reply(exc.status, str(exc)))
                    return None
            logger.debug("API connection dropped before an authorised request head")
            return None
        finally:
            self._waiting.pop(scope, None)

    async def _read_head(self, stream: trio.SocketStream,
                         conn: h11.Connection) -> tuple[h11.Request, object]:
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(exc.error_status_hint, f"bad HTTP request: {exc}") from None
            if event is h11.NEED_DATA:
                data = await stream.receive_some(READ_SIZE)
                if not data:
                    raise trio.BrokenResourceError("client closed before sending a request")
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                return event, self._check_request(event)
            raise trio.BrokenResourceError(f"unexpected {type(event).__name__} before a request")

    def _check_request(self, request: h11.Request) -> object:
        """The token first, in constant time, before anything else of the request is looked
        at (its body has not been read at all yet). A GET is the web routes' to authorise."""
        headers = dict(request.headers)
        given = headers.get(b"authorization", b"")
        bearer_ok = secrets.compare_digest(given, self._authorization)
        if request.method == b"GET" and self._web is not None:
            return self._web.authorise(request, bearer_ok)
        if not bearer_ok:
            raise HttpError(403, "missing or wrong API token (read it from <repo>/api)")
        length = headers.get(b"content-length")
        if length is not None and int(length) > MAX_BODY_SIZE:
            raise HttpError(413, f"request body over {MAX_BODY_SIZE} bytes")
        if request.method != b"POST":
            raise HttpError(405, "the control API takes POST requests only")
        return None

    async def _exchange(self, stream: trio.SocketStream, conn: h11.Connection,
                        request: h11.Request, grant: object, *, busy: bool) -> None:
        """Read the body of an authorised request, then answer it (503 when `busy`: the body
        is read first even then, so the client sees the answer rather than a reset)."""
        try:
            with trio.fail_after(REQUEST_TIMEOUT):
                body = await _read_body(stream, conn)
            if busy:
                raise HttpError(503, f"the daemon is already serving {self._slots.total_tokens} "
                                     "API requests; try again")
            target = request.target.decode("ascii", "replace")
            if request.method == b"GET" and self._web is not None:
                reply = await self._web.get(target, grant)
            else:
                reply = await self._handler(target.split("?", 1)[0], _parse_body(body))
        except HttpError as exc:
            reply = error_reply(exc.status, str(exc))
        await _send_reply(stream, conn, reply)


async def _read_body(stream: trio.SocketStream, conn: h11.Connection) -> bytes:
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise HttpError(exc.error_status_hint, f"bad HTTP request: {exc}") from None
        if event is h11.NEED_DATA:
            data = await stream.receive_some(READ_SIZE)
            conn.receive_data(data)  # b"" marks the end of the stream for h11
            continue
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY_SIZE:
                raise HttpError(413, f"request body over {MAX_BODY_SIZE} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise trio.BrokenResourceError("client closed mid-request")


async def _send_reply(stream: trio.SocketStream, conn: h11.Connection, reply: Reply) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return  # the request was so broken that h11 cannot even answer it
    if isinstance(reply, JsonReply):
        payload = json.dumps(reply.value).encode()
        await _send(stream, conn, h11.Response(status_code=reply.status, headers=[
            ("content-type", "application/json"), ("content-length", str(len(payload))),
            ("connection", "close")]))
        await _send(stream, conn, h11.Data(data=payload))
    elif isinstance(reply, BytesReply):
        await _send(stream, conn, h11.Response(status_code=reply.status, headers=[
            ("content-type", reply.content_type), ("content-length", str(len(reply.body))),
            ("connection", "close"), *reply.headers]))
        await _send(stream, conn, h11.Data(data=reply.body))
    else:
        await _send(stream, conn, h11.Response(status_code=200, headers=[
            ("content-type", reply.content_type), ("connection", "close"), *reply.headers]))

        async def send(chunk: bytes) -> None:
            if chunk:
                await _send(stream, conn, h11.Data(data=chunk))

        await reply.produce(send)
    await _send(stream, conn, h11.EndOfMessage())


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
