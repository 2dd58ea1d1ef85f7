"""`blockmesh cluster add|pin|status|alloc|recover|peers`: the pinset, through a member daemon.

ipfs-cluster-ctl's commands, each a call to the API of the member daemon that runs on
$BLOCKMESH_PATH; that daemon orders changes through PBFT, signed as the member.
"""

from __future__ import annotations

import os
from typing import Any

import click

from blockmesh.cli.output import emit_json, json_option
from blockmesh.cli.remote import require_daemon
from blockmesh.data.cid import CID

replication_options = [
    click.option("--replication-min", "rmin", type=click.IntRange(-1), default=None,
                 help="Members that must hold it at least (-1: every member; default: the "
                      "cluster's)."),
    click.option("--replication-max", "rmax", type=click.IntRange(-1), default=None,
                 help="Members that should hold it (-1: every member; default: the "
                      "cluster's)."),
    click.option("--replication", "replication", type=click.IntRange(-1), default=None,
                 help="Set both factors at once."),
    click.option("--name", "-n", default="", help="A human-readable name for the pin."),
    click.option("--expire-in", type=click.IntRange(0), default=0,
                 help="Seconds until the cluster drops the pin (0: never)."),
]
verified_option = click.option(
    "--verified", is_flag=True,
    help="Order the read through PBFT: the answer is what f+1 members agreed on, not this "
         "member's word.")


def _with(options: list[Any]) -> Any:
    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def _factors(rmin: int | None, rmax: int | None, replication: int | None) -> dict[str, int]:
    if replication is not None:
        rmin = replication if rmin is None else rmin
        rmax = replication if rmax is None else rmax
    return {"replication_min": rmin or 0, "replication_max": rmax or 0}


def _call(command: str, **args: Any) -> Any:
    return require_daemon(f"cluster {command.split('/', 1)[1].replace('/', ' ')}").call(
        command, **args)


def _print_status(status: dict[str, Any]) -> None:
    click.echo(f"{status['cid']}{' | ' + status['name'] if status['name'] else ''}:")
    for m in status["members"]:
        when = f" since {m['since']}" if m["since"] else ""
        error = f": {m['error']}" if m["error"] else ""
        down = " (member down)" if m["down"] else ""
        click.echo(f"    > {m['node']:<8} {m['status'].upper():<10}{when}{error}{down}")


@click.command("add")
@click.argument("path", type=click.Path(exists=True))
@click.option("-r", "--recursive", is_flag=True, help="Add a directory recursively.")
@click.option("-Q", "--quieter", is_flag=True, help="Print only the root CID.")
@click.option("--cid-version", type=click.IntRange(0, 1), default=None, help="CID version.")
@click.option("--raw-leaves/--no-raw-leaves", default=None, help="Leaves as raw blocks.")
@click.option("--chunker", "-s", default=None, help="Chunker, e.g. size-262144.")
@_with(replication_options)
@json_option
def cluster_add(path: str, recursive: bool, quieter: bool, cid_version: int | None,
                raw_leaves: bool | None, chunker: str | None, rmin: int | None,
                rmax: int | None, replication: int | None, name: str, expire_in: int,
                as_json: bool) -> None:
    """Import PATH on this member and pin its root in the cluster (allocated by consensus,
    fetched by the allocated members over Bitswap)."""
    answer = _call("cluster/add", paths=[os.path.abspath(path)], recursive=recursive,
                   cid_version=cid_version, raw_leaves=raw_leaves, chunker=chunker, name=name,
                   expire_in=expire_in, **_factors(rmin, rmax, replication))
    if as_json:
        emit_json(answer)
    elif quieter:
        click.echo(answer["cid"])
    else:
        for item in answer["added"]:
            click.echo(f"added {item['Hash']} {item['Name']}")
        click.echo(f"allocated to {', '.join(answer['allocations'])}")


@click.group("pin")
def cluster_pin() -> None:
    """The cluster's pinset: add, rm, ls, update."""


