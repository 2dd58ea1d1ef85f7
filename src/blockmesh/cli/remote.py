"""Which way a repo command goes: through the repo's running daemon, or straight to the repo.

While a daemon runs it owns the repo: it announces what is added, and its fetched-but-unpinned
blocks must not be collected under it. So a command either has an API route and uses it, or it
refuses with a one-line error instead of opening the repo behind the daemon's back.
"""

from __future__ import annotations

from blockmesh.daemon import DaemonClient, DaemonNotRunning, DaemonRunning, find_daemon
from blockmesh.data.store.repo import Repo, default_path


def running_daemon() -> DaemonClient | None:
    return find_daemon(default_path())


def require_daemon(command: str) -> DaemonClient:
    client = running_daemon()
    if client is None:
        raise DaemonNotRunning(f"`blockmesh {command}` needs a running daemon on "
                            f"{default_path()}: start one with `blockmesh daemon`")
    return client


def open_local_repo(command: str) -> Repo:
    """Open the repo for a command the API does not serve, unless a daemon holds it."""
    client = running_daemon()
    if client is not None:
        raise DaemonRunning(f"a daemon is running on {default_path()} (API "
                            f"{client.address.multiaddr}); stop it before `blockmesh {command}`")
    return Repo.open()
