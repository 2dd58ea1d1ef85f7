"""A reference peer in a child process that answers one JSON line per request (kubo, Helia).

Both reference peers run outside this process (kubo as a C library that must not share our
address space, Helia on a Node 22 runtime), and both must never hang a test: every reply is
awaited with a deadline, and a child that overruns it, talks garbage or dies is killed by PID
and reported with the tail of its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import time
from typing import Any, ClassVar

from blockmesh.errors import BlockmeshError

CLOSE_TIMEOUT_S = 10.0


class JsonLineChild:
    """The plumbing; a subclass names the peer and its error types and starts the child."""

    peer_name: ClassVar[str]
    error: ClassVar[type[BlockmeshError]]
    timeout_error: ClassVar[type[BlockmeshError]]
    #: Replies are CIDs, addresses and counts: a longer line is not the child talking.
    max_reply: ClassVar[int] = 1 << 20

    _proc: subprocess.Popen[bytes] | None = None
    _buffer = b""
    pid = 0

    def _spawn(self, command: list[str], **popen: Any) -> None:
        self._buffer = b""
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      **popen)
        self.pid = self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _request(self, op: str, timeout: float, **args: Any) -> Any:
        """Send one request and return its result; a reply with ok=false raises `error`."""
        if not self.running:
            raise self.error(f"{self.peer_name} child {self.pid} is not running; cannot {op}")
        self._send({"op": op, **args})
        reply = self._read_reply(timeout, op)
        if not reply.get("ok"):
            raise self._failed(op, reply)
        return reply.get("result")

    def _failed(self, op: str, reply: dict[str, Any]) -> BlockmeshError:
        return self.error(f"{self.peer_name} {op} failed: {reply.get('error')}")

    def _send(self, request: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise self._died(str(request.get("op"))) from exc

    def _read_reply(self, timeout: float, op: str) -> dict[str, Any]:
        """Read one reply line, killing the child if it does not come within `timeout`."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                if len(self._buffer) > self.max_reply:
                    self._kill()
                    raise self.error(f"{self.peer_name} {op}: reply longer than "
                                     f"{self.max_reply} bytes")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self._kill()
                    raise self.timeout_error(f"{self.peer_name} {op} did not finish within "
                                             f"{timeout:g} s; child {self.pid} killed")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._died(op)
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._kill()
            raise self.error(f"{self.peer_name} {op}: the child sent a line that is not JSON: "
                             f"{exc}") from exc
        if not isinstance(reply, dict):
            self._kill()
            raise self.error(f"{self.peer_name} {op}: the child sent {type(reply).__name__}, "
                             "not an object")
        return reply

    def _died(self, op: str) -> BlockmeshError:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(timeout=CLOSE_TIMEOUT_S)
        tail = self._tail()
        self._kill()
        return self.error(f"{self.peer_name} child {self.pid} exited ({code}) during {op}{tail}")

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

    def _tail(self) -> str:
        """The end of the child's log, appended to errors (none by default)."""
        return ""
