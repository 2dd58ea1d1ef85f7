"""`blockmesh daemon` as a child process: the one way the library and the tests start one.

`LocalMembers` (the demo, benchmarks, tests), the gateway and DHT benchmarks and the tests'
own helper all run daemons in child processes; this module is what they share, so that every
one of them gets the same guarantees:

- **Its own process group.** The daemon leads a new session, so stopping it signals the group
  by the daemon's PID: whatever it started (under a command prefix such as `ip netns exec NS`,
  say) goes with it, nothing else is touched, and a Ctrl-C meant for the parent does not reach
  the daemons behind the parent's back (the parent stops them, in order).
- **Bounded waits.** Starting waits for the "Daemon is ready" line (and the API file the daemon
  writes before it) until a deadline; stopping waits STOP_TIMEOUT after its signal, then
  SIGKILLs the group and waits again.
- **One sweep.** Right after the daemon is reaped, the group gets one SIGKILL, for anything
  left in it; once only, because the group's id is the daemon's PID, which the kernel may reuse
  once the group is empty. Stopping again returns the exit code and signals nothing.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from blockmesh.daemon.apifile import read_api_file
from blockmesh.errors import BlockmeshError

BIN = [sys.executable, "-m", "blockmesh.cli"]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
READY = b"Daemon is ready"
#: How much of the daemon's log a failed start quotes.
LOG_TAIL = 2000


class DaemonStartError(BlockmeshError):
    """The daemon exited, or was not ready by its deadline, before it said it was ready."""


class DaemonProcess:
    """One `blockmesh daemon ARGS` on `repo`, in its own process group.

    `prefix` runs it under a command (`ip netns exec NS`); its stderr is appended to `log`
    (none: discarded).
    """

    def __init__(self, repo: Path, args: Sequence[str], *, prefix: Sequence[str] = (),
                 log: Path | None = None) -> None:
        self.repo = repo
        self.log = log
        #: The lines it printed up to "Daemon is ready" (its listen addresses among them).
        self.banner: list[str] = []
        self._swept = False
        env = dict(os.environ, BLOCKMESH_PATH=str(repo))
        command = [*prefix, *BIN, "daemon", *args]
        with open(log, "ab") if log is not None else open(os.devnull, "wb") as stderr:
            # Unbuffered, so that readline never pulls a later line out of the selector's sight.
            self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                         stderr=stderr, bufsize=0, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, deadline: float | None = None) -> None:
        """Read its output until "Daemon is ready" or `deadline` (time.monotonic(); default
        START_TIMEOUT from now); on failure the daemon is killed and DaemonStartError says why,
        quoting its log."""
        try:
            self._read_until_ready(time.monotonic() + START_TIMEOUT if deadline is None
                                   else deadline)
        except BaseException:
            self.stop(signal.SIGKILL)
            raise

    def _read_until_ready(self, deadline: float) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while selector.select(max(0.0, deadline - time.monotonic())):
                line = stdout.readline()
                if not line:
                    code = self.stop(signal.SIGKILL)
                    raise DaemonStartError(f"daemon {self.pid} on {self.repo} exited with "
                                           f"{code}{self._log_tail()}")
                self.banner.append(line.decode(errors="replace").strip())
                if line.strip() == READY:
                    if read_api_file(self.repo) is None:  # written before the line
                        raise DaemonStartError(f"daemon on {self.repo} ready without an API "
                                               "file (another daemon's repo?)")
                    return
        raise DaemonStartError(f"daemon {self.pid} on {self.repo} not ready in time"
                               f"{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return ": " + self.log.read_text(errors="replace")[-LOG_TAIL:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal its process group (SIGKILL after `timeout`), reap it, sweep the group once;
        its exit code. Stopping again only returns the code."""
        if self._swept:
            assert self.proc.returncode is not None
            return self.proc.returncode
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                return self.proc.wait(timeout)
        finally:
            self._swept = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def start_daemon(repo: Path, args: Sequence[str], *, prefix: Sequence[str] = (),
                 log: Path | None = None, deadline: float | None = None) -> DaemonProcess:
    """A daemon started and ready (see `DaemonProcess`), or DaemonStartError."""
    daemon = DaemonProcess(repo, args, prefix=prefix, log=log)
    daemon.wait_ready(deadline)
    return daemon
