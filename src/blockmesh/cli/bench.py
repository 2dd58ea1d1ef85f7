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
@click.option("--kubo-pin", is_flag=True,
              help="kubo fetches by a recursive pin (blocks into its store, no file output, as "
                   "blockmesh's fetch) instead of Download.")
@click.option("--skip-helia", is_flag=True, help="Skip the Helia rows.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where repos, logs and test files go (default: a temporary directory).")
@json_option
def bench_bitswap(size_mib: int, small_blocks: int, skip_block_sizes: bool, kubo_pin: bool,
                  skip_helia: bool, workdir: str | None, as_json: bool) -> None:
    """Bitswap MB/s and blocks/s in every direction between blockmesh, kubo and Helia."""
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="blockmesh-bench-", dir=workdir) as tmp:
        rows, reason = run_transfers(size_mib * MiB, small_blocks, Path(tmp),
                                     lambda m: console.log(m), kubo_pin, not skip_helia)
        sizes = [] if skip_block_sizes else run_block_sizes(Path(tmp), lambda m: console.log(m))
    baseline = {r.payload: r for r in rows if r.scenario == "kubo->kubo"}
    if as_json:
        emit_json({"transfers": [{**vars(r), "mbps": r.mbps} for r in rows + sizes],
                   "kubo_fetch": "pin" if kubo_pin else "download", "kubo_unavailable": reason})
        return
    table = Table(title="Bitswap fetch, two processes on loopback "
                        f"(kubo fetches by {'pin' if kubo_pin else 'Download'})")
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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pbft_overrides(pairs: tuple[str, ...]) -> tuple[tuple[str, float | int], ...]:
    parsed: list[tuple[str, float | int]] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError(pair)
            parsed.append((name, float(value) if "." in value else int(value)))
        except ValueError:
            raise click.UsageError(f"--pbft takes NAME=NUMBER, got {pair!r}") from None
    return tuple(parsed)


@bench.command("pbft")
@click.option("--transport", "transports", multiple=True, type=click.Choice(("grpc", "tcp")),
              help="Transports to measure (default both).")
@click.option("--size", "sizes", multiple=True, type=click.IntRange(0, 60_000),
              help="Request value bytes (default 0, 100 and 1024).")
@click.option("--batching", type=click.Choice(("on", "off", "both")), default="both",
              show_default=True,
              help="On: up to 64 requests per batch, one batch in flight; off: one request "
                   "per batch, 16 in flight.")
@click.option("--mode", type=click.Choice(("closed", "open", "both")), default="both",
              show_default=True, help="Closed-loop clients, open loop at --rate, or both.")
@click.option("--clients", default=32, show_default=True, help="Closed-loop clients.")
@click.option("--count", default=2000, show_default=True,
              help="Measured requests per closed-loop cell.")
@click.option("--warmup", default=300, show_default=True,
              help="Unmeasured requests before each closed-loop cell.")
@click.option("--rate", "rates", default="2000", show_default=True,
              help="Open loop: requests/s offered; a comma-separated list is a sweep that "
                   "stops after two steps in a row that were not sustained.")
@click.option("--seconds", default=5.0, show_default=True,
              help="Open loop: measured seconds (after one second of warm-up).")
@click.option("--identities", default=256, show_default=True,
              help="Open loop: client identities (each has one request in flight; a request "
                   "that finds all busy waits for one, timed from its scheduled instant).")
@click.option("--p99-bound", default=500.0, show_default=True,
              help="Open loop: a step is sustained if it commits ≥ 95 %% of the offered rate "
                   "with no failure, p99 (ms) at most this, and the median latency of its "
                   "second half at most 1.5x (+20 ms) its first half's.")
@click.option("--skip-view-change", is_flag=True, help="Do not time a primary crash.")
@click.option("--pbft", "pbft", multiple=True, metavar="NAME=VALUE",
              help="Override a PBFTParams field for every cell, e.g. max_inflight_batches=8.")
@click.option("--client-auth", type=click.Choice(("mac", "signature")), default="mac",
              show_default=True,
              help="Load generator's requests: MAC authenticators only (BFT-SMaRt's default) "
                   "or Ed25519-signed as well.")
@click.option("--hosted", type=click.Choice(("standalone", "daemon")), default="standalone",
              show_default=True,
              help="Replicas as `cluster start` processes or inside `blockmesh daemon` members.")
@click.option("--client-processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Closed loop: split the clients over this many load-generator processes "
                   "(one process runs on one core).")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False), default=None,
              help="Run every replica under cProfile and write DIR/<transport>-nodeK.prof.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where repos, logs and test files go (default: a temporary directory).")
