"""`blockmesh demo`: what `make demo` runs.

By default four member daemons keep a file replicated through a crash (`demo_members.py`):
the product, both planes in each process. `--p2p` runs the seed's Alice/Bob exchange over real
libp2p and Bitswap (`demo_p2p.py`); `--nodes` and `--block-size` the mesh and the block-size
benchmark; `--local` the round trip through one throwaway repo (add a file and a directory,
read them back, export the directory as a CAR and import it into a second repo);
`--cluster-only` a stand-alone 4-replica PBFT cluster with its primary killed.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import click
import trio

from blockmesh.cli import demo_cluster
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
@click.option("--local", is_flag=True, help="Only the local round trip: add, read back, CAR.")
@click.option("--nodes", type=click.IntRange(2, 16), default=None,
              help="Full mesh of N nodes; move a random file from node 0 to every other.")
@click.option("--file-mib", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Size of the file --nodes moves.")
@click.option("--block-size", type=click.Choice(["1024", "65536", "1048576"]), multiple=True,
              help="Block-size benchmark (repeatable): raw blocks of this size, Alice to Bob.")
@click.option("--bench-mib", type=click.IntRange(1, 1024), default=8, show_default=True,
              help="Bytes each block-size run moves.")
@click.option("--cluster-only", is_flag=True,
              help="Only the PBFT cluster: 4 replicas, a few hundred requests, primary killed.")
@click.option("--p2p", is_flag=True,
              help="Alice stores \"Hello from Alice!\", Bob fetches it over Bitswap.")
def demo(local: bool, nodes: int | None, file_mib: int, block_size: tuple[str, ...],
         bench_mib: int, cluster_only: bool, p2p: bool) -> None:
    """Four member daemons pin a file with replication 3 through PBFT, lose a holder to
    SIGKILL, and re-allocate the pin to the fourth, which fetches it over Bitswap."""
    from blockmesh.cli import demo_members, demo_p2p  # the node stack, only when needed

    with tempfile.TemporaryDirectory(prefix="blockmesh-demo-") as tmp:
        work = Path(tmp)
        if cluster_only:
            demo_cluster.run(work)
            return
        if local:
            _local_round_trip(work)
            return
        if nodes is not None:
            trio.run(demo_p2p.mesh, work, nodes, file_mib << 20)
        for size in block_size:
            trio.run(demo_p2p.block_size_bench, work, int(size), bench_mib << 20)
        if p2p:
            trio.run(demo_p2p.alice_and_bob, work)
        if nodes is None and not block_size and not p2p:
            demo_members.run(work)


def _local_round_trip(work: Path) -> None:
    """Add, read back, CAR export and import, all in throwaway repos."""
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
