"""Entry point of the `blockmesh` console script."""

import click


@click.group()
def cli() -> None:
    """blockmesh: content-addressed data over IPFS protocols, ordered by a PBFT cluster."""


def main() -> None:
    cli()
