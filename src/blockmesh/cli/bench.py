"""`blockmesh bench …`: the benchmarks, printed as tables with the ratio to the reference peer."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from blockmesh.bench.bitswapbench import run_block_sizes, run_transfers
from blockmesh.bench.importbench import DEFAULT_SIZES, MiB, run_import, run_store
from blockmesh.cli.output import emit_json, json_option


@click.group()
def bench() -> None:
    """Benchmarks measured side by side with kubo (see docs/benchmarks.md)."""


@bench.command("import")
@click.option("--size-mib", "sizes", multiple=True, type=int,
              help="File sizes in MiB (default 1, 100, 1024).")
@click.option("--repeat", default=3, show_default=True, help="Runs per cell; the median is shown.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where test files and repos go (default: a temporary directory).")
@click.option("--skip-store", is_flag=True, help="Skip the blockstore ops/s table.")
@json_option
def bench_import(sizes: tuple[int, ...], repeat: int, workdir: str | None, skip_store: bool,
                 as_json: bool) -> None:
    """UnixFS import MB/s (only-hash and stored) beside kubo, and blockstore ops/s."""
    console = Console(stderr=True)
    chosen = tuple(s * MiB for s in sizes) or DEFAULT_SIZES
    with tempfile.TemporaryDirectory(prefix="blockmesh-bench-", dir=workdir) as tmp:
        rows, reason = run_import(chosen, Path(tmp), repeat, lambda m: console.log(m))
        store_rows = [] if skip_store else run_store(Path(tmp))
    if as_json:
        emit_json({
            "import": [{"size": r.size, "mode": r.mode, "blockmesh_mbps": r.blockmesh_mbps,
                        "kubo_mbps": r.kubo_mbps, "ratio": r.ratio} for r in rows],
            "kubo_unavailable": reason,
            "blockstore": [vars(r) for r in store_rows],
        })
        return
    out = Console()
    table = Table(title=f"UnixFS import, median of {repeat} (MB/s = MiB/s)")
    for column in ("input", "mode", "blockmesh MB/s", "kubo MB/s", "ratio"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(f"{r.size // MiB} MiB", r.mode, f"{r.blockmesh_mbps:.1f}",
                      "-" if r.kubo_mbps is None else f"{r.kubo_mbps:.1f}",
                      "-" if r.ratio is None else f"{r.ratio:.2f}")
    out.print(table)
    if reason:
        out.print(f"kubo not measured: {reason}")
    if store_rows:
        store = Table(title="Blockstore ops/s")
        for column in ("engine", "block", "put/s", "get/s"):
            store.add_column(column, justify="right")
        for r in store_rows:
            store.add_row(r.engine, f"{r.block_size // 1024} KiB", f"{r.put_ops:,.0f}",
                          f"{r.get_ops:,.0f}")
        out.print(store)


@bench.command("bitswap")
@click.option("--size-mib", default=100, show_default=True, help="Size of the large file.")
@click.option("--small-blocks", default=10000, show_default=True,
              help="How many 1 KiB files (one block each) in the many-small-blocks run.")
@click.option("--skip-block-sizes", is_flag=True, help="Skip the seed's 1 KiB/64 KiB/1 MiB runs.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
@json_option
def bench_bitswap(size_mib: int, small_blocks: int, skip_block_sizes: bool, workdir: str | None,
                  as_json: bool) -> None:
    """Bitswap MB/s and blocks/s in every direction between blockmesh and kubo."""
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="blockmesh-bench-", dir=workdir) as tmp:
        rows, reason = run_transfers(size_mib * MiB, small_blocks, Path(tmp),
                                     lambda m: console.log(m))
        sizes = [] if skip_block_sizes else run_block_sizes(Path(tmp), lambda m: console.log(m))
    baseline = {r.payload: r for r in rows if r.scenario == "kubo->kubo"}
    if as_json:
        emit_json({"transfers": [{**vars(r), "mbps": r.mbps} for r in rows + sizes],
                   "kubo_unavailable": reason})
        return
    table = Table(title="Bitswap fetch, two processes on loopback")
    for column in ("direction", "payload", "MB/s", "blocks/s", "ratio to kubo->kubo", "peak RSS"):
        table.add_column(column, justify="right")
    for r in rows + sizes:
        base = baseline.get(r.payload)
        blocks = "-" if r.blocks is None else f"{r.blocks / r.seconds:,.0f}"
        ratio = "-" if base is None else f"{base.seconds / r.seconds:.2f}"
        rss = "-" if r.max_rss is None else f"{r.max_rss / MiB:.0f} MB"
        table.add_row(r.scenario, r.payload, f"{r.mbps:.1f}", blocks, ratio, rss)
    Console().print(table)
    if reason:
        Console().print(f"kubo not measured: {reason}")
