"""Connectivity commands in kubo's shape: `bootstrap`, `swarm filters`, `swarm peering`,
`status`.

`bootstrap` edits the repo's config with or without a daemon (a running daemon also applies
the change at once); `swarm filters` and `swarm peering` act on the running daemon and are kept
in the config too, so they outlive it. Nothing here loads py-libp2p: a daemon checks what it is
sent, and the offline `bootstrap` edit checks addresses with the multiaddr library alone.
"""

from __future__ import annotations

from typing import Any

import click

from blockmesh.cli.output import emit_json, json_option
from blockmesh.cli.remote import require_daemon, running_daemon
from blockmesh.data.store.repo import Repo


# -- bootstrap ---------------------------------------------------------------------------------
@click.group()
def bootstrap() -> None:
    """Peers dialled at start and whenever the node has fewer than [bootstrap] min_peers.

    The list is empty by default: nothing is dialled unless you add peers. `add --default`
    writes kubo's public IPFS bootstrap peers, for a node meant to join the public network.
    """


def _bootstrap_call(command: str, **args: Any) -> list[str]:
    client = running_daemon()
    if client is not None:
        peers: list[str] = client.call(f"bootstrap/{command}", **args)["Peers"]
        return peers
    from blockmesh.data.connectivity import settings

    with Repo.open() as repo:
        if command == "list":
            return settings.load(repo.path).bootstrap.peers
        if command == "add":
            return settings.bootstrap_add(repo.path, args["addrs"], default=args["default"])
        return settings.bootstrap_rm(repo.path, args["addrs"], all_=args["all"])


@bootstrap.command("list")
@json_option
def bootstrap_list(as_json: bool) -> None:
    """Show the bootstrap list."""
    peers = _bootstrap_call("list")
    if as_json:
        emit_json({"Peers": peers})
        return
    for peer in peers:
        click.echo(peer)


@bootstrap.command("add")
@click.argument("maddrs", nargs=-1, metavar="MADDR...")
@click.option("--default", "default", is_flag=True,
              help="Add kubo's public IPFS bootstrap peers (these leave this machine).")
@json_option
def bootstrap_add(maddrs: tuple[str, ...], default: bool, as_json: bool) -> None:
    """Add peers (/ip4/…/tcp/…/p2p/<peer id>) to the bootstrap list."""
    added = _bootstrap_call("add", addrs=list(maddrs), default=default)
    if as_json:
        emit_json({"Peers": added})
        return
    for peer in added:
        click.echo(f"added {peer}")


@bootstrap.command("rm")
@click.argument("maddrs", nargs=-1, metavar="MADDR...")
@click.option("--all", "all_", is_flag=True, help="Remove every bootstrap peer.")
@json_option
def bootstrap_rm(maddrs: tuple[str, ...], all_: bool, as_json: bool) -> None:
    """Remove peers from the bootstrap list (or all of them with --all)."""
    if all_ and maddrs:
        raise click.UsageError("give MADDRs or --all, not both")
    removed = _bootstrap_call("rm", addrs=list(maddrs), all=all_)
    if as_json:
        emit_json({"Peers": removed})
        return
    for peer in removed:
        click.echo(f"removed {peer}")


# -- swarm filters -----------------------------------------------------------------------------
@click.group()
def filters() -> None:
    """Deny (or, with --allow, only admit) address ranges and peers, inbound and outbound.

    A filter is a multiaddr: /ip4/10.0.0.0/ipcidr/8, /ip6/fd00::/ipcidr/8, or /p2p/<peer id>.
    Deny rules always win; an allow list of a kind, once not empty, admits only what it names.
    Changes apply at once (denied connections are closed) and are kept in [filters].
    """


@filters.command("ls")
@json_option
def filters_ls(as_json: bool) -> None:
    """List the filters: deny rules, then allow rules marked `allow`."""
    reply = require_daemon("swarm filters ls").call("swarm/filters/ls")
    if as_json:
        emit_json(reply)
        return
    for rule in reply["Strings"]:
        click.echo(rule)
    for rule in reply["Allow"]:
        click.echo(f"allow {rule}")


