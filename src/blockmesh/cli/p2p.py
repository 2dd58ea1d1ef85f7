"""P2P commands, with kubo's names: id, swarm, bitswap, network. All but `id` need the daemon.

Addresses and peer ids are checked by the daemon (a bad one is a one-line 400), which keeps
py-libp2p out of these short-lived processes.
"""

from __future__ import annotations

from typing import Any

import click

from blockmesh import __version__
from blockmesh.cli.connectivity import filters, peering
from blockmesh.cli.output import emit_json, json_option
from blockmesh.cli.remote import require_daemon, running_daemon
from blockmesh.data.store.repo import Repo


@click.command("id")
@json_option
def id_(as_json: bool) -> None:
    """Show this node's peer id and its addresses (each ending in /p2p/<id>).

    Without a daemon the id comes from the repo's identity and there are no live addresses.
    """
    client = running_daemon()
    if client is not None:
        info = client.call("id")
    else:
        from blockmesh.data.net import load_or_create_identity

        with Repo.open() as repo:
            identity = load_or_create_identity(repo.path)
        info = {"ID": identity.peer_id, "Addresses": [], "Gateway": None, "Protocols": [],
                "AgentVersion": f"blockmesh/{__version__}"}
    info["Online"] = client is not None
    if as_json:
        emit_json(info)
        return
    click.echo(f"ID: {info['ID']}")
    click.echo(f"Agent: {info['AgentVersion']} ({'online' if client else 'offline'})")
    for addr in info["Addresses"]:
        click.echo(f"  {addr}")
    if info.get("Gateway"):
        click.echo(f"Gateway: {info['Gateway']}")


# -- swarm -----------------------------------------------------------------------------------
@click.group()
def swarm() -> None:
    """Connections to other peers (needs the daemon)."""


swarm.add_command(filters)
swarm.add_command(peering)


@swarm.command("connect")
@click.argument("multiaddr")
@json_option
def swarm_connect(multiaddr: str, as_json: bool) -> None:
    """Connect to a peer at MULTIADDR (/ip4/…/tcp/…/p2p/<peer id>)."""
    peer = require_daemon("swarm connect").call("swarm/connect", addr=multiaddr)["Peer"]
    if as_json:
        emit_json({"Peer": peer, "Strings": [f"connect {peer} success"]})
    else:
        click.echo(f"connect {peer} success")


@swarm.command("peers")
@json_option
def swarm_peers(as_json: bool) -> None:
    """List connected peers as full multiaddrs."""
    peers = require_daemon("swarm peers").call("swarm/peers")["Peers"]
    if as_json:
        emit_json({"Peers": peers})
        return
    for peer in peers:
        click.echo(f"{peer['Addr']}/p2p/{peer['Peer']}" if peer["Addr"] else peer["Peer"])


@swarm.command("disconnect")
@click.argument("peer")
@json_option
def swarm_disconnect(peer: str, as_json: bool) -> None:
    """Close every connection to PEER (a peer id or a multiaddr ending in /p2p/<id>)."""
    gone = require_daemon("swarm disconnect").call("swarm/disconnect", peer=peer)["Peer"]
    if as_json:
        emit_json({"Peer": gone, "Strings": [f"disconnect {gone} success"]})
    else:
        click.echo(f"disconnect {gone} success")


# -- bitswap ---------------------------------------------------------------------------------
@click.group()
def bitswap() -> None:
    """Bitswap exchange state (needs the daemon)."""


@bitswap.command("stat")
@json_option
def bitswap_stat(as_json: bool) -> None:
    """Peer id, peers, blocks and bytes sent and received, duplicates, wantlist, addresses."""
    stat = require_daemon("bitswap stat").call("bitswap/stat")
    if as_json:
        emit_json(stat)
        return
    click.echo("bitswap status")
    for key in ("peer_id", "connected_peers", "bitswap_peers", "blocks_received", "blocks_sent",
                "data_received", "data_sent", "dup_blocks_received", "dup_data_received",
                "messages_received"):
        click.echo(f"\t{key.replace('_', ' ')}: {stat[key]}")
    click.echo(f"\twantlist [{stat['wantlist_size']} keys]")
    for cid in stat["wantlist"]:
        click.echo(f"\t\t{cid}")
    click.echo(f"\taddresses [{len(stat['addresses'])}]")
    for addr in stat["addresses"]:
        click.echo(f"\t\t{addr}")


@bitswap.command("wantlist")
@click.option("--peer", "-p", default=None, help="Show what this peer wants from us instead.")
@json_option
def bitswap_wantlist(peer: str | None, as_json: bool) -> None:
    """CIDs this node wants (or that PEER wants from it)."""
    args: dict[str, Any] = {}
    if peer is not None:
        args["peer"] = peer
    keys = require_daemon("bitswap wantlist").call("bitswap/wantlist", **args)["Keys"]
    if as_json:
        emit_json({"Keys": keys})
        return
    for key in keys:
        click.echo(key)


@bitswap.command("ledger")
@click.argument("peer")
@json_option
def bitswap_ledger(peer: str, as_json: bool) -> None:
    """What this node and PEER have exchanged."""
    ledger = require_daemon("bitswap ledger").call("bitswap/ledger", peer=peer)
    if as_json:
        emit_json(ledger)
        return
    ratio = ledger["bytes_sent"] / (ledger["bytes_received"] + 1)
    click.echo(f"Ledger for {ledger['peer']}")
    click.echo(f"Debt ratio:\t{ratio:f}")
    for key in ("exchanged", "bytes_sent", "bytes_received", "blocks_sent", "blocks_received",
                "wantlist_size"):
        click.echo(f"{key.replace('_', ' ').capitalize()}:\t{ledger[key]}")


# -- network ---------------------------------------------------------------------------------
@click.group()
def network() -> None:
    """Network overview (needs the daemon)."""


@network.command("info")
@json_option
def network_info(as_json: bool) -> None:
    """Local peer id, listen addresses and connected peers."""
    info = require_daemon("network info").call("network/info")
    if as_json:
        emit_json(info)
        return
    click.echo(f"Local peer ID: {info['local_peer_id']}")
    click.echo(f"Listen addresses ({len(info['listen_addrs'])}):")
    for addr in info["listen_addrs"]:
        click.echo(f"  {addr}")
    click.echo(f"Connected peers ({len(info['connected_peers'])}):")
    for peer in info["connected_peers"]:
        click.echo(f"  {peer['id']} {peer['address']}")