@json_option
def bench_pbft(transports: tuple[str, ...], sizes: tuple[int, ...], batching: str, mode: str,
               clients: int, count: int, warmup: int, rates: str, seconds: float,
               identities: int, p99_bound: float, skip_view_change: bool, pbft: tuple[str, ...],
               client_auth: str, hosted: str, client_processes: int, profile_dir: str | None,
               workdir: str | None, as_json: bool) -> None:
    """PBFT cluster: committed requests/s and p50/p99 latency, 4 replica processes on loopback."""
    # Imported here: every `blockmesh` command, replicas included, loads this module.
    from blockmesh.bench.pbftbench import SIZES, TRANSPORTS, Plan, run_bench

    try:
        offered = tuple(float(r) for r in rates.split(",") if r.strip())
    except ValueError:
        raise click.UsageError(f"--rate takes numbers separated by commas, got {rates!r}") \
            from None
    if not offered or min(offered) <= 0:
        raise click.UsageError("--rate needs at least one rate above zero")
    plan = Plan(
        transports=transports or TRANSPORTS, sizes=sizes or SIZES,
        batching={"on": (True,), "off": (False,), "both": (True, False)}[batching],
        modes={"closed": ("closed",), "open": ("open",), "both": ("closed", "open")}[mode],
        clients=clients, count=count, warmup=warmup, rates=offered, seconds=seconds,
        open_identities=identities, view_change=not skip_view_change, p99_bound_ms=p99_bound,
        extra_pbft=_pbft_overrides(pbft), sign_requests=client_auth == "signature", hosted=hosted,
        client_processes=client_processes)
    console = Console(stderr=True)
    profile = None
    if profile_dir is not None:
        profile = Path(profile_dir)
        profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="blockmesh-bench-", dir=workdir) as tmp:
        result = run_bench(plan, Path(tmp), lambda m: console.log(m), profile)
    if as_json:
        emit_json(result.as_dict())
        return
    table = Table(title="PBFT, 4 replica processes on 127.0.0.1")
    for column in ("transport", "batching", "load", "size", "req/s", "p50 ms", "p99 ms",
                   "mean batch", "failed", "queued", "unfinished", "CPU ms/req replicas",
                   "busiest", "client"):
        table.add_column(column, justify="right")
    for r in result.rows:
        load = (f"{r.clients} closed" if r.mode == "closed"
                else f"open {r.target_rate:,.0f}/s")
        table.add_row(r.transport, "on" if r.batching else "off", load, f"{r.size} B",
                      f"{r.requests_per_second:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
                      "-" if r.mean_batch is None else f"{r.mean_batch:.1f}", str(r.failed),
                      str(r.queued), str(r.unfinished),
                      *(_ms(v) for v in (r.cpu_ms_replicas, r.cpu_ms_primary, r.cpu_ms_client)))
    out = Console()
    out.print(table)
    for sat in result.saturation:
        where = ("no step sustained" if sat.offered is None else
                 f"{sat.offered:,.0f}/s offered, {sat.committed_per_second:,.0f} committed/s, "
                 f"p50 {sat.p50_ms:.1f} ms, p99 {sat.p99_ms:.1f} ms")
        out.print(f"{sat.transport} {sat.size} B open loop, {sat.identities} identities: "
                  f"saturation {where}; peak {sat.peak_per_second:,.0f} committed/s "
                  f"(sustained: ≥ 95 % of offered, p99 ≤ {sat.p99_bound_ms:g} ms, no drift)")
    for v in result.view_changes:
        out.print(f"{v.transport}: primary killed -> first commit in view {v.new_view} after "
                  f"{v.seconds_to_first_commit:.2f} s (view-change timeout "
                  f"{v.view_change_timeout:g} s)")


@bench.command("pinset")
@click.option("--pins", type=click.IntRange(1), default=500, show_default=True,
              help="Pin operations to commit (identity CIDs: no data moves).")
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Closed-loop writer identities pinning in parallel.")
@click.option("--file-mib", type=click.IntRange(1, 4096), default=100, show_default=True,
              help="Size of the file `cluster add` pins with replication 3.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the member repos go (default: a temporary directory).")
@json_option
def bench_pinset(pins: int, clients: int, file_mib: int, workdir: str | None,
                 as_json: bool) -> None:
    """Four member daemons: pin operations/s, time to three pinned copies, member memory."""
    from blockmesh.bench.pinsetbench import run_bench

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="blockmesh-bench-", dir=workdir) as tmp:
        result = run_bench(Path(tmp), pins, clients, file_mib, lambda m: console.log(m))
    if as_json:
        emit_json(result.as_dict())
        return
    click.echo(f"pin operations: {result.pins_per_second:,.0f} committed/s with {clients} "
               f"clients (p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms)")
    click.echo(f"cluster add of {file_mib} MiB until three members pinned: "
               f"{result.seconds_to_three_pinned:.2f} s")
    click.echo(f"member daemon RSS: {result.rss_rest_mib:.0f} MiB at rest, "
               f"{result.rss_peak_mib:.0f} MiB peak while pinning")


