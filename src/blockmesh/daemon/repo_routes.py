"""The API routes that need only a repo: add, cat, get, ls, block, dag, pin and repo.

They are the one definition of these commands. The daemon serves them over HTTP beside the
node's network routes, telling `announce` about every block they store so that peers waiting
for it get it; the CLI runs the very same handlers in-process on the repo when no daemon runs
(`cli/invoke.py`), with no announce and a `progress` callback for its progress bar. Nothing here
imports the network stack, so an offline command never loads py-libp2p.

Long jobs (imports, `get` to disk, recursive `pin add`, `repo verify`) run on a worker thread
(`off_loop`), so a daemon keeps serving peers and other requests while a 1 GiB `add` runs; such a
job stops at its next chunk when its request is cancelled (the client hung up, or the daemon is
stopping). GC and `block rm` stay on the event loop, where Bitswap cannot store a block halfway
through them; in the daemon they refuse (RepoBusy, 409) rather than wait while a job writes.

Byte inputs (block put, dag put, dag import) come as an absolute `path` the route opens and reads
under the same bounds whatever the path is (a file, or the CLI's stdin: see `cli/invoke.py`).
Writes hold the repo's GC lock shared (exclusive for `block/rm` and `repo/gc`), whichever
process runs them, so a collection never deletes what an import has stored but not yet pinned.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from blockmesh.daemon import fields
from blockmesh.daemon.dispatch import Routes
from blockmesh.daemon.http import JsonReply, Reply, Send, StreamReply
from blockmesh.daemon.imports import import_options
from blockmesh.data.cid import CID, Codec, codec_from_name, hash_from_name
from blockmesh.data.dag import dagcbor, dagjson, dagpb, exporter
from blockmesh.data.dag.car import car_pieces, import_car
from blockmesh.data.dag.importer import Added, import_path
from blockmesh.data.dag.links import walk
from blockmesh.data.limits import MAX_BLOCK_SIZE
from blockmesh.data.store.blockstore import BatchedPut
from blockmesh.data.store.repo import Repo
from blockmesh.errors import DecodeError, NotFound, UnsupportedError

STREAM_CHUNK = 256 << 10

Announce = Callable[[list[CID]], None]
Progress = Callable[[int], None]
T = TypeVar("T")


async def off_loop(job: Callable[[], T]) -> T:
    """Run a blocking repo job on a worker thread and wait for it (see the module docstring)."""
    return await trio.to_thread.run_sync(job)


class RepoApi(Routes):
    def __init__(self, repo: Repo, *, announce: Announce | None = None,
                 provide: Announce | None = None, progress: Progress | None = None,
                 gc_waits: bool = True) -> None:
        """`gc_waits=False` (the daemon) makes `repo/gc` and `block/rm` refuse while an import
        or pin holds the GC lock: they run on the event loop, which must never block on it."""
        super().__init__()
        self.repo = repo
        self.gc_waits = gc_waits
        self.announce = announce or (lambda cids: None)
        #: Roots that `add` and `pin add` create, for the content routing (daemon only).
        self.provide = provide or (lambda cids: None)
        self.progress = progress
        self.routes.update({
            "add": self.add, "cat": self.cat, "get": self.get, "ls": self.ls,
            "block/put": self.block_put, "block/get": self.block_get,
            "block/stat": self.block_stat, "block/rm": self.block_rm,
            "dag/put": self.dag_put, "dag/get": self.dag_get, "dag/export": self.dag_export,
            "dag/import": self.dag_import,
            "pin/add": self.pin_add, "pin/rm": self.pin_rm, "pin/ls": self.pin_ls,
            "repo/stat": self.repo_stat, "repo/verify": self.repo_verify,
            "repo/gc": self.repo_gc,
        })

    def _ticker(self) -> Progress:
        """The progress callback of a job run by `off_loop`: it also ends the job (raising
        trio.Cancelled in the worker) once the request that started it is cancelled."""
        progress = self.progress

        def tick(done: int) -> None:
            trio.from_thread.check_cancelled()
            if progress is not None:
                progress(done)

        return tick

    # -- files -----------------------------------------------------------------------------------
    async def add(self, body: dict[str, Any]) -> Reply:
        """Import paths (kubo's Name/Hash/Size rows); `only_hash` computes CIDs, stores nothing."""
        paths = fields.absolute_list(body, "paths")
        opts = import_options(
            self.repo.config.imports, cid_version=fields.optional_int(body, "cid_version"),
            raw_leaves=fields.optional_flag(body, "raw_leaves"),
            chunker=fields.text(body, "chunker", required=False),
            trickle=fields.flag(body, "trickle"),
            hash_name=fields.text(body, "hash", required=False),
            hidden=fields.flag(body, "hidden"))
        recursive, pin = fields.flag(body, "recursive"), fields.flag(body, "pin", True)
        only_hash, progress = fields.flag(body, "only_hash"), self._ticker()
        sink = BatchedPut(self.repo.blocks)
        roots: list[CID] = []

        def run() -> list[Added]:
            results: list[Added] = []
            if only_hash:
                for path in paths:
                    results.extend(import_path(path, opts, None, progress, recursive))
                return results
            with self.repo.gc_lock(), sink:  # a failed import leaves no write in flight
                for path in paths:
                    added = list(import_path(path, opts, sink, progress, recursive))
                    sink.flush()
                    if pin:
                        self.repo.pins.add(added[-1].cid)
                    results.extend(added)
                    roots.append(added[-1].cid)
            return results

        results = await off_loop(run)
        self.announce(sink.cids)
        self.provide(roots)
        return JsonReply([{"Name": a.path, "Hash": str(a.cid), "Size": a.size} for a in results])

    async def cat(self, body: dict[str, Any]) -> Reply:
        chunks = exporter.read_file(self.repo.blocks.get, fields.cid(body))
        first = next(chunks, b"")  # a missing root or a non-file fails here, before the 200

        async def produce(send: Send) -> None:
            await send(first)
            for chunk in chunks:
                for start in range(0, len(chunk), STREAM_CHUNK):
                    await send(chunk[start:start + STREAM_CHUNK])

        return StreamReply(produce)

    async def get(self, body: dict[str, Any]) -> Reply:
        """Write the tree at `cid` to `dest` under the exporter's safety rules."""
        cid, dest, progress = fields.cid(body), fields.absolute(body, "dest"), self._ticker()
        final = await off_loop(lambda: exporter.write_tree(self.repo.blocks.get, cid, dest,
                                                           progress))
        return JsonReply({"Path": str(final)})

    async def ls(self, body: dict[str, Any]) -> Reply:
        entries = exporter.list_directory(self.repo.blocks.get, fields.cid(body))
        return JsonReply([{"Name": e.name, "Hash": str(e.cid), "Size": e.size, "Type": e.type}
                          for e in entries])

    # -- blocks ----------------------------------------------------------------------------------
    async def block_put(self, body: dict[str, Any]) -> Reply:
        """Store the bytes at `path` as one block.

        Blocks above the size Bitswap and CAR carry are refused: stored, they could never leave
        the node. A block that does not decode under its codec is refused too, or pinning and GC,
        which follow its links, would fail on it later."""
        codec_name = fields.text(body, "cid_codec", required=False) or "raw"
        codec = codec_from_name(codec_name)
        hash_code = hash_from_name(fields.text(body, "mhtype", required=False) or "sha2-256")
        pin = fields.flag(body, "pin")
        with open(fields.absolute(body, "path"), "rb") as source:
            data = source.read(MAX_BLOCK_SIZE + 1)
        if len(data) > MAX_BLOCK_SIZE:
            raise UnsupportedError(f"block is over {MAX_BLOCK_SIZE} bytes, the largest Bitswap "
                                   "and CAR accept")
        try:
            if codec == Codec.DAG_CBOR:
                dagcbor.decode(data)
            elif codec == Codec.DAG_PB:
                dagpb.decode(data)
        except DecodeError as exc:
            raise DecodeError(f"block is not valid {codec_name}: {exc}") from None
        cid = CID.of(data, codec, 1, hash_code)
        with self.repo.gc_lock():
            self.repo.blocks.put(cid, data)
            if pin:
                self.repo.pins.add(cid, "direct")
        self.announce([cid])
        return JsonReply({"Key": str(cid), "Size": len(data)})

    async def block_get(self, body: dict[str, Any]) -> Reply:
        data = self.repo.blocks.get(fields.cid(body))

        async def produce(send: Send) -> None:
            await send(data)

        return StreamReply(produce)

    async def block_stat(self, body: dict[str, Any]) -> Reply:
        cid = fields.cid(body)
        return JsonReply({"Key": str(cid), "Size": self.repo.blocks.size(cid)})

    async def block_rm(self, body: dict[str, Any]) -> Reply:
        """Delete blocks; a pinned or absent one refuses the whole call before any goes."""
        cids = fields.cids(body)
        with self.repo.gc_lock(exclusive=True, wait=self.gc_waits):
            pinned = self.repo.live_set()
            for cid in cids:
                if cid.multihash in pinned:
                    raise UnsupportedError(f"{cid} is pinned; unpin it first")
                if not self.repo.blocks.has(cid):
                    raise NotFound(f"block {cid} is not in the repo")
            for cid in cids:
                self.repo.blocks.delete(cid)
        return JsonReply({"Removed": [str(c) for c in cids]})

    # -- dag -------------------------------------------------------------------------------------
    async def dag_put(self, body: dict[str, Any]) -> Reply:
        """Store a dag-json (or dag-cbor) document as one dag-cbor block, within the decoders'
        bounds and the block size limit."""
        input_codec = fields.choice(body, "input_codec", ("dag-json", "dag-cbor"))
        pin = fields.flag(body, "pin")
        with open(fields.absolute(body, "path"), "rb") as source:
            if input_codec == "dag-json":
                data = dagcbor.encode(dagjson.decode(source.read(dagjson.MAX_INPUT_SIZE + 1)))
            else:
                data = source.read(MAX_BLOCK_SIZE + 1)
                dagcbor.decode(data)
        if len(data) > MAX_BLOCK_SIZE:
            raise UnsupportedError(f"the dag-cbor block would be {len(data)} bytes, over the "
                                   f"{MAX_BLOCK_SIZE} Bitswap and CAR accept")
        cid = CID.of(data, Codec.DAG_CBOR)
        with self.repo.gc_lock():
            self.repo.blocks.put(cid, data, verify=False)
            if pin:
                self.repo.pin(cid)
        self.announce([cid])
        return JsonReply({"Cid": str(cid)})

    async def dag_get(self, body: dict[str, Any]) -> Reply:
        """A dag-cbor block as dag-json text (decoded before the 200, so bad blocks are errors)."""
        cid = fields.cid(body)
        if cid.codec != Codec.DAG_CBOR:
            raise UnsupportedError(f"{cid} is {cid.codec_name}; dag get reads dag-cbor")
        text = dagjson.encode(dagcbor.decode(self.repo.blocks.get(cid)))
        return JsonReply({"Json": text})

    async def dag_export(self, body: dict[str, Any]) -> Reply:
        """The DAG under `cid` as a CARv1 stream."""
        root = fields.cid(body)
        blocks = walk(self.repo.blocks.get, root)
        try:  # a missing root fails here, before the 200 and the CAR header
            first = next(blocks)
        except NotFound:
            raise NotFound(f"{root} is not in the repo") from None

        pieces = car_pieces([root], itertools.chain([first], blocks))

        async def produce(send: Send) -> None:
            for piece in pieces:
                await send(piece)

        return StreamReply(produce)

    async def dag_import(self, body: dict[str, Any]) -> Reply:
        """Import CAR files (v1 or v2), verifying every block; pin their roots if asked."""
        paths = fields.absolute_list(body, "paths")
        pin_roots = fields.flag(body, "pin_roots", True)
        report: list[dict[str, Any]] = []
        sink = BatchedPut(self.repo.blocks)

        def run() -> None:
            with self.repo.gc_lock(), sink:  # a failed import leaves no write in flight
                for path in paths:
                    with open(path, "rb") as source:
                        roots, count = import_car(source, sink)
                    sink.flush()
                    for root in roots:
                        if pin_roots:
                            self.repo.pin(root)
                        report.append({"Root": str(root), "Blocks": count, "Pinned": pin_roots})

        await off_loop(run)
        self.announce(sink.cids)
        return JsonReply(report)

    # -- pins ------------------------------------------------------------------------------------
    async def pin_add(self, body: dict[str, Any]) -> Reply:
        cids, recursive = fields.cids(body), fields.flag(body, "recursive", True)
        def run() -> None:  # a recursive pin walks the whole DAG first
            with self.repo.gc_lock():
                for cid in cids:
                    self.repo.pin(cid, recursive)

        await off_loop(run)
        self.provide(cids)
        return JsonReply({"Pins": [str(c) for c in cids]})

    async def pin_rm(self, body: dict[str, Any]) -> Reply:
        """Unpin; a CID that is not pinned refuses the whole call before any pin goes."""
        cids = fields.cids(body)
        for cid in cids:
            if self.repo.pins.kind(cid) is None:
                raise NotFound(f"{cid} is not pinned")
        for cid in cids:
            self.repo.pins.remove(cid)
        return JsonReply({"Pins": [str(c) for c in cids]})

    async def pin_ls(self, body: dict[str, Any]) -> Reply:
        kind = fields.choice(body, "type", ("all", "recursive", "direct"))
        pins = self.repo.pins.list(None if kind == "all" else kind)
        return JsonReply({"Keys": {str(cid): {"Type": k} for cid, k in pins}})

    # -- repo ------------------------------------------------------------------------------------
    async def repo_stat(self, body: dict[str, Any]) -> Reply:
        stat = self.repo.blocks.stat()
        return JsonReply({"RepoPath": str(self.repo.path), "NumObjects": stat.blocks,
                          "RepoSize": stat.bytes, "Datastore": self.repo.config.datastore.engine})

    async def repo_verify(self, body: dict[str, Any]) -> Reply:
        result = await off_loop(self.repo.verify)
        return JsonReply({"Checked": result.checked, "Corrupt": [str(c) for c in result.corrupt]})

    async def repo_gc(self, body: dict[str, Any]) -> Reply:
        result = self.repo.gc(wait=self.gc_waits)
        return JsonReply({"Removed": [str(c) for c in result.removed]})
