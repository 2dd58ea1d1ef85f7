"""Data-plane commands, with kubo's names and flags: init add cat get ls block dag pin repo.

Each one (but `init`) is defined once, as an API route (`daemon/repo_routes.py`): here it only
builds the request and prints the answer. The route runs in the repo's daemon when one runs, and
in this process on the repo when none does (`invoke.py`); with a daemon, `cat` and `get` first
fetch what is missing from peers.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from blockmesh.cli.invoke import Invoker, Local, Remote, input_path, open_api, write_stdout
from blockmesh.cli.output import emit_json, json_option, progress_bar
from blockmesh.daemon import ApiError, DaemonClient
from blockmesh.data.cid import CID
from blockmesh.data.dag import dagjson, exporter
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.store.repo import Repo

stall_option = click.option(
    "--stall-timeout", type=click.FloatRange(min=0.1, max=3600), default=None,
    help="With a daemon: fail when no block arrives for this many seconds (default: the "
         "daemon's --stall-timeout).")


def _size_of(paths: tuple[str, ...]) -> int:
    total = 0
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in os.walk(path):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                             if os.path.isfile(os.path.join(root, f)))
        elif os.path.isfile(path):
            total += os.path.getsize(path)
    return total


@click.command()
@json_option
def init(as_json: bool) -> None:
    """Create a repo at $BLOCKMESH_PATH (default ~/.blockmesh)."""
    with Repo.init() as repo:
        if as_json:
            emit_json({"path": str(repo.path), "datastore": repo.config.datastore.engine})
        else:
            click.echo(f"initialized blockmesh repo at {repo.path}")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-r", "--recursive", is_flag=True, help="Add directories recursively.")
@click.option("-Q", "--quieter", is_flag=True, help="Print only the final CID.")
@click.option("-q", "--quiet", is_flag=True, help="Print only CIDs, no progress bar.")
@click.option("-n", "--only-hash", is_flag=True, help="Compute CIDs without storing anything.")
@click.option("--cid-version", type=click.IntRange(0, 1), default=None,
              help="CID version (default 0, as kubo); 1 turns raw leaves on.")
@click.option("--raw-leaves/--no-raw-leaves", default=None, help="Leaves as raw blocks.")
@click.option("--chunker", "-s", default=None, help="Chunker, e.g. size-262144 (the default).")
@click.option("--trickle", "-t", is_flag=True, help="Trickle layout instead of balanced.")
@click.option("--hash", "hash_name", default=None, help="Hash function (sha2-256, blake3).")
@click.option("-H", "--hidden", is_flag=True, help="Include files whose names start with a dot.")
@click.option("--pin/--no-pin", default=True, help="Pin what was added (default on).")
@json_option
def add(paths: tuple[str, ...], recursive: bool, quieter: bool, quiet: bool, only_hash: bool,
        cid_version: int | None, raw_leaves: bool | None, chunker: str | None, trickle: bool,
        hash_name: str | None, hidden: bool, pin: bool, as_json: bool) -> None:
    """Add files or directories; print their CIDs (the same CIDs kubo's `ipfs add` gives)."""
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
    args = {"paths": [os.path.abspath(p) for p in paths], "recursive": recursive, "pin": pin,
            "only_hash": only_hash, "cid_version": cid_version, "raw_leaves": raw_leaves,
            "chunker": chunker, "trickle": trickle, "hash": hash_name, "hidden": hidden}
    with open_api() as api:
        quiet_bar = quiet or quieter or as_json or isinstance(api, Remote)
        total = None if quiet_bar else _size_of(paths)
        with progress_bar("adding", total, quiet_bar) as progress:
            added = api.call("add", args, progress)
    _report_added(added, quiet, quieter, as_json)


def _report_added(results: list[dict[str, Any]], quiet: bool, quieter: bool,
                  as_json: bool) -> None:
    """Print `add`'s result rows (kubo's Name/Hash/Size), wherever the import ran."""
    if as_json:
        emit_json(results)
    elif quieter:
        click.echo(results[-1]["Hash"])
    else:
        for item in results:
            click.echo(item["Hash"] if quiet else f"added {item['Hash']} {item['Name']}")


def _fetch(client: DaemonClient, root: CID, stall_timeout: float | None, quiet: bool) -> None:
    with progress_bar("fetching blocks", None, quiet) as progress:
        seen = 0

        def advance(total: int) -> None:
            nonlocal seen
            if progress is not None and total > seen:
                progress(total - seen)
            seen = max(seen, total)

        client.fetch(str(root), stall_timeout, advance)


@contextlib.contextmanager
def _needs_network(api: Invoker) -> Iterator[None]:
    """Says, when content is missing offline, that only a daemon could fetch it."""
    try:
        yield
    except ApiError as exc:
        if isinstance(api, Local) and exc.status == 404:
            raise ApiError(f"{exc}; without a daemon nothing is fetched from peers (start one "
                           "with `blockmesh daemon`)", exc.status) from None
        raise


@click.command()
@click.argument("cid")
@stall_option
def cat(cid: str, stall_timeout: float | None) -> None:
    """Write the file at CID to standard output (fetched from peers when a daemon runs)."""
    root = CID.parse(cid)
    with open_api() as api, _needs_network(api):
        if isinstance(api, Remote):
            _fetch(api.client, root, stall_timeout, True)
        api.stream("cat", {"cid": str(root)}, write_stdout)
    sys.stdout.buffer.flush()


@click.command()
@click.argument("cid")
@click.option("-o", "--output", type=click.Path(), default=None,
              help="Where to write: a new path, or an existing directory to write <CID> into "
                   "(default: ./<CID>). Nothing that exists is overwritten.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@stall_option
def get(cid: str, output: str | None, quiet: bool, stall_timeout: float | None) -> None:
    """Write the file, directory or symlink at CID to disk; fetched from peers when a daemon
    runs, which then writes it. Entry names that could reach outside the output are refused."""
    root = CID.parse(cid)
    dest = Path(output or ".")
    exporter.destination(dest, root)  # a bad -o fails here, before anything is fetched
    args = {"cid": str(root), "dest": str(dest.absolute())}
    with open_api() as api, _needs_network(api):
        if isinstance(api, Remote):
            _fetch(api.client, root, stall_timeout, quiet)
            final = api.call("get", args)["Path"]
        else:
            with progress_bar("saving", None, quiet) as progress:
                final = api.call("get", args, progress)["Path"]
    if not quiet:
        click.echo(f"Saving file(s) to {final}", err=True)


@click.command()
@click.argument("cid")
@json_option
def ls(cid: str, as_json: bool) -> None:
    """List the links of a UnixFS directory."""
    with open_api() as api:
        listing = api.call("ls", {"cid": str(CID.parse(cid))})
    if as_json:
        emit_json(listing)
        return
    for e in listing:
        click.echo(f"{e['Hash']} {e['Size']} {e['Name']}{'/' if e['Type'] == 'directory' else ''}")


# -- block -----------------------------------------------------------------------------------
input_argument = click.argument("file", default="-",
                                type=click.Path(exists=True, dir_okay=False, allow_dash=True))


@click.group()
def block() -> None:
    """Raw blocks: put, get, stat, rm."""


@block.command("put")
@input_argument
@click.option("--cid-codec", default="raw",
              help="Codec of the new CID (raw, dag-pb, dag-cbor, libp2p-key); dag-pb and "
                   "dag-cbor blocks must decode under it.")
@click.option("--mhtype", default="sha2-256", help="Hash function.")
@click.option("--pin/--no-pin", default=False, help="Pin the block.")
@json_option
def block_put(file: str, cid_codec: str, mhtype: str, pin: bool, as_json: bool) -> None:
    """Store the bytes of FILE (or stdin) as one block and print its CID.

    Blocks over the size Bitswap and CAR carry, and blocks that do not decode under their
    codec, are refused."""
    with open_api() as api, input_path(api, file, MAX_BLOCK_SIZE) as path:
        stored = api.call("block/put", {"path": path, "cid_codec": cid_codec,
                                        "mhtype": mhtype, "pin": pin})
    if as_json:
        emit_json(stored)
    else:
        click.echo(stored["Key"])


@block.command("get")
@click.argument("cid")
def block_get(cid: str) -> None:
    """Write a block's raw bytes to stdout."""
    with open_api() as api:
        api.stream("block/get", {"cid": str(CID.parse(cid))}, write_stdout)
    sys.stdout.buffer.flush()


@block.command("stat")
@click.argument("cid")
@json_option
def block_stat(cid: str, as_json: bool) -> None:
    """Print a block's CID and size."""
    with open_api() as api:
        stat = api.call("block/stat", {"cid": str(CID.parse(cid))})
    if as_json:
        emit_json(stat)
    else:
        click.echo(f"Key: {stat['Key']}\nSize: {stat['Size']}")


@block.command("rm")
@click.argument("cids", nargs=-1, required=True)
def block_rm(cids: tuple[str, ...]) -> None:
    """Delete blocks; if any is pinned or absent, none is deleted."""
    with open_api() as api:
        removed = api.call("block/rm", {"cids": _parsed(cids)})["Removed"]
    for cid in removed:
        click.echo(f"removed {cid}")


def _parsed(cids: tuple[str, ...]) -> list[str]:
    """The CIDs, checked here too, so that a typo fails before any daemon is asked."""
    return [str(CID.parse(text)) for text in cids]


# -- dag -------------------------------------------------------------------------------------
@click.group()
def dag() -> None:
    """IPLD DAGs: dag-cbor put/get and CAR export/import."""


@dag.command("put")
@input_argument
@click.option("--input-codec", default="dag-json", type=click.Choice(["dag-json", "dag-cbor"]),
              show_default=True, help="How the input is encoded.")
@click.option("--pin/--no-pin", default=False, help="Pin the new block recursively.")
def dag_put(file: str, input_codec: str, pin: bool) -> None:
    """Store a dag-json (or dag-cbor) document as a dag-cbor block; print its CID."""
    bound = dagjson.MAX_INPUT_SIZE if input_codec == "dag-json" else MAX_BLOCK_SIZE
    with open_api() as api, input_path(api, file, bound) as path:
        stored = api.call("dag/put", {"path": path, "input_codec": input_codec, "pin": pin})
    click.echo(stored["Cid"])


@dag.command("get")
@click.argument("cid")
def dag_get(cid: str) -> None:
    """Print a dag-cbor block as dag-json."""
    with open_api() as api:
        click.echo(api.call("dag/get", {"cid": str(CID.parse(cid))})["Json"])


@dag.command("export")
@click.argument("cid")
def dag_export(cid: str) -> None:
    """Write the DAG under CID to stdout as a CARv1 (nothing at all if its root is absent)."""
    with open_api() as api:
        api.stream("dag/export", {"cid": str(CID.parse(cid))}, write_stdout)
    sys.stdout.buffer.flush()


@dag.command("import")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--pin-roots/--no-pin-roots", default=True,
              help="Pin each CAR's roots recursively (default on).")
@json_option
def dag_import(files: tuple[str, ...], pin_roots: bool, as_json: bool) -> None:
    """Import CAR files (v1 or v2), verifying every block; pin their roots."""
    if files.count("-") > 1:
        raise click.BadParameter("standard input can be read only once", param_hint="FILES")
    with open_api() as api, contextlib.ExitStack() as stack:
        paths = [stack.enter_context(input_path(api, name, None)) for name in files]
        report = api.call("dag/import", {"paths": paths, "pin_roots": pin_roots})
    if as_json:
        emit_json(report)
        return
    for item in report:
        state = "success" if item["Pinned"] else "not pinned"
        click.echo(f"Pinned root {item['Root']} {state} ({item['Blocks']} blocks)")


# -- pin -------------------------------------------------------------------------------------
@click.group()
def pin() -> None:
    """Pins: what garbage collection keeps."""


@pin.command("add")
@click.argument("cids", nargs=-1, required=True)
@click.option("--recursive/--direct", "-r", default=True,
              help="Keep everything the CID reaches (default), or only its own block.")
def pin_add(cids: tuple[str, ...], recursive: bool) -> None:
    """Pin CIDs so that garbage collection keeps them."""
    with open_api() as api:
        pinned = api.call("pin/add", {"cids": _parsed(cids), "recursive": recursive})["Pins"]
    for cid in pinned:
        click.echo(f"pinned {cid} {'recursively' if recursive else 'directly'}")


@pin.command("rm")
@click.argument("cids", nargs=-1, required=True)
def pin_rm(cids: tuple[str, ...]) -> None:
    """Unpin CIDs; their blocks go at the next `repo gc` unless another pin reaches them."""
    with open_api() as api:
        unpinned = api.call("pin/rm", {"cids": _parsed(cids)})["Pins"]
    for cid in unpinned:
        click.echo(f"unpinned {cid}")


@pin.command("ls")
@click.option("--type", "kind", type=click.Choice(["all", "recursive", "direct"]), default="all",
              show_default=True, help="Which pins to list.")
@json_option
def pin_ls(kind: str, as_json: bool) -> None:
    """List pinned CIDs and how each is pinned."""
    with open_api() as api:
        keys = api.call("pin/ls", {"type": kind})["Keys"]
    if as_json:
        emit_json({"Keys": keys})
        return
    for cid, info in keys.items():
        click.echo(f"{cid} {info['Type']}")


# -- repo ------------------------------------------------------------------------------------
@click.group()
def repo() -> None:
    """Repo maintenance: stat, verify, gc."""


@repo.command("stat")
@json_option
def repo_stat(as_json: bool) -> None:
    """Print the repo's path, block count, size in bytes and datastore engine."""
    with open_api() as api:
        info = api.call("repo/stat", {})
    if as_json:
        emit_json(info)
        return
    for key in ("RepoPath", "NumObjects", "RepoSize", "Datastore"):
        click.echo(f"{key}: {info[key]}")


@repo.command("verify")
@json_option
def repo_verify(as_json: bool) -> None:
    """Re-hash every block; exit 1 if any does not match its CID."""
    with open_api() as api:
        result = api.call("repo/verify", {})
    if as_json:
        emit_json(result)
    else:
        for cid in result["Corrupt"]:
            click.echo(f"block {cid} is corrupt", err=True)
        click.echo(f"verified {result['Checked']} blocks, {len(result['Corrupt'])} corrupt")
    if result["Corrupt"]:
        sys.exit(1)


@repo.command("gc")
@json_option
def repo_gc(as_json: bool) -> None:
    """Remove every block that no pin reaches."""
    with open_api() as api:
        removed = api.call("repo/gc", {})["Removed"]
    if as_json:
        emit_json({"Removed": removed})
        return
    for cid in removed:
        click.echo(f"removed {cid}")
