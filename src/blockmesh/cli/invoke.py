"""The one way a data command runs: its API route, over HTTP when a daemon runs on the repo and
in-process on the repo when none does (kubo's arrangement).

While a daemon runs it owns the repo: it announces what is stored and its GC must see every
write, so commands go through it. Without one, `Local` runs the same handlers
(`daemon/repo_routes.py`) under trio in this process, with the request and its JSON answer
round-tripped through JSON, and failures turned into the same one-line ApiError, so the output
is the same either way. Nothing here loads the network stack.

Byte inputs reach a route as an absolute path, as `add`'s files always have. In-process a named
file is passed as it is, and standard input as `/dev/fd/N`, this process's own stdin, read as a
stream exactly as before. A daemon is given only regular files by name: it cannot read our
stdin, and opening a FIFO or a device could block it, so those are first copied into a private
temporary file (mkstemp: owner-only, removed after the call). That copy takes at most the
route's own bound plus one byte, so an oversized input still reaches the route's check (and its
one-line refusal) without the CLI holding or writing more than that; a CAR has no bound but the
disk, as when it is imported. The HTTP API thus keeps one shape (small JSON bodies,
`daemon/http.py`'s 64 KiB) rather than growing a second, streaming one for three commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import trio

from blockmesh.cli.remote import running_daemon
from blockmesh.daemon import ApiError, DaemonClient
from blockmesh.daemon.dispatch import PREFIX
from blockmesh.daemon.http import JsonReply
from blockmesh.daemon.repo_routes import RepoApi
from blockmesh.data.store.repo import Repo

Write = Callable[[bytes], None]
Progress = Callable[[int], None]
SPOOL_CHUNK = 1 << 20


class Remote:
    """Calls go to the repo's daemon."""

    def __init__(self, client: DaemonClient) -> None:
        self.client = client

    def call(self, command: str, args: dict[str, Any],
             progress: Progress | None = None) -> Any:
        return self.client.call(command, **args)  # the daemon reports no progress

    def stream(self, command: str, args: dict[str, Any], write: Write) -> None:
        for chunk in self.client.stream(command, **args):
            write(chunk)


class Local:
    """Calls run the repo's route handlers in this process."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def call(self, command: str, args: dict[str, Any],
             progress: Progress | None = None) -> Any:
        reply = self._run(command, args, progress, None)
        return json.loads(json.dumps(reply.value))

    def stream(self, command: str, args: dict[str, Any], write: Write) -> None:
        self._run(command, args, None, write)

    def _run(self, command: str, args: dict[str, Any], progress: Progress | None,
             write: Write | None) -> JsonReply:
        api = RepoApi(self.repo, progress=progress)
        body = json.loads(json.dumps(args))

        async def run() -> JsonReply:
            reply = await api.handle(PREFIX + command, body)
            if isinstance(reply, JsonReply):
                if reply.status != 200:
                    raise ApiError(str(reply.value["error"]), reply.status)
                if write is not None:
                    raise ApiError(f"{command} answered JSON where bytes were expected")
                return reply
            if write is None:
                raise ApiError(f"{command} answered bytes where JSON was expected")

            async def send(chunk: bytes) -> None:
                write(chunk)

            await reply.produce(send)
            return JsonReply(None)

        return trio.run(run)


Invoker = Remote | Local


@contextlib.contextmanager
def open_api() -> Iterator[Invoker]:
    """The daemon's API if one runs on the repo, else the repo's routes in-process."""
    client = running_daemon()
    if client is not None:
        yield Remote(client)
        return
    with Repo.open() as repo:
        yield Local(repo)


@contextlib.contextmanager
def input_path(api: Invoker, name: str, bound: int | None) -> Iterator[str]:
    """An absolute path the route can read `name` ("-" for stdin) at (see the module's
    docstring); `bound` is the most the route reads, None for all."""
    local = isinstance(api, Local)
    # To a daemon, only regular files go by name: a FIFO or a device could block it on open.
    if name != "-" and (local or stat.S_ISREG(os.stat(name).st_mode)):
        yield os.path.abspath(name)
        return
    stdin_fd = _stdin_fd() if local else None
    if stdin_fd is not None:
        yield f"/dev/fd/{stdin_fd}"
        return
    spool_fd, spool = tempfile.mkstemp(prefix="blockmesh-input-")
    try:
        with os.fdopen(spool_fd, "wb") as out, _open_input(name) as source:
            if bound is None:
                shutil.copyfileobj(source, out, SPOOL_CHUNK)
            else:
                left = bound + 1
                while left > 0:
                    chunk = source.read(min(left, SPOOL_CHUNK))
                    if not chunk:
                        break
                    out.write(chunk)
                    left -= len(chunk)
        yield spool
    finally:
        os.unlink(spool)


@contextlib.contextmanager
def _open_input(name: str) -> Iterator[BinaryIO]:
    if name == "-":
        yield sys.stdin.buffer
        return
    with open(name, "rb") as source:
        yield source


def _stdin_fd() -> int | None:
    """Stdin's descriptor if opening /dev/fd/N reads it (not for a socket, or a stdin that
    has no descriptor at all); otherwise it is spooled."""
    try:
        fd = sys.stdin.fileno()
        return None if stat.S_ISSOCK(os.fstat(fd).st_mode) else fd
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


def write_stdout(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
