"""`blockmesh demo`: what `make demo` runs.

Until the Bitswap node lands, the demo is the local round trip through a throwaway repo: add a
file and a directory, print their CIDs, read them back and compare, then export the directory
as a CAR and import it into a second repo. Every step runs the real code paths.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import click

from blockmesh.data.dag import exporter
from blockmesh.data.dag.car import import_car, write_car
from blockmesh.data.dag.importer import ImportOptions, import_path
from blockmesh.data.dag.links import walk
from blockmesh.data.store.repo import Repo
from blockmesh.errors import BlockmeshError


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BlockmeshError(f"demo check failed: {what}")
    click.echo(f"  ok  {what}")


@click.command()
def demo() -> None:
    """Run the local round trip: add, read back, CAR export and import."""
    with tempfile.TemporaryDirectory(prefix="blockmesh-demo-") as tmp:
        work = Path(tmp)
        source = work / "site"
        (source / "docs").mkdir(parents=True)
        (source / "hello.txt").write_bytes(b"Hello from Alice!\n")
        (source / "docs" / "big.bin").write_bytes(bytes(i % 251 for i in range(3 * 2**20)))
        (source / "docs" / "empty.txt").write_bytes(b"")
        (source / "empty-dir").mkdir()

        click.echo(f"repo A: {work / 'repo-a'}")
        with Repo.init(work / "repo-a") as repo:
            opts = ImportOptions()
            added = list(import_path(source / "hello.txt", opts, repo.blocks.put))
            click.echo(f"added {added[-1].cid} hello.txt")
            file_cid = added[-1].cid
            tree = list(import_path(source, opts, repo.blocks.put, recursive=True))
            for item in tree:
                click.echo(f"added {item.cid} {item.path}")
            root = tree[-1].cid
            repo.pins.add(root)

            text = b"".join(exporter.read_file(repo.blocks.get, file_cid))
            _check(text == b"Hello from Alice!\n", f"cat {file_cid} returns the file")
            out = work / "restored"
            exporter.write_tree(repo.blocks.get, root, out)
            big = "docs/big.bin"
            same = (out / big).read_bytes() == (source / big).read_bytes()
            _check(same and (out / "empty-dir").is_dir(), f"get {root} restores the directory")
            for entry in exporter.list_directory(repo.blocks.get, root):
                click.echo(f"      {entry.cid} {entry.size:>8} {entry.name}")

            car = io.BytesIO()
            count = write_car(car, [root], walk(repo.blocks.get, root))
            click.echo(f"exported {count} blocks as a CAR of {car.tell()} bytes")

        with Repo.init(work / "repo-b") as other:
            car.seek(0)
            roots, imported = import_car(car, other.blocks.put)
            _check(roots == [root] and imported == count,
                   f"repo B imported {imported} verified blocks, root {roots[0]}")
            back = b"".join(exporter.read_file(other.blocks.get, file_cid))
            _check(back == b"Hello from Alice!\n", "repo B serves hello.txt from the CAR")
