"""The gateway's HTTP/1.1 adapter on trio + h11: GET and HEAD, keep-alive, bounded heads,
streamed bodies.

Everything about *what* to answer lives in `handler.Gateway`; this module only moves bytes.
At most `max_connections` connections are served at once (more wait in the kernel's accept
queue), so every read that holds a slot is bounded: a request head in size (MAX_HEAD) and in
time (HEAD_TIMEOUT for the whole head, also the keep-alive idle limit), a request body (which
GET and HEAD never need) in size (MAX_BODY: 413) and in time (BODY_TIMEOUT for the whole body:
408), read before any content is looked up. A request h11 cannot parse, head or body, is
answered 400 and its connection closed.

Bodies go out with `send_all`, which returns only once the socket took the bytes, so a slow
client slows the DAG walk rather than growing a buffer; a client that disconnects mid-stream
makes the next send fail, which closes the body generator and the request's Bitswap session in
`finally`: nothing is left behind. Counters and a latency histogram go to the Prometheus
registry the daemon passes in.
"""

from __future__ import annotations

import contextlib
import logging
import time

import h11
import trio
from prometheus_client import CollectorRegistry, Counter, Histogram

from blockmesh.data.gateway.errors import GatewayError
from blockmesh.data.gateway.handler import Gateway, Request, Response, error_response
from blockmesh.errors import BlockmeshError

logger = logging.getLogger(__name__)

MAX_HEAD = 16 << 10
HEAD_TIMEOUT = 10.0
MAX_BODY = 16 << 10  # a GET or HEAD body means nothing here; a small one is read and dropped
BODY_TIMEOUT = 10.0
LINGER = 1.0
SEND_TIMEOUT = 60.0
READ_SIZE = 64 << 10
FLUSH_SIZE = 64 << 10
MAX_CONNECTIONS = 256
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                    30, 60)


class _Refused(GatewayError):
    """A request the adapter refuses before the gateway sees it (400, 408, 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class GatewayMetrics:
    """`blockmesh_gateway_requests_total{method,status}` and the time to the end of each
    response, `blockmesh_gateway_request_duration_seconds{method}`."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter("blockmesh_gateway_requests", "Gateway HTTP requests answered",
                                ["method", "status"], registry=registry)
        self.duration = Histogram("blockmesh_gateway_request_duration_seconds",
                                  "Gateway request latency, to the last byte of the response",
                                  ["method"], buckets=_LATENCY_BUCKETS, registry=registry)


