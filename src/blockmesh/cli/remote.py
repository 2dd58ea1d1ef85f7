"""Finding the repo's running daemon, for the commands that go through it: the data commands
(see `invoke.py`), and the network ones, which only a daemon can run."""

from __future__ import annotations

from blockmesh.daemon import DaemonClient, DaemonNotRunning, find_daemon
from blockmesh.data.store.repo import default_path


def running_daemon() -> DaemonClient | None:
    return find_daemon(default_path())


def require_daemon(command: str) -> DaemonClient:
    client = running_daemon()
    if client is None:
        raise DaemonNotRunning(f"`blockmesh {command}` needs a running daemon on "
                            f"{default_path()}: start one with `blockmesh daemon`")
    return client
