"""Entry point of the `blockmesh` console script: the command groups and one error policy.

Expected failures (every BlockmeshError, and OS errors such as a missing file or a full disk)
become one line on stderr and exit status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click

from blockmesh import __version__
from blockmesh.cli.bench import bench
from blockmesh.cli.cluster import cluster
from blockmesh.cli.daemon import daemon
from blockmesh.cli.data import add, block, cat, dag, get, init, ls, pin, repo
from blockmesh.cli.demo import demo
from blockmesh.cli.p2p import bitswap, id_, network, swarm
from blockmesh.errors import BlockmeshError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blockmesh")
def cli() -> None:
    """blockmesh: content-addressed data over IPFS protocols, ordered by a PBFT cluster.

    The repo lives in $BLOCKMESH_PATH (default ~/.blockmesh); create it with `blockmesh init`.
    """


for command in (init, add, cat, get, ls, block, dag, pin, repo, daemon, id_, swarm, bitswap,
                network, cluster, bench, demo):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BlockmeshError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"Error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(141)
