"""`blockmesh stats …`: counters of the running daemon, in kubo's shape (needs the daemon)."""

from __future__ import annotations

from typing import Any

import click

from blockmesh.cli.output import emit_json, json_option
from blockmesh.cli.remote import require_daemon
from blockmesh.cli.routing import stats_dht


@click.group()
def stats() -> None:
    """Counters of the running node (needs the daemon)."""


stats.add_command(stats_dht)


@stats.command("bw")
@click.option("--peer", "-p", default=None, help="Only the traffic with this peer id.")
@click.option("--proto", "-t", default=None, help="Only the traffic of this protocol id.")
@json_option
def stats_bw(peer: str | None, proto: str | None, as_json: bool) -> None:
    """Bytes received and sent since the daemon started, and their rates over the last
    seconds: for the whole node, one peer (--peer) or one protocol (--proto)."""
    if peer is not None and proto is not None:
        raise click.UsageError("give --peer or --proto, not both")
    args: dict[str, Any] = {}
    if peer is not None:
        args["peer"] = peer
    if proto is not None:
        args["proto"] = proto
    bw = require_daemon("stats bw").call("stats/bw", **args)
    if as_json:
        emit_json(bw)
        return
    click.echo("Bandwidth")
    click.echo(f"TotalIn: {_size(bw['TotalIn'])}")
    click.echo(f"TotalOut: {_size(bw['TotalOut'])}")
    click.echo(f"RateIn: {_size(bw['RateIn'])}/s")
    click.echo(f"RateOut: {_size(bw['RateOut'])}/s")


def _size(n: float) -> str:
    """kubo's humanized sizes: SI units, whole bytes below 1 kB."""
    units = ("B", "kB", "MB", "GB", "TB")
    step = 0
    while n >= 1000 and step < len(units) - 1:
        n /= 1000
        step += 1
    return f"{n:.0f} B" if step == 0 else f"{n:.1f} {units[step]}"
