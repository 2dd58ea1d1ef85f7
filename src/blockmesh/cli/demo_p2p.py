"""The P2P demos: the seed's Alice/Bob exchange, a full mesh moving a file, and the seed's
block-size benchmark. Every node is a real Node with its own repo on a 127.0.0.1 ephemeral
port, and every byte crosses libp2p and Bitswap; each run checks what arrived."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import click
import trio

from blockmesh.data.cid import CID
from blockmesh.data.dag import exporter
from blockmesh.data.dag.importer import ImportOptions
from blockmesh.data.net import NetConfig
from blockmesh.data.node import Node
from blockmesh.data.store.repo import Repo
from blockmesh.errors import BlockmeshError

LOOPBACK = NetConfig(listen_addrs=("/ip4/127.0.0.1/tcp/0",))
GREETING = b"Hello from Alice!"
# Every demo is bounded; a hang is reported instead of waited out.
DEMO_TIMEOUT = 600.0
STALL_TIMEOUT = 20.0
MIB = 1 << 20


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise BlockmeshError(f"demo check failed: {what}")


def _short(peer_id: str) -> str:
    return peer_id[:12] + "..."


@asynccontextmanager
async def _nodes(work: Path, names: list[str]) -> AsyncIterator[list[Node]]:
    """Running nodes, one fresh repo each, closed in reverse order."""
    async with AsyncExitStack() as stack:
        nodes = []
        for name in names:
            repo = stack.enter_context(Repo.init(work / name))
            node = Node(repo, net_config=LOOPBACK)
            await stack.enter_async_context(node.run())
            nodes.append(node)
        yield nodes


def _print_node(number: int, label: str, node: Node) -> None:
    click.echo(f"{number}. Creating {label} Bitswap node ({node.repo.path.name.capitalize()}):")
    click.echo(f"   Peer ID: {node.peer_id}")
    addrs = node.addrs()
    click.echo(f"   Listening on {len(addrs)} address{'es' if len(addrs) != 1 else ''}:")
    for addr in addrs:
        click.echo(f"      {addr}")
    click.echo(f"   {node.repo.path.name.capitalize()} node ready\n")


def _print_stats(name: str, node: Node) -> None:
    stats = node.stats()
    click.echo(f"   {name}'s stats:")
    click.echo(f"      Peer ID: {_short(node.peer_id)}")
    for key, label in (("connected_peers", "Connected peers"), ("blocks_sent", "Blocks sent"),
                       ("blocks_received", "Blocks received"), ("data_sent", "Bytes sent"),
                       ("data_received", "Bytes received"),
                       ("dup_blocks_received", "Duplicate blocks"),
                       ("wantlist_size", "Want-list size")):
        click.echo(f"      {label}: {stats[key]}")
    click.echo("")


async def alice_and_bob(work: Path) -> None:
    click.echo("=== P2P Networking and Bitswap Demo ===\n")
    with trio.fail_after(DEMO_TIMEOUT):
        async with _nodes(work, ["alice", "bob"]) as (alice, bob):
            _print_node(1, "first", alice)
            _print_node(2, "second", bob)

            click.echo("3. Connecting nodes:")
            click.echo("   Connecting Bob to Alice...")
            peer = await bob.connect(alice.addrs()[0])
            click.echo(f"   Connected to peer {_short(peer)}\n")

            click.echo("4. Block sharing demonstration:")
            click.echo(f'   Alice storing data: "{GREETING.decode()}"')
            cid = alice.add_bytes(GREETING)
            click.echo(f"   Stored block {cid} and offered it to "
                       f"{len(alice.peers())} peer(s)\n")
            click.echo("   Bob requesting Alice's block...")
            click.echo(f"   Requesting from {len(bob.peers())} connected peer(s) over Bitswap")
            started = trio.current_time()
            data = await bob.cat(cid, stall_timeout=STALL_TIMEOUT)
            elapsed = trio.current_time() - started
            received = bob.stats()["blocks_received"]
            _check(data == GREETING, "Bob's bytes equal Alice's")
            _check(received == 1 and bob.repo.blocks.has(cid),
                   "Bob received the block from Alice and stored it")
            click.echo(f"   Received, verified and stored the block in {elapsed * 1000:.1f} ms")
            click.echo(f'   Bob retrieved: "{data.decode()}"\n')

            click.echo("5. Network statistics:")
            _print_stats("Alice", alice)
            _print_stats("Bob", bob)


async def mesh(work: Path, count: int, size: int) -> None:
    """Full mesh of `count` nodes; node 0 adds `size` random bytes, the others fetch in turn."""
    click.echo(f"=== Full mesh of {count} nodes: {size / MIB:g} MiB from node 0 to the rest ===")
    with trio.fail_after(DEMO_TIMEOUT):
        async with _nodes(work, [f"node{i}" for i in range(count)]) as nodes:
            started = trio.current_time()
            for i, node in enumerate(nodes):
                for other in nodes[i + 1:]:
                    await other.connect(node.addrs()[0])
            links = count * (count - 1) // 2
            click.echo(f"connected {links} pairs in {trio.current_time() - started:.2f} s")
            payload = os.urandom(size)
            digest = hashlib.sha256(payload).digest()
            cid = nodes[0].add_bytes(payload)
            click.echo(f"node 0 added {cid}")
            for i, node in enumerate(nodes[1:], start=1):
                started = trio.current_time()
                blocks = await node.fetch(cid, stall_timeout=STALL_TIMEOUT)
                elapsed = trio.current_time() - started
                _check(_sha256_of(node, cid) == digest, f"node {i} has the same bytes")
                senders = [p.id for p in node.peers()
                           if (node.ledger(p.id) or {}).get("blocks_received", 0)]
                click.echo(f"node {i}: {blocks} blocks in {elapsed:.3f} s, "
                           f"{size / MIB / elapsed:.1f} MiB/s, from {len(senders)} peer(s)")


def _sha256_of(node: Node, cid: CID) -> bytes:
    digest = hashlib.sha256()
    for chunk in exporter.read_file(node.repo.blocks.get, cid):
        digest.update(chunk)
    return digest.digest()


async def block_size_bench(work: Path, block_size: int, total: int) -> None:
    """The seed's benchmark: `total` bytes as raw blocks of `block_size`, Alice to Bob."""
    with trio.fail_after(DEMO_TIMEOUT):
        async with _nodes(work, [f"alice-{block_size}", f"bob-{block_size}"]) as (alice, bob):
            await bob.connect(alice.addrs()[0])
            payload = os.urandom(total)
            opts = ImportOptions(cid_version=1, raw_leaves=True, chunk_size=block_size)
            cid = alice.add_bytes(payload, opts)
            started = trio.current_time()
            blocks = await bob.fetch(cid, stall_timeout=STALL_TIMEOUT)
            elapsed = trio.current_time() - started
            _check(_sha256_of(bob, cid) == hashlib.sha256(payload).digest(),
                   "Bob has the same bytes")
            click.echo(f"block size {block_size:>8} B: {blocks:>6} blocks, "
                       f"{total / 1e6 / elapsed:7.1f} MB/s, {blocks / elapsed:8.0f} blocks/s "
                       f"({elapsed:.2f} s)")
