"""Data-plane commands, with kubo's names and flags: init add cat get ls block dag pin repo.

While a daemon runs on the repo, add, cat, get, ls, block get/stat and pin ls go through its API
(cat and get then fetch from the network); the other commands refuse rather than open the repo
under the daemon (see `remote.py`).
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any

import click

from blockmesh.cli.output import emit_json, json_option, progress_bar
from blockmesh.cli.remote import open_local_repo, running_daemon
from blockmesh.daemon import DaemonClient
from blockmesh.daemon.imports import import_options
from blockmesh.data.cid import CID, Codec, codec_from_name, hash_from_name
from blockmesh.data.dag import dagcbor, dagjson, dagpb, exporter
from blockmesh.data.dag.car import import_car, write_car
from blockmesh.data.dag.importer import Added, import_path
from blockmesh.data.dag.links import walk
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.store.blockstore import BatchedPut
from blockmesh.data.store.repo import Repo
from blockmesh.errors import DecodeError, NotFound, UnsupportedError

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
    client = None if only_hash else running_daemon()
    if client is not None:
        flags = {"cid_version": cid_version, "raw_leaves": raw_leaves, "chunker": chunker,
                 "trickle": trickle, "hash": hash_name, "hidden": hidden}
        import_options(None, **{k: v for k, v in flags.items() if k != "hash"},
                       hash_name=hash_name)  # bad flags fail here, before the daemon sees them
        for path in paths:
            if not os.path.exists(path):
                raise FileNotFoundError(2, "No such file or directory", path)
        added = client.call("add", paths=[os.path.abspath(p) for p in paths],
                            recursive=recursive, pin=pin, **flags)
        _report_added(added, quiet, quieter, as_json)
        return
    repo = None if only_hash else Repo.open()
    opts = import_options(repo.config.imports if repo else None, cid_version=cid_version,
                          raw_leaves=raw_leaves, chunker=chunker, trickle=trickle,
                          hash_name=hash_name, hidden=hidden)
    results: list[Added] = []
    try:
        with progress_bar("adding", _size_of(paths), quiet or quieter or as_json) as progress:
            if repo is None:
                for path in paths:
                    results.extend(import_path(path, opts, None, progress, recursive))
            else:
                sink = BatchedPut(repo.blocks)
                with repo.gc_lock():
                    for path in paths:
                        added = list(import_path(path, opts, sink, progress, recursive))
                        sink.flush()
                        if pin:
                            repo.pins.add(added[-1].cid)
                        results.extend(added)
    finally:
        if repo is not None:
            repo.close()
    _report_added([{"Name": a.path, "Hash": str(a.cid), "Size": a.size} for a in results],
                  quiet, quieter, as_json)


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


@click.command()
@click.argument("cid")
@stall_option
def cat(cid: str, stall_timeout: float | None) -> None:
    """Write the file at CID to standard output (fetched from peers when a daemon runs)."""
    root = CID.parse(cid)
    out = sys.stdout.buffer
    client = running_daemon()
    if client is not None:
        _fetch(client, root, stall_timeout, True)
        for part in client.stream("cat", cid=str(root)):
            out.write(part)
        out.flush()
        return
    with Repo.open() as repo:
        for part in exporter.read_file(repo.blocks.get, root):
            out.write(part)
        out.flush()


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
    client = running_daemon()
    if client is not None:
        _fetch(client, root, stall_timeout, quiet)
        final = client.call("get", cid=str(root), dest=str(dest.absolute()))["Path"]
    else:
        with Repo.open() as repo, progress_bar("saving", None, quiet) as progress:
            final = exporter.write_tree(repo.blocks.get, root, dest, progress)
    if not quiet:
        click.echo(f"Saving file(s) to {final}", err=True)


@click.command()
@click.argument("cid")
@json_option
def ls(cid: str, as_json: bool) -> None:
    """List the links of a UnixFS directory."""
    root = CID.parse(cid)
    client = running_daemon()
    if client is not None:
        listing = client.call("ls", cid=str(root))
    else:
        with Repo.open() as repo:
            listing = [{"Name": e.name, "Hash": str(e.cid), "Size": e.size, "Type": e.type}
                       for e in exporter.list_directory(repo.blocks.get, root)]
    if as_json:
        emit_json(listing)
        return
    for e in listing:
        click.echo(f"{e['Hash']} {e['Size']} {e['Name']}{'/' if e['Type'] == 'directory' else ''}")


# -- block -----------------------------------------------------------------------------------
@click.group()
def block() -> None:
    """Raw blocks: put, get, stat, rm."""


@block.command("put")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--cid-codec", default="raw",
              help="Codec of the new CID (raw, dag-pb, dag-cbor, libp2p-key); dag-pb and "
                   "dag-cbor blocks must decode under it.")
@click.option("--mhtype", default="sha2-256", help="Hash function.")
@click.option("--pin/--no-pin", default=False, help="Pin the block.")
@json_option
def block_put(file, cid_codec: str, mhtype: str, pin: bool, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    """Store the bytes of FILE (or stdin) as one block and print its CID.

    Blocks above the size Bitswap and CAR carry are refused: stored, they could never leave the
    node. A block that does not decode under its codec is refused too, or pinning and GC, which
    follow its links, would fail on it later."""
    codec = codec_from_name(cid_codec)
    hash_code = hash_from_name(mhtype)
    data = file.read(MAX_BLOCK_SIZE + 1)
    if len(data) > MAX_BLOCK_SIZE:
        raise UnsupportedError(f"block is over {MAX_BLOCK_SIZE} bytes, the largest Bitswap and "
                               "CAR accept")
    try:
        if codec == Codec.DAG_CBOR:
            dagcbor.decode(data)
        elif codec == Codec.DAG_PB:
            dagpb.decode(data)
    except DecodeError as exc:
        raise DecodeError(f"block is not valid {cid_codec}: {exc}") from None
    cid = CID.of(data, codec, 1, hash_code)
    with open_local_repo("block put") as repo, repo.gc_lock():
        repo.blocks.put(cid, data)
        if pin:
            repo.pins.add(cid, "direct")
    if as_json:
        emit_json({"Key": str(cid), "Size": len(data)})
    else:
        click.echo(str(cid))


@block.command("get")
@click.argument("cid")
def block_get(cid: str) -> None:
    """Write a block's raw bytes to stdout."""
    parsed = CID.parse(cid)
    client = running_daemon()
    if client is not None:
        data = b"".join(client.stream("block/get", cid=str(parsed)))
    else:
        with Repo.open() as repo:
            data = repo.blocks.get(parsed)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


