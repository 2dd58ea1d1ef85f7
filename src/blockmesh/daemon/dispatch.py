"""A table of API routes and the one way any of them is called.

The daemon's HTTP server and the CLI's in-process invoker both go through `Routes.handle`, so a
command answers, and fails, the same whether a daemon runs or not: expected failures become
`{"error": …}` with a status that says whose fault it was (400 bad input, 403 refused, 404
absent, 409 state; the node's routes add 504 stalled and 502 network).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from blockmesh.daemon.http import HttpError, Reply, error_reply
from blockmesh.data.dag import exporter
from blockmesh.data.store.repo import RepoBusy
from blockmesh.errors import BlockmeshError, DecodeError, Forbidden, NotFound, UnsupportedError

PREFIX = "/api/v0/"

Route = Callable[[dict[str, Any]], Awaitable[Reply]]


def base_status(exc: BlockmeshError) -> int:
    if isinstance(exc, DecodeError):
        return 400
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, UnsupportedError | exporter.ExportError | RepoBusy):
        return 409
    return 500


class Routes:
    """`routes` maps a command (`block/put`) to its handler, which takes the request body."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}

    def status(self, exc: BlockmeshError) -> int:
        return base_status(exc)

    async def handle(self, path: str, body: dict[str, Any]) -> Reply:
        route = self.routes.get(path[len(PREFIX):]) if path.startswith(PREFIX) else None
        if route is None:
            return error_reply(404, f"no API route {path}")
        try:
            return await route(body)
        except HttpError as exc:
            return error_reply(exc.status, str(exc))
        except BlockmeshError as exc:
            return error_reply(self.status(exc), str(exc))
        except OSError as exc:
            return error_reply(500, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
