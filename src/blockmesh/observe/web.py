"""The daemon's GET routes beside the POST API: the dashboard, its live events, and /metrics.

Who may GET (decided from the request head, before the request takes a slot; see
docs/security.md):
- a request with the API's bearer token (Prometheus sends it from `credentials_file`);
- a browser with a session cookie of this daemon, unless the browser says the request comes
  from another page (`Sec-Fetch-Site` other than same-origin or none): a page the gateway serves
  on another port of 127.0.0.1 is same-site and would otherwise ride on the cookie;
- `/dashboard?login=<one-time token>`, which sets the cookie and redirects to the bare URL.
  The token is checked with the head but spent only when the request is served, so a `503`
  (every request slot busy) leaves the link good for a retry.

Everything here only reads; no GET changes the node. Live updates are server-sent events: a
snapshot a second, on at most MAX_EVENT_STREAMS connections at once, each ended after
EVENT_STREAM_LIFETIME (the browser's EventSource reconnects by itself).
"""

from __future__ import annotations

import json
import urllib.parse
from importlib import resources
from typing import TYPE_CHECKING, Any

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from blockmesh.daemon.http import BytesReply, HttpError, JsonReply, Reply, Send, StreamReply
from blockmesh.observe.logins import WebLogins

if TYPE_CHECKING:
    from blockmesh.observe.observer import Observer

EVENT_INTERVAL = 1.0
MAX_EVENT_STREAMS = 8
EVENT_STREAM_LIFETIME = 600.0
#: Static files of the page, by URL path.
STATIC = {
    "/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/dashboard/style.css": ("style.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = (
    ("content-security-policy",
     "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
     "form-action 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
)
_BROWSER_SITES = (b"same-origin", b"none")
_USED_LOGIN = ("this login link was used already or has expired: run `blockmesh dashboard` "
               "for a new one")

BEARER = "bearer"
SESSION = "session"
LOGIN = "login"


class WebApi:
    """GET routes (`authorise`, `get`) and the POST routes that go with them (`routes`)."""

    def __init__(self, observer: Observer, registry: CollectorRegistry,
                 logins: WebLogins | None = None) -> None:
        self.observer = observer
        self.registry = registry
        self.logins = logins or WebLogins()
        self.cookie = "blockmesh_session"
        self._streams = 0  # event streams open now
        self.routes = {"dashboard/login": self.login, "observe/snapshot": self.snapshot}

    def listening_on(self, port: int) -> None:
        """Cookies ignore ports: daemons of different repos on one host need their own name."""
        self.cookie = f"blockmesh_session_{port}"

    # -- POST routes (bearer token, through the API's handler) -----------------------------------
    async def login(self, body: dict[str, Any]) -> Reply:
        """A one-time login token for `blockmesh dashboard`'s URL."""
        return JsonReply({"token": self.logins.issue_login(), "path": "/dashboard",
                          "expires_in": self.logins.login_ttl})

    async def snapshot(self, body: dict[str, Any]) -> Reply:
        return JsonReply(await self.observer.snapshot())

    # -- GET -----------------------------------------------------------------------------------
    def authorise(self, request: h11.Request, bearer_ok: bool) -> object:
        if bearer_ok:
            return BEARER
        path, query = _split(request.target.decode("ascii", "replace"))
        headers = dict(request.headers)
        if path == "/dashboard" and "login" in query:
            # Checked here, spent in `get`: only once the request is actually served (a 503
            # busy answer, or a client gone before its turn, leaves the link usable).
            if not self.logins.login_valid(query["login"]):
                raise HttpError(403, _USED_LOGIN)
            return (LOGIN, query["login"])
        session = _cookie(headers.get(b"cookie", b""), self.cookie)
        if session is not None and self.logins.session_valid(session):
            site = headers.get(b"sec-fetch-site")
            if site is not None and site not in _BROWSER_SITES:
                raise HttpError(403, "the dashboard answers its own pages only")
            return SESSION
        raise HttpError(403, "missing or wrong API token: run `blockmesh dashboard` for a "
                             "login link, or send the token from <repo>/api as a bearer token")

    async def get(self, target: str, grant: object) -> Reply:
        path, _ = _split(target)
        if isinstance(grant, tuple) and grant[0] == LOGIN:
            session = self.logins.redeem(grant[1])
            if session is None:  # another request with the same link was served meanwhile
                raise HttpError(403, _USED_LOGIN)
            cookie = (f"{self.cookie}={session}; HttpOnly; SameSite=Strict; Path=/; "
                      f"Max-Age={int(self.logins.session_ttl)}")
            return BytesReply(b"", "text/plain", 303, (
                ("location", "/dashboard"), ("set-cookie", cookie), *SECURITY_HEADERS))
        if path == "/metrics":
            return BytesReply(generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path == "/events":
            return self._events()
        if path == "/dashboard/":
            path = "/dashboard"
        static = STATIC.get(path)
        if static is None:
            raise HttpError(404, f"no page {path}")
        name, content_type = static
        body = resources.files("blockmesh.observe").joinpath("static", name).read_bytes()
        return BytesReply(body, content_type, headers=SECURITY_HEADERS)

    def _events(self) -> Reply:
        if self._streams >= MAX_EVENT_STREAMS:
            raise HttpError(503, f"{MAX_EVENT_STREAMS} event streams are open already")

        async def produce(send: Send) -> None:
            if self._streams >= MAX_EVENT_STREAMS:  # others opened meanwhile
                return
            self._streams += 1
            try:
                await send(b"retry: 2000\n\n")
                with trio.move_on_after(EVENT_STREAM_LIFETIME):
                    while True:
                        snapshot = await self.observer.snapshot()
                        await send(b"event: snapshot\ndata: " + json.dumps(snapshot).encode()
                                   + b"\n\n")
                        await trio.sleep(EVENT_INTERVAL)
            finally:
                self._streams -= 1

        return StreamReply(produce, "text/event-stream",
                           (("cache-control", "no-store"), ("x-content-type-options", "nosniff")))


def _split(target: str) -> tuple[str, dict[str, str]]:
    path, _, query = target.partition("?")
    try:
        return path, dict(urllib.parse.parse_qsl(query, max_num_fields=8))
    except ValueError as exc:
        raise HttpError(400, f"bad query string: {exc}") from None


def _cookie(header: bytes, name: str) -> str | None:
    for part in header.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None
