"""`blockmesh dashboard` and `blockmesh top`: the running daemon's live view, in a browser or in
the terminal. Both read the daemon's one snapshot (`observe/snapshot`)."""

from __future__ import annotations

import contextlib
import select
import sys
import termios
import tty
from collections.abc import Iterator

import click

from blockmesh.cli.output import emit_json, json_option
from blockmesh.cli.remote import require_daemon

REFRESH = 1.0


@click.command()
@json_option
def dashboard(as_json: bool) -> None:
    """Print a URL that opens the web dashboard of the running daemon.

    The URL carries a one-time login token (valid for two minutes, good for one page load),
    which the browser exchanges for a session cookie.
    """
    client = require_daemon("dashboard")
    login = client.call("dashboard/login")
    address = client.address
    url = f"http://{address.host}:{address.port}{login['path']}?login={login['token']}"
    if as_json:
        emit_json({"url": url, "expires_in": login["expires_in"]})
        return
    click.echo("Open the dashboard (the link works once, for the next "
               f"{login['expires_in']:.0f} s):")
    click.echo(f"    {url}")


@click.command()
@click.option("--once", is_flag=True, help="Print one frame and exit (no live view).")
def top(once: bool) -> None:
    """Live view of the running daemon in the terminal: peers, bandwidth, Bitswap, blockstore,
    and the cluster when the daemon is a member. Quit with q or Ctrl-C."""
    from rich.console import Console
    from rich.live import Live

    from blockmesh.observe.top import render

    client = require_daemon("top")
    console = Console()
    if once:
        console.print(render(client.call("observe/snapshot"), console.width))
        return
    with contextlib.suppress(KeyboardInterrupt), _keys() as keys, \
            Live(render(client.call("observe/snapshot"), console.width), console=console,
                 auto_refresh=False, screen=console.is_terminal) as live:
        for key in keys:
            if key in ("q", "Q"):
                break
            live.update(render(client.call("observe/snapshot"), console.width), refresh=True)


@contextlib.contextmanager
def _keys() -> Iterator[Iterator[str]]:
    """Keys pressed, one per refresh period ("" when none); the terminal in cbreak mode while
    it runs, restored after. Without a terminal on stdin, only the ticks."""
    stdin = sys.stdin
    if not stdin.isatty():
        def ticks() -> Iterator[str]:
            while True:
                select.select([], [], [], REFRESH)
                yield ""
        yield ticks()
        return
    fd = stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def pressed() -> Iterator[str]:
        while True:
            ready, _, _ = select.select([fd], [], [], REFRESH)
            yield stdin.read(1) if ready else ""

    try:
        yield pressed()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