@bench.command("gateway")
@click.option("--size-mib", type=click.IntRange(1, 4096), default=100, show_default=True,
              help="Size of each large file.")
@click.option("--small-blocks", type=click.IntRange(10), default=2000, show_default=True,
              help="1 KiB blocks per small-block row.")
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Keep-alive HTTP connections for the small-block rows.")
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Large-file pairs over Bitswap (gateway, fetch), each on new files.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the two repos go (default: a temporary directory).")
@json_option
def bench_gateway(size_mib: int, small_blocks: int, clients: int, repeat: int,
                  workdir: str | None, as_json: bool) -> None:
    """HTTP gateway MB/s and 1 KiB requests/s (p50/p99) beside Bitswap, two daemons."""
    from blockmesh.bench.gatewaybench import run_bench

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="blockmesh-bench-", dir=workdir) as tmp:
        result = run_bench(Path(tmp), size_mib, small_blocks, clients,
                           lambda m: console.log(m), repeat)
    if as_json:
        emit_json(result.as_dict())
        return
    large = Table(title=f"{size_mib} MiB file, two daemons on 127.0.0.1 (median of {repeat})")
    for column in ("path", "MB/s", "seconds", "daemon CPU s", "daemon peak RSS MiB"):
        large.add_column(column, justify="right")
    for r in result.large:
        cpu = "" if r.cpu_seconds is None else f"{r.cpu_seconds:.2f}"
        rss = "" if r.rss_peak_mib is None else f"{r.rss_peak_mib:.0f}"
        large.add_row(r.path, f"{r.mbps:.1f}", f"{r.seconds:.2f}", cpu, rss)
    small = Table(title="1 KiB blocks")
    for column in ("path", "clients", "requests/s", "p50 ms", "p99 ms"):
        small.add_column(column, justify="right")
    for s in result.small:
        small.add_row(s.path, str(s.clients), f"{s.per_second:,.0f}", f"{s.p50_ms:.2f}",
                      f"{s.p99_ms:.2f}")
    out = Console()
    out.print(large)
    out.print(f"gateway over Bitswap / Bitswap fetch: {result.ratio:.2f}x; B's RSS before "
              f"them {result.rss_rest_mib:.0f} MiB")
    out.print(small)


@bench.command("dht")
@click.option("--nodes", type=click.IntRange(3, 64), default=20, show_default=True,
              help="blockmesh daemons, node 0 the bootstrap peer, the last one the seeker.")
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True,
              help="Trials, each with new content; the median is shown.")
@click.option("--size-kib", type=click.IntRange(1, 65536), default=1024, show_default=True,
              help="Size of each random file.")
@click.option("--no-kubo", is_flag=True, help="Measure blockmesh alone.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="Where the repos go (default: a temporary directory).")
@json_option
def bench_dht(nodes: int, repeat: int, size_kib: int, no_kubo: bool, workdir: str | None,
              as_json: bool) -> None:
    """Time to first byte of content found only through the DHT, beside kubo's Download."""
    from blockmesh.bench.dhtbench import KiB, run_bench

    console = Console(stderr=True)
    with tempfile.TemporaryDirectory(prefix="blockmesh-bench-", dir=workdir) as tmp:
        result = run_bench(Path(tmp), nodes, repeat, size_kib * KiB, not no_kubo,
                           lambda m: console.log(m))
    if as_json:
        emit_json(result.as_dict())
        return
    table = Table(title=f"{size_kib} KiB found through the DHT, {nodes} daemons on 127.0.0.1, "
                        f"median of {repeat}")
    for column in ("peer", "lookup alone s", "first byte s", "whole file s", "hops",
                   "messages"):
        table.add_column(column, justify="right")
    hops, messages = result.lookup_median("hops"), result.lookup_median("messages")
    table.add_row("blockmesh cat", f"{result.median('findprovs'):.3f}",
                  f"{result.median('blockmesh_ttfb'):.3f}",
                  f"{result.median('blockmesh_total'):.3f}",
                  "-" if hops is None else f"{hops:g}",
                  "-" if messages is None else f"{messages:g}")
    kubo = result.median("kubo_total")
    table.add_row("kubo Download", "-", "-", "-" if kubo is None else f"{kubo:.3f}", "-", "-")
    out = Console()
    out.print(table)
    if result.ratio is not None:
        out.print(f"kubo time / blockmesh time, whole file: {result.ratio:.2f} "
                  "(above 1 blockmesh is faster)")
    if result.kubo_unavailable:
        out.print(f"kubo not measured: {result.kubo_unavailable}")
    out.print(f"network up in {result.start_seconds:.1f} s; the seeker's table held "
              f"{result.seeker_table} DHT servers (kubo's among them when it runs)")
