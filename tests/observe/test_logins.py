"""One-time dashboard login tokens and the sessions they turn into (a clock passed in)."""

from __future__ import annotations

import trio
from daemons import http_exchange
from prometheus_client import CollectorRegistry

from blockmesh.daemon.http import HttpServer, JsonReply, Reply
from blockmesh.observe.logins import MAX_LOGINS, MAX_SESSIONS, WebLogins
from blockmesh.observe.web import WebApi

TOKEN = "api-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_login_token_works_once_and_gives_a_session() -> None:
    logins = WebLogins(Clock())
    token = logins.issue_login()
    session = logins.redeem(token)
    assert session is not None and session != token
    assert logins.session_valid(session)
    assert logins.redeem(token) is None  # dead after its one use
    assert not logins.session_valid(token)  # a login token is no session


def test_tokens_and_sessions_expire() -> None:
    clock = Clock()
    logins = WebLogins(clock, login_ttl=10, session_ttl=100)
    late = logins.issue_login()
    clock.now += 10
    assert logins.redeem(late) is None
    session = logins.redeem(logins.issue_login())
    assert session is not None
    clock.now += 99
    assert logins.session_valid(session)
    clock.now += 1
    assert not logins.session_valid(session)


def test_unknown_values_are_refused() -> None:
    logins = WebLogins(Clock())
    assert logins.redeem("") is None
    assert logins.redeem("x" * 43) is None
    assert not logins.session_valid("")


def test_tables_are_bounded_oldest_first() -> None:
    logins = WebLogins(Clock())
    tokens = [logins.issue_login() for _ in range(MAX_LOGINS + 1)]
    assert logins.redeem(tokens[0]) is None  # pushed out by the newest
    assert logins.redeem(tokens[-1]) is not None
    sessions = [logins.redeem(logins.issue_login()) for _ in range(MAX_SESSIONS + 1)]
    assert all(s is not None for s in sessions)
    assert not logins.session_valid(sessions[0])  # type: ignore[arg-type]
    assert logins.session_valid(sessions[-1])  # type: ignore[arg-type]


def test_checking_a_login_token_does_not_spend_it() -> None:
    clock = Clock()
    logins = WebLogins(clock, login_ttl=10)
    token = logins.issue_login()
    assert logins.login_valid(token) and logins.login_valid(token)
    assert logins.redeem(token) is not None
    assert not logins.login_valid(token)
    late = logins.issue_login()
    clock.now += 10
    assert not logins.login_valid(late) and logins.redeem(late) is None


async def test_a_login_answered_503_busy_can_be_retried() -> None:
    """Over a real socket: while the API's only request slot is taken, the login link gets
    503; once the slot is free, the same link logs in (it was not spent on the 503)."""
    release, entered = trio.Event(), trio.Event()

    async def slow(path: str, body: dict) -> Reply:
        entered.set()
        await release.wait()
        return JsonReply({"done": True})

    logins = WebLogins()
    web = WebApi(None, CollectorRegistry(), logins)  # type: ignore[arg-type]  # login only
    server = HttpServer(slow, TOKEN, max_requests=1, web=web)
    token = logins.issue_login()
    login = f"GET /dashboard?login={token} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve, "127.0.0.1", 0)
            post = (f"POST /api/v0/id HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
                    "\r\nContent-Length: 2\r\n\r\n{}").encode()
            answered = trio.Event()

            async def slow_post() -> None:
                await http_exchange(port, post)
                answered.set()

            nursery.start_soon(slow_post)
            await entered.wait()
            busy = await http_exchange(port, login)
            assert busy.startswith(b"HTTP/1.1 503 ")
            release.set()
            await answered.wait()  # its slot is free once its answer is out
            served = await http_exchange(port, login)
            assert served.startswith(b"HTTP/1.1 303 ")
            assert b"set-cookie: blockmesh_session" in served
            again = await http_exchange(port, login)
            assert again.startswith(b"HTTP/1.1 403 ")  # spent by the served one
            nursery.cancel_scope.cancel()