@filters.command("add")
@click.argument("rules", nargs=-1, required=True, metavar="FILTER...")
@click.option("--allow", is_flag=True, help="Add to the allow list instead of the deny list.")
@json_option
def filters_add(rules: tuple[str, ...], allow: bool, as_json: bool) -> None:
    """Add filters."""
    reply = require_daemon("swarm filters add").call("swarm/filters/add", filters=list(rules),
                                                      allow=allow)
    if as_json:
        emit_json(reply)
        return
    for rule in reply["Strings"]:
        click.echo(f"added {rule}")
    for peer in reply["Closed"]:
        click.echo(f"closed {peer}")


@filters.command("rm")
@click.argument("rules", nargs=-1, metavar="FILTER...")
@click.option("--allow", is_flag=True, help="Remove from the allow list.")
@click.option("--all", "all_", is_flag=True, help="Remove every rule of the list.")
@json_option
def filters_rm(rules: tuple[str, ...], allow: bool, all_: bool, as_json: bool) -> None:
    """Remove filters."""
    if all_ == bool(rules):
        raise click.UsageError("give FILTERs or --all")
    reply = require_daemon("swarm filters rm").call("swarm/filters/rm", filters=list(rules),
                                                     allow=allow, all=all_)
    if as_json:
        emit_json(reply)
        return
    for rule in reply["Strings"]:
        click.echo(f"removed {rule}")


# -- swarm peering -----------------------------------------------------------------------------
@click.group()
def peering() -> None:
    """Peers kept connected at all times (redialled with backoff, never trimmed)."""


@peering.command("ls")
@json_option
def peering_ls(as_json: bool) -> None:
    """List peering peers and whether each is connected."""
    peers = require_daemon("swarm peering ls").call("swarm/peering/ls")["Peers"]
    if as_json:
        emit_json({"Peers": peers})
        return
    for peer in peers:
        state = "connected" if peer["Connected"] else f"not connected ({peer['LastError']})" \
            if peer["LastError"] else "not connected"
        click.echo(f"{peer['ID']} {state}")
        for addr in peer["Addrs"]:
            click.echo(f"  {addr}")


@peering.command("add")
@click.argument("maddrs", nargs=-1, required=True, metavar="MADDR...")
@json_option
def peering_add(maddrs: tuple[str, ...], as_json: bool) -> None:
    """Add peering peers (/ip4/…/tcp/…/p2p/<peer id>); kept in [peering] peers."""
    peers = require_daemon("swarm peering add").call("swarm/peering/add",
                                                      addrs=list(maddrs))["Peers"]
    if as_json:
        emit_json({"Peers": peers})
        return
    for peer in peers:
        click.echo(f"add {peer} success")


@peering.command("rm")
@click.argument("peers", nargs=-1, required=True, metavar="PEER...")
@json_option
def peering_rm(peers: tuple[str, ...], as_json: bool) -> None:
    """Stop peering with PEERs (peer ids); their connections stay until closed or trimmed."""
    gone = require_daemon("swarm peering rm").call("swarm/peering/rm", peers=list(peers))["Peers"]
    if as_json:
        emit_json({"Peers": gone})
        return
    for peer in gone:
        click.echo(f"remove {peer} success")


# -- status ------------------------------------------------------------------------------------
@click.command()
@json_option
def status(as_json: bool) -> None:
    """The node's health: peers, DHT table size, reachability, and why it has no peers."""
    client = running_daemon()
    if client is None:
        report: dict[str, Any] = {"Online": False, "status": "offline",
                                  "reasons": ["no daemon runs on this repo "
                                              "(start one with `blockmesh daemon`)"]}
    else:
        report = client.call("status")
    if as_json:
        emit_json(report)
        return
    click.echo(f"status: {report['status']}")
    if report["Online"]:
        click.echo(f"peer id: {report['ID']}")
        connmgr = report["connmgr"]
        click.echo(f"peers: {report['peers']} (connection manager: low {connmgr['low_water']}, "
                   f"high {connmgr['high_water']}, {len(connmgr['protected'])} protected)")
        table = report["routing_table_size"]
        click.echo(f"DHT routing table: {'no DHT' if table is None else f'{table} peers'}")
        click.echo(f"reachability: {report['reachability']}")
        for name, group in sorted(report["groups"].items()):
            click.echo(f"{name}: {group['connected']}/{group['configured']} connected")
        if report["filtered"]:
            click.echo(f"refused by filters: {report['filtered']}")
    for reason in report["reasons"]:
        click.echo(f"  {reason}")
