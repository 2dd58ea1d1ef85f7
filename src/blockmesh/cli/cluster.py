"""`blockmesh cluster …`: create, run and drive a PBFT replica set."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from blockmesh.cli.cluster_pins import COMMANDS
from blockmesh.cli.output import emit_json, json_option
from blockmesh.control import event_loop
from blockmesh.control.cluster.client import ClusterClient, unreachable_error
from blockmesh.control.cluster.config import (
    DEFAULT_CLIENTS,
    TRANSPORTS,
    ClusterConfig,
    add_client,
    init_cluster,
    migrate_keys,
)
from blockmesh.control.cluster.identity import ROLES, ClientIdentity
from blockmesh.control.cluster.loadgen import run_load
from blockmesh.control.consensus.app import (
    STATUS_NOT_FOUND,
    STATUS_OK,
    decode_result,
    encode_delete,
    encode_get,
    encode_set,
)
from blockmesh.control.pinset.config import (
    MAX_EXCLUSION_PERIOD,
    MIN_EXCLUSION_PERIOD,
    PinsetConfig,
)
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.errors import BlockmeshError

cluster_option = click.option(
    "--cluster", "cluster_path", type=click.Path(dir_okay=False, exists=True), required=True,
    help="The cluster's cluster.toml.")
transport_option = click.option(
    "--transport", type=click.Choice(TRANSPORTS), default=None,
    help="Transport to speak (default: the one cluster.toml names).")

identity_option = click.option(
    "--identity", "identity_path", type=click.Path(dir_okay=False), default=None,
    help="Client key file to act as (default: the cluster's first writer, "
         "clients/<id>.key next to cluster.toml).")


def _identity(config: ClusterConfig, identity_path: str | None) -> ClientIdentity:
    return (config.identity(Path(identity_path)) if identity_path is not None
            else config.writer_identity(0))


@click.group()
def cluster() -> None:
    """The cluster: PBFT members that decide which of them stores which content.

    Member daemons (`cluster init`, then `blockmesh daemon` on each DIR/nodeK) run both planes;
    `cluster add/pin/status/alloc/recover/peers` talk to the member of $BLOCKMESH_PATH.
    `cluster start/submit/health/blocks` drive stand-alone replicas (--replicas-only).
    """


@cluster.command("init")
@click.option("--nodes", default=4, show_default=True, help="Replicas, n = 3f + 1.")
@click.option("--host", "hosts", multiple=True, default=["127.0.0.1"], show_default=True,
              help="Address replicas (and members' swarms) bind: once for all nodes, or "
                   "repeated once per node in node order (--host H0 --host H1 ...) to give "
                   "each its own address.")
@click.option("--base-port", default=7000, show_default=True,
              help="Replica k listens on base-port + k, serves /metrics on base-port + 100 + k "
                   "and (members) its swarm on base-port + 200 + k.")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Directory for cluster.toml, clients/clientK.key and the nodes.")
@click.option("--checkpoint-interval", default=100, show_default=True,
              help="Sequence numbers between checkpoints.")
@click.option("--clients", type=click.IntRange(1), default=None,
              help="Client identities to create (the load generator needs one per client; "
                   f"default {DEFAULT_CLIENTS} with --replicas-only, else 1).")
@click.option("--transport", type=click.Choice(TRANSPORTS), default="grpc", show_default=True,
              help="Transport the replicas and clients use by default.")
@click.option("--force", is_flag=True,
              help="Replace the keys of a cluster already in --out (its replicas' data "
                   "directories then refuse to start until moved away).")
@click.option("--replicas-only", is_flag=True,
              help="The stand-alone replica layout (nodeK.toml for `cluster start`, ordering "
                   "the key-value store) instead of member repos.")
@click.option("--reallocate-after", type=click.FloatRange(1, 30 * 86400), default=60.0,
              show_default=True,
              help="Seconds an allocated member may be silent before its pins move elsewhere.")
@click.option("--exclusion-period",
              type=click.FloatRange(MIN_EXCLUSION_PERIOD, MAX_EXCLUSION_PERIOD),
              default=PinsetConfig.exclusion_period, show_default=True,
              help="Seconds a member's first exclusion from a pin (f+1 failed audits) lasts; "
                   "each repeat not yet faded lasts twice the previous one.")
@click.option("--replication-min", type=click.IntRange(-1), default=-1, show_default=True,
              help="Default replication factor minimum of a pin (-1: every member).")
@click.option("--replication-max", type=click.IntRange(-1), default=-1, show_default=True,
              help="Default replication factor maximum of a pin (-1: every member).")
@json_option
def cluster_init(nodes: int, hosts: tuple[str, ...], base_port: int, out: str,
                 checkpoint_interval: int, clients: int | None, transport: str, force: bool,
                 replicas_only: bool, reallocate_after: float, exclusion_period: float,
                 replication_min: int, replication_max: int, as_json: bool) -> None:
    """Generate keys and config for a new cluster: one member repo per node, DIR/nodeK, each
    a BLOCKMESH_PATH for `blockmesh daemon` (both planes), or with --replicas-only the
    stand-alone replica files."""
    root = Path(out)
    if replicas_only:
        config = init_cluster(root, nodes, hosts, base_port, checkpoint_interval,
                              clients=clients or DEFAULT_CLIENTS, transport=transport,
                              force=force)
        configs = {n.id: root / f"{n.id}.toml" for n in config.nodes}
    else:
        from blockmesh.daemon.membership import MEMBER_FILE, init_members

        pinset = PinsetConfig(replication_min, replication_max, reallocate_after,
                              exclusion_period=exclusion_period)
        config = init_members(root, nodes, hosts, base_port, pinset=pinset, transport=transport,
                              checkpoint_interval=checkpoint_interval, clients=clients or 1,
                              force=force)
        configs = {n.id: root / n.id / MEMBER_FILE for n in config.nodes}
    if as_json:
        emit_json({"cluster": str(root / "cluster.toml"),
                   "nodes": [{"id": n.id, "address": n.address, "config": str(configs[n.id]),
                              **({"repo": str(root / n.id), "peer_id": n.peer_id,
                                  "swarm": n.swarm} if n.peer_id else {})}
                             for n in config.nodes]})
        return
    committee = config.committee
    click.echo(f"wrote {root / 'cluster.toml'} (n={committee.n}, f={committee.f}, "
               f"{len(config.writers())} client identities)")
    for node in config.nodes:
        if node.peer_id:
            click.echo(f"wrote {root / node.id}  {node.id}: replica {node.address}, swarm "
                       f"{node.swarm}/p2p/{node.peer_id}")
        else:
            click.echo(f"wrote {configs[node.id]}  {node.id} at {node.address}")


@cluster.group("client")
def cluster_client() -> None:
    """Client identities: each is a key file of its own, listed by public key in cluster.toml."""


@cluster_client.command("new")
@cluster_option
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Key file to write (mode 0600); never overwritten.")
@click.option("--role", type=click.Choice(ROLES), default="writer", show_default=True,
              help="writer: any operation; reader: state and status reads and GETs only.")
@click.option("--id", "client_id", default=None, help="Client id (default: the next clientK).")
@json_option
def cluster_client_new(cluster_path: str, out: str, role: str, client_id: str | None,
                       as_json: bool) -> None:
    """Create a client identity and list it in cluster.toml (replicas load it at start)."""
    info = add_client(Path(cluster_path), Path(out), role, client_id)
    if as_json:
        emit_json({"id": info.id, "role": info.role, "key_file": out,
                   "public_key": info.public_key.hex()})
    else:
        click.echo(f"wrote {out}: {info.id} ({info.role}); restart the replicas to admit it")


@cluster.command("migrate-keys")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
def cluster_migrate_keys(directory: str) -> None:
    """Update an older cluster: client keys out of cluster.toml, TLS certificates for all."""
    written = migrate_keys(Path(directory))
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"rewrote {Path(directory) / 'cluster.toml'}" if written
               else "nothing to migrate: the cluster is up to date")


@cluster.command("start")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              required=True, help="This replica's nodeK.toml.")
@transport_option
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address /metrics binds (on the node's metrics port), whatever address the "
                   "replica itself binds.")
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def cluster_start(config_path: str, transport: str | None, metrics_host: str,
                  verbose: bool) -> None:
    """Run one replica in the foreground until SIGINT or SIGTERM."""
    from blockmesh.control.cluster.runtime import serve

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(Path(config_path), transport, metrics_host)


def parse_operation(words: tuple[str, ...]) -> bytes:
    """`set KEY VALUE`, `get KEY` or `delete KEY` as a KV operation."""
    parts = " ".join(words).split(maxsplit=2)
    if len(parts) == 3 and parts[0] == "set":
        return encode_set(parts[1].encode(), parts[2].encode())
    if len(parts) == 2 and parts[0] == "get":
        return encode_get(parts[1].encode())
    if len(parts) == 2 and parts[0] == "delete":
        return encode_delete(parts[1].encode())
    raise click.UsageError("PAYLOAD is `set KEY VALUE`, `get KEY` or `delete KEY`")


@cluster.command("submit")
@cluster_option
@click.argument("payload", nargs=-1)
@click.option("--count", type=click.IntRange(1), default=None,
              help="Load generator: commit this many requests (no PAYLOAD).")
@click.option("--size", type=click.IntRange(0, 60_000), default=0, show_default=True,
              help="Load generator: value bytes per request.")
@click.option("--clients", type=click.IntRange(1), default=32, show_default=True,
              help="Load generator: concurrent closed-loop clients.")
@click.option("--warmup", type=click.IntRange(0), default=0, show_default=True,
              help="Load generator: unmeasured requests first.")
@identity_option
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for f+1 matching replies to one request.")
@transport_option
@json_option
def cluster_submit(cluster_path: str, payload: tuple[str, ...], count: int | None, size: int,
                   clients: int, warmup: int, identity_path: str | None, timeout: float,
                   transport: str | None, as_json: bool) -> None:
    """Order PAYLOAD (a KV operation) and print its result once f+1 replicas agree.

    With --count, run the closed-loop load generator instead and print committed requests/s
    and p50/p99 latency.
    """
    config = ClusterConfig.load(Path(cluster_path))
    if count is not None:
        if payload:
            raise click.UsageError("--count runs the load generator; give no PAYLOAD")
        result = event_loop.run(run_load(config, count, size, clients, transport, warmup, timeout))
        summary = result.summary()
        if as_json:
            emit_json(summary)
        else:
            click.echo(f"{result.committed} committed, {result.failed} failed in "
                       f"{result.seconds:.2f} s over {result.transport} with {clients} clients: "
                       f"{result.rate:,.0f} req/s, p50 {summary['p50_ms']} ms, "
                       f"p99 {summary['p99_ms']} ms")
        if result.failed:
            sys.exit(1)
        return
    operation = parse_operation(payload)
    identity = _identity(config, identity_path)

    async def once() -> bytes:
        async with ClusterClient(config, transport, identity=identity) as cc:
            return await cc.session(identity).execute(operation, timeout)

    result = decode_result(event_loop.run(once()))
    status = {STATUS_OK: "ok", STATUS_NOT_FOUND: "not_found"}.get(result.status, "bad_request")
    if as_json:
        emit_json({"status": status, "value": result.value.decode(errors="replace")})
    elif result.status == STATUS_OK:
        click.echo(result.value.decode(errors="replace") if result.value else "OK")
    else:
        click.echo(status.replace("_", " ") + (f": {result.value.decode(errors='replace')}"
                                               if result.value else ""))
    if result.status != STATUS_OK:
        sys.exit(1)


@cluster.command("health")
@cluster_option
@identity_option
@transport_option
@json_option
def cluster_health(cluster_path: str, identity_path: str | None, transport: str | None,
                   as_json: bool) -> None:
    """Each replica's view, primary, height, head hash, stable checkpoint and peers.

    Exits non-zero when no replica answers (the rows are printed first all the same).
    """
    config = ClusterConfig.load(Path(cluster_path))
    identity = _identity(config, identity_path)

    async def ask() -> list[dict]:
        async with ClusterClient(config, transport, identity=identity) as cc:
            return await cc.status()

    replicas = event_loop.run(ask())
    if as_json:
        emit_json({"replicas": replicas})
    else:
        for r in replicas:
            if "error" in r:
                click.echo(f"{r['node']:<10} {r['error']}")
                continue
            click.echo(f"{r['node']:<10} view {r['view']:<4} primary {r['primary']:<10} "
                       f"height {r['height']:<7} head {r['head_hash'][:16]}  "
                       f"stable {r['stable_checkpoint']:<7} peers {','.join(r['peers']) or '-'}")
    if all("error" in r for r in replicas):
        raise unreachable_error(config, (n.id for n in config.nodes), "no replica answered")


@cluster.command("blocks")
@cluster_option
@click.option("--from-height", type=click.IntRange(1), default=1, show_default=True,
              help="Height of the first block to show.")
@click.option("--limit", type=click.IntRange(1, 4096), default=20, show_default=True,
              help="Show at most this many blocks.")
@click.option("--node", default=None, help="Ask this replica (default: the first that answers).")
@identity_option
@transport_option
@json_option
def cluster_blocks(cluster_path: str, from_height: int, limit: int, node: str | None,
                   identity_path: str | None, transport: str | None, as_json: bool) -> None:
    """Committed blocks of the hash-chained log, from --from-height on."""
    config = ClusterConfig.load(Path(cluster_path))
    identity = _identity(config, identity_path)

    async def ask() -> tuple[str, pb.SyncStateResponse]:
        async with ClusterClient(config, transport, identity=identity) as cc:
            return await cc.blocks(from_height, limit, node)

    source, answer = event_loop.run(ask())
    blocks = [{"height": b.height, "view": b.view, "hash": b.hash.hex(),
               "prev_hash": b.prev_hash.hex(), "requests": len(b.requests)}
              for b in answer.blocks]
    if as_json:
        emit_json({"node": source, "height": answer.height, "blocks": blocks})
        return
    if not blocks:
        raise BlockmeshError(f"{source} has no block at height {from_height} "
                             f"(its height is {answer.height})")
    for b in blocks:
        click.echo(f"{b['height']:>7}  view {b['view']:<3} {b['hash'][:16]}  "
                   f"prev {b['prev_hash'][:16]}  {b['requests']} requests")


for _command in COMMANDS:
    cluster.add_command(_command)