@block.command("stat")
@click.argument("cid")
@json_option
def block_stat(cid: str, as_json: bool) -> None:
    """Print a block's CID and size."""
    parsed = CID.parse(cid)
    client = running_daemon()
    if client is not None:
        size = client.call("block/stat", cid=str(parsed))["Size"]
    else:
        with Repo.open() as repo:
            size = repo.blocks.size(parsed)
    if as_json:
        emit_json({"Key": str(parsed), "Size": size})
    else:
        click.echo(f"Key: {parsed}\nSize: {size}")


@block.command("rm")
@click.argument("cids", nargs=-1, required=True)
def block_rm(cids: tuple[str, ...]) -> None:
    """Delete blocks (pinned ones are refused)."""
    with open_local_repo("block rm") as repo:
        pinned = repo.live_set()
        for text in cids:
            cid = CID.parse(text)
            if cid.multihash in pinned:
                raise UnsupportedError(f"{cid} is pinned; unpin it first")
            repo.blocks.delete(cid)
            click.echo(f"removed {cid}")


# -- dag -------------------------------------------------------------------------------------
@click.group()
def dag() -> None:
    """IPLD DAGs: dag-cbor put/get and CAR export/import."""


@dag.command("put")
@click.argument("file", type=click.File("rb"), default="-")
@click.option("--input-codec", default="dag-json", type=click.Choice(["dag-json", "dag-cbor"]),
              show_default=True, help="How the input is encoded.")
@click.option("--pin/--no-pin", default=False, help="Pin the new block recursively.")
def dag_put(file, input_codec: str, pin: bool) -> None:  # type: ignore[no-untyped-def]
    """Store a dag-json (or dag-cbor) document as a dag-cbor block; print its CID."""
    if input_codec == "dag-json":
        data = dagcbor.encode(dagjson.decode(file.read(dagjson.MAX_INPUT_SIZE + 1)))
    else:
        data = file.read(MAX_BLOCK_SIZE + 1)
        dagcbor.decode(data)
    if len(data) > MAX_BLOCK_SIZE:
        raise UnsupportedError(f"the dag-cbor block would be {len(data)} bytes, over the "
                               f"{MAX_BLOCK_SIZE} Bitswap and CAR accept")
    cid = CID.of(data, Codec.DAG_CBOR)
    with open_local_repo("dag put") as repo, repo.gc_lock():
        repo.blocks.put(cid, data, verify=False)
        if pin:
            repo.pin(cid)
    click.echo(str(cid))


