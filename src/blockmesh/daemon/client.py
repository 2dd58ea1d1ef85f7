"""The CLI's side of the control API: find the repo's daemon and call it over plain HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from blockmesh.daemon.apifile import ApiAddress, is_live, read_api_file
from blockmesh.errors import BlockmeshError

# Quick calls answer at once; a silent daemon for this long is broken or gone.
CALL_TIMEOUT = 60.0
# Fetch progress lines come every second, so this much silence means the daemon is stuck.
STREAM_IDLE_TIMEOUT = 30.0
MAX_JSON_REPLY = 64 << 20
MAX_ERROR_REPLY = 64 << 10
READ_SIZE = 256 << 10
MAX_LINE = 64 << 10


class ApiError(BlockmeshError):
    """The daemon refused or failed a call; the message is its one-line reason."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def find_daemon(repo: Path) -> DaemonClient | None:
    """The client of the daemon serving `repo`, or None when none runs (or its file is stale)."""
    address = read_api_file(repo)
    if address is None or not is_live(address):
        return None
    return DaemonClient(address)


class DaemonClient:
    def __init__(self, address: ApiAddress) -> None:
        self.address = address

    def call(self, command: str, **args: Any) -> Any:
        """One call answered with JSON."""
        with self._open(command, args, CALL_TIMEOUT) as response:
            raw = response.read(MAX_JSON_REPLY + 1)
        if len(raw) > MAX_JSON_REPLY:
            raise ApiError(f"reply to {command} is over {MAX_JSON_REPLY} bytes")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(f"daemon sent a reply to {command} that is not JSON: {exc}") from None

    def stream(self, command: str, **args: Any) -> Iterator[bytes]:
        """One call answered with a byte stream; raises ApiError if it ends early."""
        with self._open(command, args, STREAM_IDLE_TIMEOUT) as response:
            while True:
                try:
                    chunk = response.read1(READ_SIZE)
                except http.client.IncompleteRead:
                    raise ApiError(f"daemon broke off its answer to {command}") from None
                if not chunk:
                    return
                yield chunk

    def fetch(self, cid: str, stall_timeout: float | None = None,
              progress: Callable[[int], None] | None = None) -> int:
        """Make `cid` local on the daemon; returns how many blocks came from peers.
        `stall_timeout` None leaves the daemon's own default in force."""
        args: dict[str, Any] = {"cid": cid}
        if stall_timeout is not None:
            args["stall_timeout"] = stall_timeout
        with self._open("fetch", args, STREAM_IDLE_TIMEOUT) as response:
            while True:
                line = response.readline(MAX_LINE)
                if not line:
                    raise ApiError(f"daemon broke off fetching {cid}")
                try:
                    event = json.loads(line)
                except ValueError:
                    raise ApiError("daemon sent a fetch progress line that is not JSON") from None
                if "Error" in event:
                    raise ApiError(str(event["Error"]), int(event.get("Status", 0)))
                if "Fetched" in event:
                    return int(event["Fetched"])
                if progress is not None:
                    progress(int(event.get("Progress", 0)))

    def _open(self, command: str, args: dict[str, Any], timeout: float) -> _Response:
        conn = http.client.HTTPConnection(self.address.host, self.address.port, timeout=timeout)
        body = json.dumps(args).encode()
        try:
            conn.request("POST", f"/api/v0/{command}", body=body, headers={
                "Authorization": f"Bearer {self.address.token}",
                "Content-Type": "application/json"})
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ApiError(f"cannot reach the daemon at {self.address.multiaddr}: {exc}") from None
        if response.status != 200:
            raw = response.read(MAX_ERROR_REPLY)
            conn.close()
            try:
                message = str(json.loads(raw)["error"])
            except (ValueError, KeyError, TypeError):
                message = f"daemon answered {response.status} {response.reason}"
            raise ApiError(message, response.status)
        return _Response(conn, response)


class _Response:
    """An open reply that closes its connection when the `with` block ends."""

    def __init__(self, conn: http.client.HTTPConnection,
                 response: http.client.HTTPResponse) -> None:
        self._conn = conn
        self._response = response

    def __enter__(self) -> http.client.HTTPResponse:
        return self._response

    def __exit__(self, *exc: object) -> None:
        self._conn.close()
