"""`<repo>/api`: where a running daemon's control API listens, and the token it demands.

The file is the rendezvous between one repo's daemon and the CLI, so daemons on different repos
never meet. It carries a random bearer token and is readable by its owner only: the API can read
and write files as the daemon's user (add, put and import by path, get to a path), so another
local account that can reach 127.0.0.1 must not be able to use it. A daemon killed without
cleanup leaves the file behind; a failed connect to its address tells the CLI it is stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

from blockmesh.errors import BlockmeshError, DecodeError

API_FILE = "api"
LOCK_FILE = "daemon.lock"
# The file holds one short JSON object; anything longer is not ours.
MAX_API_FILE_SIZE = 4096
PROBE_TIMEOUT = 1.0
_FILE_MODE = 0o600


class DaemonRunning(BlockmeshError):
    """The repo is held by a running daemon, so this command must not open it directly."""


class DaemonNotRunning(BlockmeshError):
    """The command talks to the network, which only a running daemon can do."""


@dataclass(frozen=True)
class ApiAddress:
    host: str
    port: int
    token: str

    @property
    def multiaddr(self) -> str:
        return f"/ip4/{self.host}/tcp/{self.port}"

    @classmethod
    def fresh(cls, host: str, port: int) -> ApiAddress:
        return cls(host, port, secrets.token_urlsafe(32))


def api_path(repo: Path) -> Path:
    return repo / API_FILE


def write_api_file(repo: Path, address: ApiAddress) -> None:
    """Write atomically with owner-only permissions, so a reader never sees half a file."""
    # A fresh name opened with O_EXCL: the mode is set at creation and nothing already there
    # (a left-over file, a symlink) is reused.
    tmp = repo / f".{API_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _FILE_MODE)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump({"address": address.multiaddr, "token": address.token}, handle)
        os.replace(tmp, api_path(repo))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_api_file(repo: Path, address: ApiAddress) -> None:
    """Remove the file only if it is still ours (a newer daemon may have replaced it)."""
    with contextlib.suppress(OSError, DecodeError):
        current = read_api_file(repo)
        if current == address:
            api_path(repo).unlink()


def read_api_file(repo: Path) -> ApiAddress | None:
    try:
        with open(api_path(repo), "rb") as handle:
            raw = handle.read(MAX_API_FILE_SIZE + 1)
    except FileNotFoundError:
        return None
    if len(raw) > MAX_API_FILE_SIZE:
        raise DecodeError(f"{api_path(repo)} is too large to be an API address file")
    try:
        doc = json.loads(raw)
        parts = str(doc["address"]).split("/")
        token = doc["token"]
        if len(parts) != 5 or parts[1] != "ip4" or parts[3] != "tcp" or not isinstance(token, str):
            raise ValueError("not /ip4/<host>/tcp/<port>")
        return ApiAddress(parts[2], int(parts[4]), token)
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"{api_path(repo)} is not a valid API address file: {exc}") from None


def is_live(address: ApiAddress) -> bool:
    """A daemon answers on the address: connect and hang up (a stale file refuses)."""
    try:
        with socket.create_connection((address.host, address.port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False
