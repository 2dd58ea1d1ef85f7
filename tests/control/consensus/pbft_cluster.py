"""A small in-order cluster of real PBFT engines (Ed25519 keys) for step-by-step unit tests.

Messages wait in one FIFO queue until the test delivers them, so a test can inspect, drop or
tamper with any of them; the clock only moves when the test says so.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from blockmesh.control.consensus import (
    FetchState,
    KeyValueApp,
    MemoryStore,
    Output,
    PBFTClient,
    PBFTParams,
    PBFTReplica,
)
from blockmesh.control.consensus.authenticators import Pairing, PairKeys
from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb

UNIT_PARAMS = PBFTParams(checkpoint_interval=2, log_window=4, view_change_timeout=1.0,
                         max_view_change_timeout=8.0)

Filter = Callable[[str, str, pb.PBFTMessage], bool]


class Cluster:
    def __init__(self, n: int = 4, params: PBFTParams = UNIT_PARAMS, clients: int = 2,
                 stores: dict | None = None,
                 authorize: Callable[[pb.Request], bool] | None = None) -> None:
        self.params = params
        self.authorize = authorize
        self.nodes = [f"r{i}" for i in range(n)]
        self.signers = {r: Signer.generate(r) for r in self.nodes}
        self.keys = Verifier({r: s.public_key for r, s in self.signers.items()})
        self.client_signers = {f"c{i}": Signer.generate(f"c{i}") for i in range(clients)}
        self.client_keys = Verifier({c: s.public_key for c, s in self.client_signers.items()})
        replica_public = {r: s.public_key for r, s in self.signers.items()}
        client_public = {c: s.public_key for c, s in self.client_signers.items()}
        self.client_macs = {c: PairKeys(c, s.private, replica_public, Pairing.CLIENT)
                            for c, s in self.client_signers.items()}
        self.replica_macs = {r: PairKeys(r, s.private, client_public, Pairing.REPLICA)
                             for r, s in self.signers.items()}
        self.peer_macs = {r: PairKeys(r, s.private, replica_public, Pairing.PEERS)
                          for r, s in self.signers.items()}
        self.clients = {c: PBFTClient(s, self.nodes, self.keys, pair_keys=self.client_macs[c])
                        for c, s in self.client_signers.items()}
        self.stores = stores if stores is not None else {r: MemoryStore() for r in self.nodes}
        self.apps: dict[str, KeyValueApp] = {}
        self.replicas: dict[str, PBFTReplica] = {}
        self.queue: deque[tuple[str, str, pb.PBFTMessage]] = deque()
        self.sent: list[tuple[str, pb.PBFTMessage]] = []
        self.replies: dict[str, list[pb.PBFTMessage]] = {c: [] for c in self.clients}
        self.results: dict[str, list[bytes]] = {c: [] for c in self.clients}
        self.fetches: dict[str, FetchState] = {}
        self.committed: dict[str, list[pb.Block]] = {r: [] for r in self.nodes}
        self.down: set[str] = set()
        self.now = 0.0
        for r in self.nodes:
            self.boot(r)

    def boot(self, r: str, recover: bool = False) -> PBFTReplica:
        self.apps[r] = KeyValueApp()
        self.replicas[r] = PBFTReplica(
            self.signers[r], self.nodes, self.keys, self.client_keys, self.apps[r], self.params,
            recovered=self.stores[r].load() if recover else None, pair_keys=self.replica_macs[r],
            authorize=self.authorize, peer_keys=self.peer_macs[r])
        self.down.discard(r)
        return self.replicas[r]

    def apply(self, r: str, out: Output) -> Output:
        self.stores[r].apply(out.persist)
        self.committed[r].extend(out.committed)
        for send in out.send:
            self.sent.append((r, send.message))
            targets = [send.to] if send.to else [x for x in self.nodes if x != r]
            for dst in targets:
                self.queue.append((r, dst, send.message))
        for reply in out.replies:
            self.queue.append((r, reply.client_id, reply.message))
        if out.fetch is not None:
            self.fetches[r] = out.fetch
        return out

    def request(self, client: str, operation: bytes, to: list[str] | None = None
                ) -> pb.PBFTMessage:
        env = self.clients[client].request(operation, self.now)
        for r in to or self.nodes:
            self.queue.append((client, r, env))
        return env

    def deliver(self, keep: Filter | None = None, limit: int = 100_000) -> int:
        """Deliver queued messages (and what they cause) until the queue is empty."""
        count = 0
        while self.queue and count < limit:
            src, dst, msg = self.queue.popleft()
            if dst in self.down or src in self.down or (keep and not keep(src, dst, msg)):
                continue
            count += 1
            if dst in self.clients:
                result = self.clients[dst].on_reply(msg)
                self.replies[dst].append(msg)
                if result is not None:
                    self.results[dst].append(result)
                continue
            self.apply(dst, self.replicas[dst].receive(msg, self.now, src))
        return count

    def tick(self, now: float) -> None:
        self.now = now
        for r in self.nodes:
            if r not in self.down:
                self.apply(r, self.replicas[r].tick(now))

    def serve_fetches(self) -> None:
        """Answer state fetches from the first other live replica's store (a StateProvider)."""
        pending, self.fetches = self.fetches, {}
        for r, fetch in pending.items():
            if r in self.down:
                continue
            peer = next(p for p in self.nodes if p != r and p not in self.down)
            store = self.stores[peer]
            blocks = store.blocks_from_height(fetch.from_height, 1000)
            self.apply(r, self.replicas[r].on_state_fetched(blocks, store.checkpoints(), self.now))

    def run_for(self, seconds: float, step: float = 0.25, keep: Filter | None = None) -> None:
        end = self.now + seconds
        while self.now < end:
            self.deliver(keep)
            self.serve_fetches()
            self.tick(self.now + step)
        self.deliver(keep)

    def heights(self) -> dict[str, int]:
        return {r: self.replicas[r].height for r in self.nodes if r not in self.down}