@dag.command("get")
@click.argument("cid")
def dag_get(cid: str) -> None:
    """Print a dag-cbor block as dag-json."""
    parsed = CID.parse(cid)
    if parsed.codec != Codec.DAG_CBOR:
        raise UnsupportedError(f"{parsed} is {parsed.codec_name}; dag get reads dag-cbor")
    with open_local_repo("dag get") as repo:
        value = dagcbor.decode(repo.blocks.get(parsed))
    click.echo(dagjson.encode(value))


@dag.command("export")
@click.argument("cid")
def dag_export(cid: str) -> None:
    """Write the DAG under CID to stdout as a CARv1."""
    root = CID.parse(cid)
    with open_local_repo("dag export") as repo:
        blocks = walk(repo.blocks.get, root)
        try:  # a missing root fails here, before the CAR header goes out
            first = next(blocks)
        except NotFound:
            raise NotFound(f"{root} is not in the repo") from None
        out = sys.stdout.buffer
        write_car(out, [root], itertools.chain([first], blocks))
        out.flush()


@dag.command("import")
@click.argument("files", nargs=-1, required=True, type=click.File("rb"))
@click.option("--pin-roots/--no-pin-roots", default=True,
              help="Pin each CAR's roots recursively (default on).")
@json_option
def dag_import(files, pin_roots: bool, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    """Import CAR files (v1 or v2), verifying every block; pin their roots."""
    report = []
    with open_local_repo("dag import") as repo, repo.gc_lock():
        for file in files:
            batch = BatchedPut(repo.blocks)
            roots, count = import_car(file, batch)
            batch.flush()
            for root in roots:
                if pin_roots:
                    repo.pin(root)
                report.append({"Root": str(root), "Blocks": count, "Pinned": pin_roots})
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
    with open_local_repo("pin add") as repo, repo.gc_lock():
        for text in cids:
            cid = CID.parse(text)
            repo.pin(cid, recursive)
            click.echo(f"pinned {cid} {'recursively' if recursive else 'directly'}")


@pin.command("rm")
@click.argument("cids", nargs=-1, required=True)
def pin_rm(cids: tuple[str, ...]) -> None:
    """Unpin CIDs; their blocks go at the next `repo gc` unless another pin reaches them."""
    with open_local_repo("pin rm") as repo:
        for text in cids:
            cid = CID.parse(text)
            repo.pins.remove(cid)
            click.echo(f"unpinned {cid}")


@pin.command("ls")
@click.option("--type", "kind", type=click.Choice(["all", "recursive", "direct"]), default="all",
              show_default=True, help="Which pins to list.")
@json_option
def pin_ls(kind: str, as_json: bool) -> None:
    """List pinned CIDs and how each is pinned."""
    client = running_daemon()
    if client is not None:
        keys = client.call("pin/ls", type=kind)["Keys"]
    else:
        with Repo.open() as repo:
            keys = {str(cid): {"Type": k} for cid, k in repo.pins.list(
                None if kind == "all" else kind)}
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
    with open_local_repo("repo stat") as handle:
        stat = handle.blocks.stat()
        info = {"RepoPath": str(handle.path), "NumObjects": stat.blocks, "RepoSize": stat.bytes,
                "Datastore": handle.config.datastore.engine}
    if as_json:
        emit_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key}: {value}")


@repo.command("verify")
@json_option
def repo_verify(as_json: bool) -> None:
    """Re-hash every block; exit 1 if any does not match its CID."""
    with open_local_repo("repo verify") as handle:
        result = handle.verify()
    if as_json:
        emit_json({"Checked": result.checked, "Corrupt": [str(c) for c in result.corrupt]})
    else:
        for cid in result.corrupt:
            click.echo(f"block {cid} is corrupt", err=True)
        click.echo(f"verified {result.checked} blocks, {len(result.corrupt)} corrupt")
    if result.corrupt:
        sys.exit(1)


@repo.command("gc")
@json_option
def repo_gc(as_json: bool) -> None:
    """Remove every block that no pin reaches."""
    with open_local_repo("repo gc") as handle:
        result = handle.gc()
    if as_json:
        emit_json({"Removed": [str(c) for c in result.removed]})
        return
    for cid in result.removed:
        click.echo(f"removed {cid}")