class GatewayServer:
    def __init__(self, gateway: Gateway, *, registry: CollectorRegistry | None = None,
                 max_connections: int = MAX_CONNECTIONS,
                 head_timeout: float = HEAD_TIMEOUT, body_timeout: float = BODY_TIMEOUT,
                 max_body: int = MAX_BODY) -> None:
        self.gateway = gateway
        self.metrics = GatewayMetrics(registry)
        self._slots = trio.CapacityLimiter(max_connections)
        self._head_timeout = head_timeout
        self._body_timeout = body_timeout
        self._max_body = max_body
        self.active_streams = 0  # bodies being sent right now (tests check it returns to 0)

    async def serve(self, host: str, port: int,
                    *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on host:port (0 picks a free port); reports the bound port once listening."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            task_status.started(bound)

    async def _connection(self, stream: trio.SocketStream) -> None:
        async with self._slots:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
            try:
                while True:
                    request = await self._read_head(stream, conn)
                    if request is None:
                        return
                    await self._exchange(stream, conn, request)
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    try:
                        conn.start_next_cycle()
                    except h11.LocalProtocolError:
                        return
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
                    h11.ProtocolError) as exc:
                logger.debug("gateway client went away: %s", exc)
            except Exception:  # one broken request must not take the daemon down
                logger.exception("gateway request failed")
            finally:
                with contextlib.suppress(
                        trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    if conn.our_state is h11.MUST_CLOSE:
                        await _linger(stream)
                    with trio.move_on_after(1):
                        await stream.aclose()

    async def _read_head(self, stream: trio.SocketStream,
                         conn: h11.Connection) -> h11.Request | None:
        """The next request head, or None when the client closed or stayed idle too long."""
        with trio.move_on_after(self._head_timeout):
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    await self._send_error(stream, conn, exc.error_status_hint,
                                           f"bad HTTP request: {exc}")
                    return None
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(READ_SIZE)
                    conn.receive_data(data)
                    if not data and conn.their_state is h11.IDLE:
                        return None
                    continue
                if isinstance(event, h11.Request):
                    return event
                return None  # ConnectionClosed, or a body where none belongs
        return None

    async def _send_error(self, stream: trio.SocketStream, conn: h11.Connection, status: int,
                          message: str) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        await self._send_response(stream, conn, error_response(_Refused(status, message)),
                                  "GET", close=True)

    async def _exchange(self, stream: trio.SocketStream, conn: h11.Connection,
                        head: h11.Request) -> None:
        started = time.perf_counter()
        method = head.method.decode("ascii", "replace")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in head.headers}
        try:
            await self._drop_body(stream, conn, headers)
        except _Refused as exc:
            response = error_response(exc)
            close = True
        else:
            response = await self.gateway.respond(
                Request(method, head.target.decode("latin-1"), headers))
            close = False
        try:
            await self._send_response(stream, conn, response, method, close=close)
        finally:
            response.close()
            label = method if method in ("GET", "HEAD") else "other"
            self.metrics.requests.labels(label, str(response.status)).inc()
            self.metrics.duration.labels(label).observe(time.perf_counter() - started)

    async def _drop_body(self, stream: trio.SocketStream, conn: h11.Connection,
                         headers: dict[str, str]) -> None:
        """Read the request body to its end (so the connection can be reused) and drop it:
        no GET or HEAD needs one. Read before the content is looked up, so a refused request
        costs no DAG walk; `_Refused` when it is too big, too slow or malformed."""
        if int(headers.get("content-length", "0")) > self._max_body:  # h11 checked the digits
            raise _Refused(413, f"request body over {self._max_body} bytes")
        received = 0
        with trio.move_on_after(self._body_timeout) as scope:
            while conn.their_state is h11.SEND_BODY:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as exc:
                    raise _Refused(400, f"bad HTTP request body: {exc}") from None
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(READ_SIZE))
                elif isinstance(event, h11.Data):
                    received += len(event.data)
                    if received > self._max_body:
                        raise _Refused(413, f"request body over {self._max_body} bytes")
        if scope.cancelled_caught:
            raise _Refused(408, f"request body not received within {self._body_timeout:g} s")

    async def _send_response(self, stream: trio.SocketStream, conn: h11.Connection,
                             response: Response, method: str, *, close: bool) -> None:
        headers = [(k, v) for k, v in response.headers]
        if response.length is not None and response.status != 304:
            headers.append(("content-length", str(response.length)))
        elif response.body is None and method != "HEAD" and response.status != 304:
            headers.append(("content-length", "0"))
        if close:
            headers.append(("connection", "close"))
        # Bytes are gathered up to FLUSH_SIZE before a send, so a small response (a head, a
        # 1 KiB block, the end of the message) goes out in one segment, not three.
        pending = bytearray(conn.send(h11.Response(status_code=response.status,
                                                   headers=headers)))
        if response.body is not None and method != "HEAD":
            self.active_streams += 1
            try:
                async with contextlib.aclosing(response.body) as body:  # type: ignore[type-var]
                    async for chunk in body:
                        if not chunk:
                            continue
                        # a block-sized chunk goes to the socket as it is (h11 passes it
                        # through), not copied twice into `pending`; framing bytes gather
                        for piece in conn.send_with_data_passthrough(h11.Data(data=chunk)) or ():
                            if len(piece) < FLUSH_SIZE:
                                pending += piece
                                continue
                            await _send_bytes(stream, pending)
                            pending = bytearray()
                            await _send_bytes(stream, piece)
                        if len(pending) >= FLUSH_SIZE:
                            await _send_bytes(stream, pending)
                            pending = bytearray()
            except BlockmeshError as exc:
                # the status is out already: all that is left is to cut the stream short, so
                # the client sees a truncated body rather than a complete-looking one
                logger.info("gateway response for %s cut short: %s", method, exc)
                raise trio.BrokenResourceError(str(exc)) from None
            finally:
                self.active_streams -= 1
        pending += conn.send(h11.EndOfMessage())
        await _send_bytes(stream, pending)


async def _linger(stream: trio.SocketStream) -> None:
    """After a refusal sent with `connection: close`: end our side, then read and drop what
    the client still sends for up to LINGER seconds, so closing with unread bytes does not
    reset the connection before the client has read the refusal."""
    await stream.send_eof()
    with trio.move_on_after(LINGER):
        while await stream.receive_some(READ_SIZE):
            pass


async def _send_bytes(stream: trio.SocketStream, data: bytes | bytearray) -> None:
    if data:
        with trio.fail_after(SEND_TIMEOUT):
            await stream.send_all(data)
