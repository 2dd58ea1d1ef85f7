"""One PBFT replica as a process: the engine, its SQLite store, a transport and /metrics.

The engine is sans-I/O; this is the I/O around it. One asyncio task owns the engine and takes
every input from one bounded queue (peer messages, client requests, fetched state), so the
engine is never re-entered and a flooding peer meets back-pressure instead of growing memory.
The task drains what is queued, feeds it to the engine, writes every record of those outputs
in ONE store transaction and only then sends: a replica killed at any instant never sent a
vote its disk does not remember.

Clients submit the same signed request to every replica; each replica answers its own
SubmitRequest call with its signed REPLY once it executed the request, and the client accepts
a result at f+1 matching replies (cluster/client.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from blockmesh.control import event_loop
from blockmesh.control.cluster.config import ClusterConfig, ClusterConfigError, NodeConfig
from blockmesh.control.cluster.metrics import ConsensusMetrics, MetricsServer
from blockmesh.control.cluster.replies import to_response
from blockmesh.control.consensus import (
    Application,
    ClientReply,
    FetchState,
    KeyValueApp,
    Output,
    PBFTReplica,
    SqliteStore,
)
from blockmesh.control.consensus.app import is_read_only
from blockmesh.control.consensus.authenticators import Pairing, PairKeys
from blockmesh.control.keys import Verifier
from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport import (
    TRANSPORT_CLASSES,
    PeerError,
    Responder,
    TransportConfig,
    TransportError,
)
from blockmesh.control.transport.mesh import join_address, split_address
from blockmesh.errors import BlockmeshError, DecodeError
from blockmesh.gc_tuning import settle_after_startup

log = logging.getLogger(__name__)

#: Where /metrics listens unless `cluster start --metrics-host` says otherwise.
DEFAULT_METRICS_HOST = "127.0.0.1"
#: Inputs waiting for the engine; beyond this, peers' reads wait and client requests are
#: refused ("overload", which clients retry).
INBOX_SIZE = 8192
#: Seconds between sweeps of answered-by-timeout request responders.
PRUNE_INTERVAL = 5.0
#: Inputs handed to the engine between two store transactions.
MAX_DRAIN = 512
#: Blocks one state fetch collects from a peer before handing them to the engine.
MAX_FETCH_BLOCKS = 4096
#: Stable checkpoints offered in a SyncState answer (the newest); older ones by GetCheckpoint.
SERVED_CHECKPOINTS = 4

_RECEIVE, _SUBMIT, _FETCHED = range(3)

Key = tuple[str, int]


@dataclass(frozen=True)
class _Input:
    kind: int
    message: pb.PBFTMessage | None = None
    #: The replica a consensus message came from (the authenticated connection's peer).
    sender: str | None = None
    key: Key | None = None
    request: pb.Request | None = None
    blocks: tuple[pb.Block, ...] = ()
    certificates: tuple[pb.CheckpointCertificate, ...] = ()


class _StateView:
    """What peers catching up read: blocks and certificates from the store, status from the
    engine (both live in the event loop's thread)."""

    def __init__(self, store: SqliteStore, engine: PBFTReplica) -> None:
        self._store = store
        self._engine = engine

    def blocks_from_height(self, height: int, limit: int) -> list[pb.Block]:
        return self._store.blocks_from_height(height, limit)

    def checkpoints(self) -> list[pb.CheckpointCertificate]:
        return self._store.checkpoints()[-SERVED_CHECKPOINTS:]

    def checkpoint(self, sequence: int) -> pb.CheckpointCertificate | None:
        return self._store.checkpoint(sequence)

    def status(self) -> pb.GetStatusResponse:
        return self._engine.status()


def client_policy(cluster: ClusterConfig, read_only: Callable[[bytes], bool] = is_read_only,
                  ) -> Callable[[pb.Request], bool]:
    """What each client identity may ask: writers anything, readers operations that
    `read_only` accepts (the application's own notion: key-value GETs, pinset queries).
    The engine applies it to requests it receives and to those a primary proposes, so a
    reader's write is refused even by way of a Byzantine primary."""
    readers = frozenset(c.id for c in cluster.clients if not c.writer)

    def authorize(request: pb.Request) -> bool:
        return request.client_id not in readers or read_only(request.operation)

    return authorize


def runtime_transport_config() -> TransportConfig:
    """Transport limits for replicas: redial a restarted peer within two seconds."""
    return TransportConfig(backoff_max=2.0)


class Replica:
    """A running replica; `run()` serves until `stop()` or a signal (see `serve`)."""

    def __init__(
        self,
        node: NodeConfig,
        cluster: ClusterConfig,
        *,
        transport: str | None = None,
        transport_config: TransportConfig | None = None,
        registry: CollectorRegistry | None = None,
        metrics_host: str = DEFAULT_METRICS_HOST,
        app: Application | None = None,
        read_only: Callable[[bytes], bool] = is_read_only,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        """`metrics_host` is where /metrics listens (on the port cluster.toml gives the
        node), whatever host the replica's transport binds: metrics stay on loopback unless
        asked otherwise. `app` is the replicated application (the key-value store unless
        given) and `read_only` says which of its operations a reader may send; `on_commit` is
        called in the replica's loop after blocks were executed and persisted."""
        self.node = node
        self.cluster = cluster
        self.kind = transport or node.transport
        if self.kind not in TRANSPORT_CLASSES:
            raise ClusterConfigError(f"unknown transport {self.kind!r}")
        self.signer = node.signer()
        self.info = cluster.node(node.node_id)
        if self.signer.public_key != self.info.public_key:
            raise ClusterConfigError(f"{node.node_id}'s private key does not match the public key "
                                     "the cluster file lists for it")
        if not node.tls_key:
            raise ClusterConfigError(f"{node.node_id}'s node file has no TLS key (a cluster made "
                                     "before transports were encrypted): run `blockmesh cluster "
                                     f"migrate-keys {node.cluster_path.parent}`")
        tls = cluster.tls(node.tls_key, self.info.tls_cert)
        try:
            tls.server_context()  # the key must belong to the listed certificate
        except DecodeError as exc:
            raise ClusterConfigError(f"{node.node_id}'s TLS key does not match the certificate "
                                     f"the cluster file lists for it ({exc})") from None
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ConsensusMetrics(self.registry, node.node_id)
        _, metrics_port = split_address(self.info.metrics_address)
        self.metrics_server = MetricsServer(self.registry, join_address(metrics_host,
                                                                        metrics_port))
        node.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = SqliteStore(node.data_dir / "consensus.sqlite")
        try:
            self.store.claim(node.node_id, self.signer.public_key)
        except BlockmeshError:
            self.store.close()
            raise
        self.engine = PBFTReplica(
            self.signer,
            [n.id for n in cluster.nodes],
            Verifier(cluster.public_keys()),
            Verifier(cluster.client_keys()),
            app if app is not None else KeyValueApp(),
            cluster.params(),
            recovered=self.store.load(),
            pair_keys=PairKeys(node.node_id, self.signer.private, cluster.client_keys(),
                               Pairing.REPLICA),
            authorize=client_policy(cluster, read_only),
            peer_keys=PairKeys(node.node_id, self.signer.private, cluster.public_keys(),
                               Pairing.PEERS),
        )
        self.transport = TRANSPORT_CLASSES[self.kind](
            self.signer,
            Verifier(cluster.public_keys()),
            self.info.address,
            config=transport_config or runtime_transport_config(),
            registry=self.registry,
            tls=tls,
        )
        self._inbox: asyncio.Queue[_Input] | None = None
        self._waiters: dict[Key, list[Responder]] = {}
        self._arrivals: dict[Key, float] = {}
        self._prune_at = 0.0
        self._wake_at = 0.0
        self._fetching: asyncio.Task[None] | None = None
        self._fetch_round = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = asyncio.Event()
        self._on_commit = on_commit

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._inbox = asyncio.Queue(INBOX_SIZE)
        self.metrics.height.set(self.engine.height)
        self.metrics.stable.set(self.engine.low_watermark)
        self.metrics.view.set(self.engine.view)
        self.transport.set_message_handler(self._on_message)
        self.transport.set_request_handler(self._on_submit)
        self.transport.set_state_provider(_StateView(self.store, self.engine))
        self.metrics_server.start()
        await self.transport.start()
        first = self.engine.start(time.monotonic())
        await self._carry_out([(None, first)])
        self._tasks.append(asyncio.create_task(self._engine_loop()))
        self._tasks.append(asyncio.create_task(self._connect_peers()))
        log.info("%s serving %s on %s, metrics on http://%s/metrics (height %d, view %d)",
                 self.node.node_id, self.kind, self.transport.address,
                 self.metrics_server.address, self.engine.height, self.engine.view)

    async def run(self) -> None:
        """Start, serve until stop(), then shut down; an engine failure ends the run."""
        await self.start()
        engine_task = self._tasks[0]
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({engine_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            await self.close()
        if engine_task.done() and not engine_task.cancelled() and engine_task.exception():
            raise engine_task.exception()  # type: ignore[misc]

    def stop(self) -> None:
        self._stopped.set()

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._fetching] if self._fetching else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for waiters in self._waiters.values():
            for respond in waiters:
                respond(self._refusal("replica shutting down"))
        self._waiters.clear()
        await self.transport.stop()
        self.metrics_server.stop()
        self.store.close()

    async def _connect_peers(self) -> None:
        """Dial every other replica; the transport keeps redialling those that are down."""
        others = [n for n in self.cluster.nodes if n.id != self.node.node_id]
        results = await asyncio.gather(
            *(self.transport.add_peer(n.id, n.address) for n in others), return_exceptions=True)
        for info, result in zip(others, results, strict=True):
            if isinstance(result, Exception):
                log.info("%s: %s not reachable yet (%s); redialling in the background",
                         self.node.node_id, info.id, result)

    # ----------------------------------------------------------------- inputs

    def _on_message(self, sender: str, msg: pb.PBFTMessage) -> Awaitable[None] | None:
        assert self._inbox is not None
        item = _Input(_RECEIVE, msg, sender=sender)
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            return self._inbox.put(item)  # the transport waits before reading this peer on
        return None

    def _on_submit(self, envelope: pb.PBFTMessage, respond: Responder) -> None:
        assert self._inbox is not None
        try:
            request = pb.Request.FromString(envelope.payload)
        except Exception:  # protobuf raises its own DecodeError; anything else is garbage too
            respond(self._refusal("malformed"))
            return
        key = (request.client_id, request.timestamp)
        try:
            self._inbox.put_nowait(_Input(_SUBMIT, envelope, key=key, request=request))
        except asyncio.QueueFull:
            respond(self._refusal("overload"))
            return
        self._waiters.setdefault(key, []).append(respond)
        self._arrivals.setdefault(key, time.monotonic())

    def _prune_waiters(self, now: float) -> None:
        """Forget responders the transport already answered (timed out): a request that is
        never executed here would otherwise keep its entry for good."""
        if now < self._prune_at:
            return
        self._prune_at = now + PRUNE_INTERVAL
        for key in [k for k, waiting in self._waiters.items() if all(r.done for r in waiting)]:
            del self._waiters[key]
            self._arrivals.pop(key, None)

    def _refusal(self, why: str) -> pb.SubmitRequestResponse:
        return pb.SubmitRequestResponse(accepted=False, error=why, node_id=self.node.node_id)

    # ----------------------------------------------------------------- the engine task

    async def _engine_loop(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        while True:
            batch: list[_Input] = []
            delay = self._wake_at - time.monotonic()
            if inbox.empty() and delay > 0:
                try:
                    async with asyncio.timeout(delay):
                        batch.append(await inbox.get())
                except TimeoutError:
                    pass
            while len(batch) < MAX_DRAIN and not inbox.empty():
                batch.append(inbox.get_nowait())
            now = time.monotonic()
            outputs = [(item, self._step(item, now)) for item in batch]
            if now >= self._wake_at:
                outputs.append((None, self.engine.tick(now)))
            await self._carry_out(outputs)
            self._prune_waiters(now)
            self._wake_at = max(self.engine.next_deadline(), now + 0.001)
            await asyncio.sleep(0)  # let transports and clients run between batches

    def _step(self, item: _Input, now: float) -> Output:
        engine = self.engine
        if item.kind == _RECEIVE:
            assert item.message is not None
            return engine.receive(item.message, now, item.sender)
        if item.kind == _SUBMIT:
            assert item.message is not None
            return engine.submit(item.message, now, item.request)
        return engine.on_state_fetched(item.blocks, item.certificates, now)

    async def _carry_out(self, outputs: list[tuple[_Input | None, Output]]) -> None:
        """Persist everything first, in one transaction; then send, answer and fetch."""
        records = [record for _, out in outputs for record in out.persist]
        if records:
            self.store.apply(records)
        if self._on_commit is not None and any(out.committed for _, out in outputs):
            self._on_commit()
        transport = self.transport
        for item, out in outputs:
            for metric in out.metrics:
                self.metrics.record(metric)
            for send in out.send:
                # Both transports only queue here; an unreachable peer is counted by them.
                if send.to is None:
                    await transport.broadcast(send.message)
                else:
                    with contextlib.suppress(PeerError):
                        await transport.send(send.to, send.message)
            for reply in out.replies:
                self._answer(reply)
            if out.fetch is not None:
                self._start_fetch(out.fetch)
            if item is not None and item.kind == _SUBMIT:
                self._refuse_dropped(item, out)
        self.metrics.view.set(self.engine.view)

    def _answer(self, reply: ClientReply) -> None:
        try:
            response = to_response(reply.message, reply.body)
        except DecodeError:
            return
        key = (response.reply.client_id, response.reply.timestamp)
        arrival = self._arrivals.pop(key, None)
        if arrival is not None:
            self.metrics.commit_latency.observe(time.monotonic() - arrival)
        for respond in self._waiters.pop(key, []):
            respond(response)

    def _refuse_dropped(self, item: _Input, out: Output) -> None:
        """A request the engine refused gets its reason now instead of a timeout later.

        "duplicate" means the same request is already pending here: keep waiting for it."""
        reasons = [m.label for m in out.metrics if m.name == "drop" and m.label != "duplicate"]
        if not reasons or item.key not in self._waiters:
            return
        for respond in self._waiters.pop(item.key):
            respond(self._refusal(reasons[0]))

    # ----------------------------------------------------------------- state transfer

    def _start_fetch(self, want: FetchState) -> None:
        if self._fetching is not None and not self._fetching.done():
            return  # the engine asks again after its fetch timeout if this one fails
        self._fetching = asyncio.create_task(self._fetch(want))

    async def _fetch(self, want: FetchState) -> None:
        peers = self.transport.peers()
        if not peers:
            return
        self._fetch_round += 1
        start = self._fetch_round % len(peers)
        for peer in peers[start:] + peers[:start]:  # a different first peer every round
            try:
                blocks, certificates = await self._fetch_from(peer, want)
            except (TransportError, DecodeError, TimeoutError) as exc:
                log.info("%s: state fetch from %s failed: %s", self.node.node_id, peer, exc)
                continue
            if blocks:
                assert self._inbox is not None
                await self._inbox.put(_Input(_FETCHED, blocks=tuple(blocks),
                                             certificates=tuple(certificates)))
                return

    async def _fetch_from(
        self, peer: str, want: FetchState
    ) -> tuple[list[pb.Block], list[pb.CheckpointCertificate]]:
        """Page through SyncState from `peer`, then make sure a checkpoint certificate covers
        part of what came back (asking GetCheckpoint for one if the answers carried none)."""
        certificates: dict[int, pb.CheckpointCertificate] = {}
        if want.certificate is not None:
            certificates[want.certificate.sequence] = want.certificate
        blocks: list[pb.Block] = []
        height = want.from_height
        while len(blocks) < MAX_FETCH_BLOCKS:
            answer = await self.transport.sync_state(peer, height)
            for cert in answer.checkpoints:
                certificates[cert.sequence] = cert
            for block in answer.blocks:
                if block.height != height:
                    raise DecodeError(f"{peer} sent block {block.height}, expected {height}")
                blocks.append(block)
                height += 1
            if not answer.more or not answer.blocks:
                break
            if want.to_height and height > want.to_height:
                break
        if blocks:
            low, top = blocks[0].height, blocks[-1].height
            if not any(low <= seq <= top for seq in certificates):
                seq = top - top % self.cluster.checkpoint_interval
                if seq >= low:
                    cert = await self.transport.get_checkpoint(peer, seq)
                    if cert is not None:
                        certificates[cert.sequence] = cert
        return blocks, list(certificates.values())


def serve(node_path: Path, transport: str | None = None,
          metrics_host: str = DEFAULT_METRICS_HOST) -> None:
    """`cluster start`: run one replica in this process until SIGINT or SIGTERM."""
    node = NodeConfig.load(node_path)
    cluster = ClusterConfig.load(node.cluster_path)

    async def main() -> None:
        replica = Replica(node, cluster, transport=transport, metrics_host=metrics_host)
        settle_after_startup()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, replica.stop)
        try:
            await replica.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)

    event_loop.run(main())
