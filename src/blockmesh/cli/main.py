"""Entry point of the `blockmesh` console script: the command groups and one error policy.

Expected failures (every BlockmeshError, and OS errors such as a missing file or a full disk)
become one line on stderr and exit status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from blockmesh import __version__
from blockmesh.errors import BlockmeshError

# Every top-level command and the module that defines it. Modules load only when their command
# runs (or for --help), so a short offline command never pays for, nor depends on, the
# network stack (py-libp2p) or the control plane (gRPC) that other commands import.
COMMANDS = {
    "init": "blockmesh.cli.data:init", "add": "blockmesh.cli.data:add",
    "cat": "blockmesh.cli.data:cat", "get": "blockmesh.cli.data:get",
    "ls": "blockmesh.cli.data:ls", "block": "blockmesh.cli.data:block",
    "dag": "blockmesh.cli.data:dag", "pin": "blockmesh.cli.data:pin",
    "repo": "blockmesh.cli.data:repo", "daemon": "blockmesh.cli.daemon:daemon",
    "id": "blockmesh.cli.p2p:id_", "swarm": "blockmesh.cli.p2p:swarm",
    "bitswap": "blockmesh.cli.p2p:bitswap", "network": "blockmesh.cli.p2p:network",
    "cluster": "blockmesh.cli.cluster:cluster", "bench": "blockmesh.cli.bench:bench",
    "demo": "blockmesh.cli.demo:demo", "stats": "blockmesh.cli.stats:stats",
    "bootstrap": "blockmesh.cli.connectivity:bootstrap",
    "status": "blockmesh.cli.connectivity:status",
    "dashboard": "blockmesh.cli.observe:dashboard", "top": "blockmesh.cli.observe:top",
    "routing": "blockmesh.cli.routing:routing",
}


class LazyGroup(click.Group):
    """A group whose commands are imported from COMMANDS on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, name = target.split(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blockmesh")
def cli() -> None:
    """blockmesh: content-addressed data over IPFS protocols, ordered by a PBFT cluster.

    The repo lives in $BLOCKMESH_PATH (default ~/.blockmesh); create it with `blockmesh init`.
    """


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
