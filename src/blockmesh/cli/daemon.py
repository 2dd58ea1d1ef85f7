"""`blockmesh daemon`: the long-running node behind the P2P commands."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click
import trio

from blockmesh.daemon.apifile import ApiAddress
from blockmesh.data.gateway.address import parse_listen
from blockmesh.data.store.repo import Repo

if TYPE_CHECKING:
    from blockmesh.data.node import Node

# The node stack (py-libp2p) takes most of a second to import, so only this command loads it;
# mirrors the node's DEFAULT_STALL_TIMEOUT (importing it would load py-libp2p for every command)
DEFAULT_STALL_TIMEOUT = 30.0


@click.command()
@click.option("--listen", "listen", multiple=True, metavar="MULTIADDR",
              help="Swarm address to listen on (repeatable; default: [addresses] swarm in the "
                   "repo's config.toml, /ip4/127.0.0.1/tcp/4001; port 0 picks a free one).")
@click.option("--gateway", "gateway", metavar="MULTIADDR", default=None,
              help="HTTP gateway address (default: [gateway] listen in config.toml, "
                   "/ip4/127.0.0.1/tcp/8080; port 0 picks a free one; \"\" turns it off).")
@click.option("--stall-timeout", type=click.FloatRange(min=0.1, max=3600), show_default=True,
              default=DEFAULT_STALL_TIMEOUT,
              help="Default seconds a fetch may go without a block before it fails.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True, help="Least severe log messages shown.")
def daemon(listen: tuple[str, ...], gateway: str | None, stall_timeout: float,
           log_level: str) -> None:
    """Run a node on the repo and serve the local control API until SIGINT or SIGTERM.

    The API listens on 127.0.0.1 on a free port written to $BLOCKMESH_PATH/api; other
    blockmesh commands on this repo go through it while the daemon runs.
    """
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from blockmesh.daemon.service import hold_daemon_lock, run_daemon

    def ready(node: Node, address: ApiAddress, gateway_line: str) -> None:
        click.echo(f"peer id: {node.peer_id}")
        for addr in node.addrs():
            click.echo(f"swarm listening on {addr}")
        click.echo(f"API server listening on {address.multiaddr}")
        click.echo(gateway_line)
        click.echo("Daemon is ready")
        sys.stdout.flush()

    with Repo.open() as repo, hold_daemon_lock(repo.path):
        addrs = listen or tuple(repo.config.addresses.swarm)
        if gateway is None:
            gateway = repo.config.gateway.listen
        if gateway:
            parse_listen(gateway)  # a bad address is a one-line error before anything starts
        trio.run(lambda: run_daemon(repo, addrs, stall_timeout=stall_timeout,
                                    gateway_listen=gateway, ready=ready))
    click.echo("Daemon stopped")
