"""Shared output helpers: JSON on request, rich progress bars only on a terminal."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


@contextlib.contextmanager
def progress_bar(label: str, total: int | None,
                 quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A byte-count progress callback drawn on stderr, or None when piped or quiet."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), transient=True, console=Console(stderr=True))
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
