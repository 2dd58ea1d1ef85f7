"""Routing commands with kubo's names: `routing findprovs|findpeer|provide|get|put` and
`stats dht`. All need the daemon, whose DHT does the work (see daemon/routing_routes.py)."""

from __future__ import annotations

import base64
import sys
from typing import BinaryIO

import click

from blockmesh.cli.output import emit_json, json_option
from blockmesh.cli.remote import require_daemon

# routing.records.MAX_VALUE_SIZE (an IPNS record's cap), not imported: it would load the
# record validators into every short CLI process.
MAX_VALUE_SIZE = 10 * 1024

_TIMEOUT = click.option("--timeout", type=click.FloatRange(min=0.1, max=50), default=30.0,
                        show_default=True, help="Seconds the search may take.")


@click.group()
def routing() -> None:
    """Find providers and peers in the DHT, and announce content (needs the daemon)."""


@routing.command("findprovs")
@click.argument("cid")
@click.option("--num-providers", "-n", type=click.IntRange(1, 1000), default=20,
              show_default=True, help="The number of providers to find.")
@_TIMEOUT
@json_option
def findprovs(cid: str, num_providers: int, timeout: float, as_json: bool) -> None:
    """Peers that say they can provide CID (one peer id per line)."""
    reply = require_daemon("routing findprovs").call(
        "routing/findprovs", cid=cid, num=num_providers, timeout=timeout)
    if as_json:
        emit_json(reply)
        return
    for provider in reply["Providers"]:
        click.echo(provider["ID"])


@routing.command("findpeer")
@click.argument("peer")
@_TIMEOUT
@json_option
def findpeer(peer: str, timeout: float, as_json: bool) -> None:
    """The addresses of PEER (one multiaddr per line)."""
    reply = require_daemon("routing findpeer").call("routing/findpeer", peer=peer,
                                                    timeout=timeout)
    if as_json:
        emit_json(reply)
        return
    for addr in reply["Addrs"]:
        click.echo(addr)


@routing.command("provide")
@click.argument("cid")
@_TIMEOUT
@json_option
def provide(cid: str, timeout: float, as_json: bool) -> None:
    """Announce to the DHT that this node provides CID (which must be in the repo)."""
    reply = require_daemon("routing provide").call("routing/provide", cid=cid, timeout=timeout)
    if as_json:
        emit_json(reply)
        return
    click.echo(f"provided {reply['CID']} to {reply['Peers']} peers")


@routing.command("get")
@click.argument("key")
@_TIMEOUT
def get_value(key: str, timeout: float) -> None:
    """Write the best valid value stored under KEY (/pk/<peer id> or /ipns/<peer id>) to
    stdout, as raw bytes."""
    reply = require_daemon("routing get").call("routing/get", key=key, timeout=timeout)
    sys.stdout.buffer.write(base64.b64decode(reply["Value"]))
    sys.stdout.buffer.flush()


@routing.command("put")
@click.argument("key")
@click.argument("value_file", type=click.File("rb"))
@_TIMEOUT
@json_option
def put_value(key: str, value_file: BinaryIO, timeout: float, as_json: bool) -> None:
    """Store the record in VALUE_FILE under KEY (/pk/<peer id> or /ipns/<peer id>); it must
    validate (a public key matching the id, a signed IPNS record of that name)."""
    value = value_file.read(MAX_VALUE_SIZE + 1)
    if len(value) > MAX_VALUE_SIZE:
        raise click.BadParameter(f"the value is over {MAX_VALUE_SIZE} bytes")
    reply = require_daemon("routing put").call(
        "routing/put", key=key, value=base64.b64encode(value).decode(), timeout=timeout)
    if as_json:
        emit_json(reply)
        return
    click.echo(f"stored {reply['Key']} at {reply['Peers']} peers")


# `stats dht`: registered in the `stats` group of cli/stats.py, beside `stats bw`.
@click.command("dht")
@json_option
def stats_dht(as_json: bool) -> None:
    """Each DHT (LAN, WAN): its mode, its routing table by bucket, its peers."""
    reply = require_daemon("stats dht").call("stats/dht")
    if as_json:
        emit_json(reply)
        return
    for name in ("lan", "wan"):
        table = reply[name]
        click.echo(f"DHT {name} ({table['protocol']}, {table['mode']} mode): "
                   f"{table['peers']} peers")
        for cpl, size in sorted(table["buckets"].items(), key=lambda kv: int(kv[0])):
            click.echo(f"  bucket {int(cpl):3d}: {size} peers")
    providers = reply["providers"]
    click.echo(f"provider records: {providers['records']} for others, {providers['own']} "
               f"of our own, for {providers['keys']} keys; refused: "
               f"{providers['refused_peer_quota']} over a peer's quota, "
               f"{providers['refused_full']} store full")
    values = reply["values"]
    click.echo(f"values: {values['records']} for others, {values['own']} of our own; refused: "
               f"{values['refused_peer_quota']} over a peer's quota, "
               f"{values['refused_full']} store full")
