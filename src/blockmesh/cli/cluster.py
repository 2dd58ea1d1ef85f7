"""`blockmesh cluster …`: create and drive a PBFT replica set."""

from __future__ import annotations

from pathlib import Path

import click

from blockmesh.cli.output import emit_json, json_option
from blockmesh.control.cluster.config import init_cluster


@click.group()
def cluster() -> None:
    """The PBFT control plane: a replica set ordering requests into a hash-chained log."""


@cluster.command("init")
@click.option("--nodes", default=4, show_default=True, help="Replicas, n = 3f + 1.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address replicas bind.")
@click.option("--base-port", default=7000, show_default=True,
              help="Replica k listens on base-port + k and serves /metrics on base-port + 100 + k.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Directory for cluster.toml and nodeK.toml.")
@click.option("--checkpoint-interval", default=100, show_default=True,
              help="Sequence numbers between checkpoints.")
@json_option
def cluster_init(nodes: int, host: str, base_port: int, out: str, checkpoint_interval: int,
                 as_json: bool) -> None:
    """Generate keys and config files for a new cluster."""
    config = init_cluster(Path(out), nodes, host, base_port, checkpoint_interval)
    if as_json:
        emit_json({"cluster": str(Path(out) / "cluster.toml"),
                   "nodes": [{"id": n.id, "address": n.address, "config": str(Path(out) /
                                                                              f"{n.id}.toml")}
                             for n in config.nodes]})
        return
    click.echo(f"wrote {Path(out) / 'cluster.toml'} (n={config.n}, f={config.f})")
    for node in config.nodes:
        click.echo(f"wrote {Path(out) / (node.id + '.toml')}  {node.id} at {node.address}")
