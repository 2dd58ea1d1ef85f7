"""Browser logins to the dashboard: a one-time login token, exchanged for a session cookie.

A browser cannot send the API's bearer header on a page load, and the API token must not sit in
a URL (history, screen shares). So, as Jupyter does, `blockmesh dashboard` asks the daemon (with
the API token) for a login token that is good once and briefly; the page load that carries it
gets an HttpOnly session cookie instead, and the token is dead from then on. Tokens and
sessions are kept as SHA-256 digests, so a lookup reveals nothing through its timing; both
tables are bounded, the oldest entry making room for a new one. The clock is passed in.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

LOGIN_TTL = 120.0
SESSION_TTL = 12 * 3600.0
MAX_LOGINS = 32
MAX_SESSIONS = 64


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class WebLogins:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 login_ttl: float = LOGIN_TTL, session_ttl: float = SESSION_TTL) -> None:
        self._clock = clock
        self.login_ttl = login_ttl
        self.session_ttl = session_ttl
        self._logins: OrderedDict[bytes, float] = OrderedDict()  # digest -> expiry
        self._sessions: OrderedDict[bytes, float] = OrderedDict()

    def issue_login(self) -> str:
        """A fresh one-time login token."""
        token = secrets.token_urlsafe(32)
        _put(self._logins, _digest(token), self._clock() + self.login_ttl, MAX_LOGINS)
        return token

    def login_valid(self, token: str) -> bool:
        """Whether `token` is a live login token, without spending it: a request is checked
        when its head arrives but may still be refused (503 busy) before it is served, and
        only a served one may use the token up (`redeem`)."""
        key = _digest(token)
        expiry = self._logins.get(key)
        if expiry is not None and expiry <= self._clock():
            del self._logins[key]
            return False
        return expiry is not None

    def redeem(self, token: str) -> str | None:
        """A new session id for a live login token, which dies here; None for any other."""
        expiry = self._logins.pop(_digest(token), None)
        if expiry is None or expiry <= self._clock():
            return None
        session = secrets.token_urlsafe(32)
        _put(self._sessions, _digest(session), self._clock() + self.session_ttl, MAX_SESSIONS)
        return session

    def session_valid(self, session: str) -> bool:
        key = _digest(session)
        expiry = self._sessions.get(key)
        if expiry is None:
            return False
        if expiry <= self._clock():
            del self._sessions[key]
            return False
        return True


def _put(table: OrderedDict[bytes, float], key: bytes, expiry: float, limit: int) -> None:
    table[key] = expiry
    while len(table) > limit:
        table.popitem(last=False)
