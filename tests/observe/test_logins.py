"""One-time dashboard login tokens and the sessions they turn into (a clock passed in)."""

from __future__ import annotations

from blockmesh.observe.logins import MAX_LOGINS, MAX_SESSIONS, WebLogins


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