@cluster_pin.command("add")
@click.argument("cid")
@_with(replication_options)
@json_option
def cluster_pin_add(cid: str, rmin: int | None, rmax: int | None, replication: int | None,
                    name: str, expire_in: int, as_json: bool) -> None:
    """Pin CID in the cluster; the allocated members fetch it from whoever has it."""
    answer = _call("cluster/pin/add", cid=str(CID.parse(cid)), name=name, expire_in=expire_in,
                   **_factors(rmin, rmax, replication))
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"pinned {answer['cid']}, allocated to {', '.join(answer['allocations'])}")


@cluster_pin.command("rm")
@click.argument("cid")
@json_option
def cluster_pin_rm(cid: str, as_json: bool) -> None:
    """Unpin CID in the cluster; every member that held it drops it."""
    answer = _call("cluster/pin/rm", cid=str(CID.parse(cid)))
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"unpinned {answer['cid']}")


@cluster_pin.command("update")
@click.argument("from_cid")
@click.argument("to_cid")
@json_option
def cluster_pin_update(from_cid: str, to_cid: str, as_json: bool) -> None:
    """Pin TO_CID with FROM_CID's options and allocations, then unpin FROM_CID."""
    answer = _call("cluster/pin/update", **{"from": str(CID.parse(from_cid)),
                                             "to": str(CID.parse(to_cid))})
    if as_json:
        emit_json(answer)
    else:
        click.echo(f"pinned {answer['cid']} in place of {from_cid}")


@cluster_pin.command("ls")
@verified_option
@json_option
def cluster_pin_ls(verified: bool, as_json: bool) -> None:
    """The pins of the cluster with their factors and allocations."""
    pins = _call("cluster/pin/ls", verified=verified)
    if as_json:
        emit_json(pins)
        return
    for pin in pins:
        factors = f"{pin['replication_min']}..{pin['replication_max']}"
        click.echo(f"{pin['cid']} | {pin['name'] or '-'} | replication {factors} | "
                   f"{', '.join(pin['allocations'])}")


@click.command("status")
@click.argument("cid", required=False)
@verified_option
@json_option
def cluster_status(cid: str | None, verified: bool, as_json: bool) -> None:
    """Each member's state for CID (or every pin): queued, pinning, pinned, pin_error,
    unpinned, or remote (not allocated there)."""
    args: dict[str, Any] = {"verified": verified}
    if cid is not None:
        args["cid"] = str(CID.parse(cid))
    answer = _call("cluster/status", **args)
    if as_json:
        emit_json(answer)
        return
    for status in [answer] if cid is not None else answer:
        _print_status(status)


@click.command("alloc")
@click.argument("cid")
@verified_option
@json_option
def cluster_alloc(cid: str, verified: bool, as_json: bool) -> None:
    """The members CID is allocated to."""
    answer = _call("cluster/alloc", cid=str(CID.parse(cid)), verified=verified)
    if as_json:
        emit_json(answer)
    else:
        click.echo("\n".join(answer["allocations"]))


@click.command("recover")
@click.argument("cid")
@json_option
def cluster_recover(cid: str, as_json: bool) -> None:
    """Clear CID's audit exclusions and errors so it is allocated and pinned afresh."""
    answer = _call("cluster/recover", cid=str(CID.parse(cid)))
    if as_json:
        emit_json(answer)
    else:
        _print_status(answer)


@click.group("peers")
def cluster_peers() -> None:
    """The members of the cluster."""


@cluster_peers.command("ls")
@json_option
def cluster_peers_ls(as_json: bool) -> None:
    """Every member: node id, peer id, swarm and replica addresses, connected, down."""
    answer = _call("cluster/peers")
    if as_json:
        emit_json(answer)
        return
    click.echo(f"view {answer['view']}, primary {answer['primary']}, height {answer['height']}")
    for m in answer["members"]:
        state = "this member" if m["self"] else (
            "connected" if m["connected"] else "not connected")
        click.echo(f"{m['node']:<8} {m['peer_id']}  {m['swarm']}  replica {m['replica']}  "
                   f"{state}{'  DOWN' if m['down'] else ''}")


COMMANDS = (cluster_add, cluster_pin, cluster_status, cluster_alloc, cluster_recover,
            cluster_peers)
