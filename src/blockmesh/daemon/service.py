"""`blockmesh daemon`: run a Node on the repo and serve the control API until a signal.

The daemon holds `<repo>/daemon.lock` for its whole life, so a second daemon on the same repo
fails at once instead of fighting over the identity and the API file. The API address is
published only once both the node and the API listen, and withdrawn on the way out, whatever
ends the daemon (SIGINT, SIGTERM or an error).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import trio

from blockmesh.daemon.apifile import (
    LOCK_FILE,
    ApiAddress,
    DaemonRunning,
    remove_api_file,
    write_api_file,
)
from blockmesh.daemon.cluster_routes import ClusterApi
from blockmesh.daemon.http import HttpServer
from blockmesh.daemon.member import Member
from blockmesh.daemon.membership import load_membership
from blockmesh.daemon.routes import Api
from blockmesh.daemon.routing_routes import RoutingApi
from blockmesh.daemon.swarm_routes import ConnectivityApi
from blockmesh.data.gateway.service import start_gateway
from blockmesh.data.mdns.service import MdnsService
from blockmesh.data.net import NetConfig
from blockmesh.data.net.bandwidth import limits_from_config
from blockmesh.data.node import Node
from blockmesh.data.node.node import DEFAULT_STALL_TIMEOUT
from blockmesh.data.store.repo import REPO_MODE, Repo
from blockmesh.observe.metrics import daemon_registry
from blockmesh.observe.observer import Observer
from blockmesh.observe.web import WebApi

logger = logging.getLogger(__name__)

API_HOST = "127.0.0.1"


@contextlib.contextmanager
def hold_daemon_lock(repo: Path) -> Iterator[None]:
    with open(repo / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DaemonRunning(f"another daemon already runs on the repo {repo}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def warn_if_repo_is_open(path: Path) -> None:
    """A repo made before `init` created it owner-only may still be open to other users; the
    key and API files are owner-only either way, so say so rather than change modes unasked."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        logger.warning("the repo %s is open to other users (mode %o); run: chmod %o %s",
                       path, mode, REPO_MODE, path)


async def run_daemon(repo: Repo, listen_addrs: tuple[str, ...], *, api_port: int = 0,
                     stall_timeout: float = DEFAULT_STALL_TIMEOUT,
                     gateway_listen: str | None = None,
                     ready: Callable[[Node, ApiAddress, str], None] | None = None) -> None:
    """Serve until SIGINT or SIGTERM; `ready` is told once the API address is published,
    with the gateway's banner line. `gateway_listen` overrides `[gateway] listen`."""
    warn_if_repo_is_open(repo.path)
    membership = load_membership(repo.path)
    node = Node(repo, net_config=NetConfig(
        listen_addrs=listen_addrs, bandwidth=limits_from_config(repo.config.bandwidth)))
    api = Api(node, default_stall_timeout=stall_timeout)
    api.routes.update(ConnectivityApi(node).routes)
    api.routes.update(RoutingApi(node).routes)
    member = None
    if membership is not None:
        member = Member(node, *membership)
        api.routes.update(ClusterApi(member).routes)
    # One registry for /metrics; the gateway registers its own collectors in it.
    observer = Observer(node, member)
    registry = daemon_registry(observer, member.registry if member is not None else None)
    web = WebApi(observer, registry)
    api.routes.update(web.routes)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with node.run(), trio.open_nursery() as nursery:
            if member is not None:  # both planes: the replica and the pin tracker
                await nursery.start(member.run)
            await nursery.start(observer.run)
            discovery = repo.config.discovery
            if discovery.mdns:  # off by default: then no multicast socket is ever opened
                await nursery.start(MdnsService(node.host, interval=discovery.interval,
                                                interfaces=discovery.interfaces).run)
            probe = ApiAddress.fresh(API_HOST, 0)
            server = HttpServer(api.handle, probe.token, web=web)
            port = await nursery.start(server.serve, API_HOST, api_port)
            api.gateway, gateway_line = await start_gateway(
                nursery, repo, node, repo.config.gateway.listen if gateway_listen is None
                else gateway_listen, registry)
            web.listening_on(port)
            address = ApiAddress(API_HOST, port, probe.token)
            write_api_file(repo.path, address)
            try:
                if ready is not None:
                    ready(node, address, gateway_line)
                async for signum in signals:
                    logger.info("received %s, shutting down", signal.Signals(signum).name)
                    break
            finally:
                remove_api_file(repo.path, address)
                nursery.cancel_scope.cancel()
