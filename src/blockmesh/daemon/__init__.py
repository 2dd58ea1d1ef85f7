"""The blockmesh daemon: a long-running Node plus the local control API the CLI talks to.

`service.run_daemon` owns the lifecycle; `http` is a small trio + h11 server; `repo_routes`
defines the data commands on a repo (the CLI also runs them in-process when no daemon runs) and
`routes` adds the network's on the Node, both dispatched by `dispatch` with bodies checked by
`fields`; `client` is the CLI's side; `apifile` is how the two find each other.
"""

from blockmesh.daemon.apifile import API_FILE, ApiAddress, DaemonNotRunning, DaemonRunning
from blockmesh.daemon.client import ApiError, DaemonClient, find_daemon

__all__ = ["API_FILE", "ApiAddress", "ApiError", "DaemonClient", "DaemonNotRunning",
           "DaemonRunning", "find_daemon"]
