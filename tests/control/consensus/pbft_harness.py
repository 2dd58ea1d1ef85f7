"""Deterministic PBFT simulation: a virtual clock, a seeded hostile network, Byzantine replicas.

Everything random comes from one `random.Random(seed)`, so a failing seed replays exactly.
Replicas are real PBFTReplica engines over MemoryStores; a crash throws the engine away and a
restart rebuilds it from its store, as a SIGKILLed process would.

By default replicas sign with HMAC-SHA512 keys (`HmacKey`): unforgeable for anyone without the
key, like Ed25519, but ~100x faster, which is what lets hundreds of seeds run in seconds. The
Ed25519 path is exercised by passing ed25519=True.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from blockmesh.control.consensus import (
    KeyValueApp,
    MemoryStore,
    Output,
    PBFTClient,
    PBFTParams,
    PBFTReplica,
)
from blockmesh.control.consensus.app import encode_delete, encode_get, encode_set
from blockmesh.control.consensus.authenticators import (
    MAC_SIZE,
    MacKeys,
    Pairing,
    PairKeys,
    authenticate,
    mac_vector,
)
from blockmesh.control.consensus.blocks import block_hash
from blockmesh.control.consensus.messages import (
    request_envelope,
    request_signing_bytes,
    sha256,
    sign_envelope,
    sign_request,
)
from blockmesh.control.keys import Signer, Verifier
from blockmesh.control.proto import pbft_pb2 as pb

SIM_PARAMS = PBFTParams(
    checkpoint_interval=4,
    log_window=8,
    max_batch_size=3,
    view_change_timeout=1.0,
    max_view_change_timeout=8.0,
    retransmit_interval=0.5,
    max_retransmit_interval=4.0,
    state_transfer_delay=0.5,
    state_fetch_timeout=2.0,
)

FORGED_KEY = b"forged"
BYZANTINE_KINDS = ("equivocate", "forge", "replay", "conflict", "silent", "forge_request",
                   "forge_commit")


@dataclass(frozen=True)
class HmacKey:
    """A signer whose signature only the holder of `secret` can produce."""

    node_id: str
    secret: bytes

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self.secret, data, hashlib.sha512).digest()


class HmacKeyring:
    def __init__(self, keys: dict[str, HmacKey]) -> None:
        self._keys = keys

    def knows(self, node_id: str) -> bool:
        return node_id in self._keys

    def verify(self, node_id: str, signature: bytes, data: bytes) -> bool:
        key = self._keys.get(node_id)
        return key is not None and hmac.compare_digest(key.sign(data), signature)


class TableKeys:
    """MAC keys from a table, for the HMAC signers (which have no X25519 counterpart)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = keys

    def mac(self, peer: str, data: bytes) -> bytes | None:
        key = self._keys.get(peer)
        return None if key is None else hashlib.blake2b(data, key=key, digest_size=16).digest()


def make_pair_keys(clients: dict, replicas: dict, rng: random.Random, ed25519: bool
                   ) -> tuple[dict[str, MacKeys], dict[str, MacKeys]]:
    """(MAC keys of each client, MAC keys of each replica)."""
    if ed25519:
        return ({c: PairKeys(c, s.private, {r: k.public_key for r, k in replicas.items()},
                              Pairing.CLIENT)
                 for c, s in clients.items()},
                {r: PairKeys(r, s.private, {c: k.public_key for c, k in clients.items()},
                              Pairing.REPLICA)
                 for r, s in replicas.items()})
    secret = {(c, r): rng.randbytes(32) for c in clients for r in replicas}
    return ({c: TableKeys({r: secret[c, r] for r in replicas}) for c in clients},
            {r: TableKeys({c: secret[c, r] for c in clients}) for r in replicas})


def make_peer_keys(replicas: dict, rng: random.Random, ed25519: bool) -> dict[str, MacKeys]:
    """The MAC keys each replica shares with the others (for COMMITs)."""
    if ed25519:
        public = {r: k.public_key for r, k in replicas.items()}
        return {r: PairKeys(r, s.private, public, Pairing.PEERS) for r, s in replicas.items()}
    secret = {(a, b): rng.randbytes(32) for a in replicas for b in replicas if a < b}
    return {r: TableKeys({o: secret[min(r, o), max(r, o)] for o in replicas if o != r})
            for r in replicas}


def make_keys(ids: list[str], rng: random.Random, ed25519: bool):
    if ed25519:
        signers = {i: Signer.generate(i) for i in ids}
        return signers, Verifier({i: s.public_key for i, s in signers.items()})
    hsigners = {i: HmacKey(i, rng.randbytes(32)) for i in ids}
    return hsigners, HmacKeyring(hsigners)


@dataclass(order=True)
class _Event:
    time: float
    order: int
    action: Callable[[], None] = field(compare=False)


class SafetyViolation(AssertionError):
    pass


class Simulation:
    def __init__(
        self,
        seed: int,
        n: int = 4,
        clients: int = 3,
        requests_per_client: int = 4,
        params: PBFTParams = SIM_PARAMS,
        byzantine: str | None = None,
        crash: bool = False,
        chaos_until: float = 15.0,
        drop: float = 0.1,
        ed25519: bool = False,
        sloppy_client: bool = False,
        mac_only: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.params = params
        self.nodes = [f"r{i}" for i in range(n)]
        self.client_ids = [f"c{i}" for i in range(clients)]
        self.signers, self.replica_keys = make_keys(self.nodes, self.rng, ed25519)
        self.client_signers, self.client_keys = make_keys(self.client_ids, self.rng, ed25519)
        self.client_macs, self.replica_macs = make_pair_keys(  # own generator: seeds replay
            self.client_signers, self.signers, random.Random(seed * 7919 + 17), ed25519)
        self.peer_macs = make_peer_keys(self.signers, random.Random(seed * 7919 + 29), ed25519)
        #: c0 garbles MAC entries of its requests and now and then sends one whose MACs are
        #: right but whose signature is not (FORGED_KEY), which must never execute.
        self.sloppy = "c0" if sloppy_client else None
        #: Clients send unsigned requests, authenticated by their MAC entries alone; the sloppy
        #: one often sends every replica a copy whose entries are right for a random subset.
        self.mac_only = mac_only
        self.now = 0.0
        self._events: list[_Event] = []
        self._order = 0
        self.chaos_until = chaos_until
        self.drop = drop
        self.partition: list[set[str]] | None = None

        self.byzantine: dict[str, str] = {}
        if byzantine is not None:
            self.byzantine[self.rng.choice(self.nodes)] = byzantine
        self.honest = [r for r in self.nodes if r not in self.byzantine]
        self.stores = {r: MemoryStore() for r in self.nodes}
        self.apps: dict[str, KeyValueApp] = {}
        self.replicas: dict[str, PBFTReplica | None] = {}
        self._next_tick: dict[str, float] = {}
        for r in self.nodes:
            self._boot(r, recovered=False)
        self.chains: dict[str, list[pb.Block]] = {r: [] for r in self.nodes}
        self.agreed: dict[int, bytes] = {}
        self.votes: dict[tuple[str, int, int, int], bytes] = {}
        self.seen: list[pb.PBFTMessage] = []
        self.fetches: dict[str, int] = dict.fromkeys(self.nodes, 0)

        self.clients = {c: PBFTClient(self.client_signers[c], self.nodes, self.replica_keys,
                                      retry_interval=0.7, pair_keys=self.client_macs[c],
                                      sign=not mac_only)
                        for c in self.client_ids}
        self.workload = {c: self._workload(c, requests_per_client) for c in self.client_ids}
        self.accepted: dict[str, list[tuple[bytes, bytes]]] = {c: [] for c in self.client_ids}
        self._client_tick_at: dict[str, float] = {}
        for c in self.client_ids:
            self._at(self.rng.uniform(0, 2), lambda c=c: self._client_next(c))
        if self.sloppy is not None:
            for k in range(3):
                self._at(self.rng.uniform(0, chaos_until), lambda k=k: self._send_forged(k))
        if crash:
            victim = self.rng.choice(self.nodes)
            down = self.rng.uniform(1, chaos_until)
            self._at(down, lambda: self._crash(victim))
            self._at(self.rng.uniform(down, chaos_until + 5), lambda: self._restart(victim))
        for _ in range(self.rng.randint(0, 3)):
            start = self.rng.uniform(0, chaos_until)
            self._at(start, self._split)
            self._at(min(start + self.rng.uniform(0.5, 6), chaos_until), self._heal)
        self._at(chaos_until, self._heal)
        for r in self.nodes:
            if self.replicas[r] is not None:
                self._apply(r, self.replicas[r].start(0.0))

    # ----------------------------------------------------------------- scheduling

    def _at(self, when: float, action: Callable[[], None]) -> None:
        self._order += 1
        heapq.heappush(self._events, _Event(max(when, self.now), self._order, action))

    def run(self, until: float, done: Callable[[], bool] | None = None,
            max_events: int = 2_000_000) -> None:
        for _ in range(max_events):
            if not self._events or self._events[0].time > until:
                self.now = until
                return
            event = heapq.heappop(self._events)
            self.now = event.time
            event.action()
            if done is not None and self.now > self.chaos_until and done():
                return
        raise AssertionError(f"seed {self.seed}: event budget exhausted at t={self.now:.1f}")

    # ----------------------------------------------------------------- network

    def _chaos(self) -> bool:
        return self.now < self.chaos_until

    def _connected(self, a: str, b: str) -> bool:
        if self.partition is None:
            return True
        return any(a in side and b in side for side in self.partition) or a in self.clients \
            or b in self.clients

    def _split(self) -> None:
        nodes = list(self.nodes)
        self.rng.shuffle(nodes)
        cut = self.rng.randint(1, len(nodes) - 1)
        self.partition = [set(nodes[:cut]), set(nodes[cut:])]

    def _heal(self) -> None:
        self.partition = None

    def cancel_partitions(self) -> None:
        """Drop the seed's random partitions; only the heal at the end of chaos stays."""
        self._events = [e for e in self._events
                        if getattr(e.action, "__name__", "") not in ("_split", "_heal")]
        heapq.heapify(self._events)
        self._at(self.chaos_until, self._heal)

    def send(self, src: str, dst: str, msg: pb.PBFTMessage) -> None:
        if not self._connected(src, dst):
            return
        copies = 1
        if self._chaos():
            if self.rng.random() < self.drop:
                return
            if self.rng.random() < 0.05:
                copies = 2
        data = msg.SerializeToString()
        for _ in range(copies):
            delay = self.rng.uniform(0.001, 0.03)
            if self._chaos() and self.rng.random() < 0.05:
                delay += self.rng.uniform(0.1, 2.0)
            self._at(self.now + delay, lambda d=data: self._deliver(dst, d, src))

    def _deliver(self, dst: str, data: bytes, src: str) -> None:
        msg = pb.PBFTMessage()
        msg.ParseFromString(data)
        if dst in self.clients:
            self._client_reply(dst, msg)
            return
        replica = self.replicas[dst]
        if replica is None:
            return
        if self.byzantine.get(dst) == "replay":
            self.seen.append(msg)
        self._apply(dst, replica.receive(msg, self.now, src))

    # ----------------------------------------------------------------- replicas

    def _boot(self, r: str, recovered: bool) -> None:
        if self.byzantine.get(r) == "silent":
            self.replicas[r] = None
            return
        self.apps[r] = KeyValueApp()
        self.replicas[r] = PBFTReplica(
            self.signers[r], self.nodes, self.replica_keys, self.client_keys, self.apps[r],
            self.params, recovered=self.stores[r].load() if recovered else None,
            pair_keys=self.replica_macs[r], peer_keys=self.peer_macs[r])
        self._next_tick[r] = float("inf")

    def _crash(self, r: str) -> None:
        self.replicas[r] = None

    def _restart(self, r: str) -> None:
        if self.replicas[r] is not None or r in self.byzantine:
            return
        self._boot(r, recovered=True)
        chain = self.chains[r]
        replica = self.replicas[r]
        assert replica is not None
        assert replica.height == len(chain), (
            f"seed {self.seed}: {r} recovered at height {replica.height}, had {len(chain)}")
        self._apply(r, replica.start(self.now))

    def _tick(self, r: str, when: float) -> None:
        replica = self.replicas[r]
        if replica is None or self._next_tick.get(r) != when:
            return
        self._next_tick[r] = float("inf")
        self._apply(r, replica.tick(self.now))

    def _apply(self, r: str, out: Output) -> None:
        self.stores[r].apply(out.persist)
        for block in out.committed:
            self._check_block(r, block)
        for send in out.send:
            self._check_vote(r, send.message)
            targets = [send.to] if send.to is not None else [x for x in self.nodes if x != r]
            for dst in targets:
                self._send_from(r, dst, send.message)
        for reply in out.replies:
            self.send(r, reply.client_id, reply.message)
        if out.fetch is not None:
            self._serve_fetch(r, out.fetch.from_height)
        if out.wake_at is not None and self.replicas[r] is not None:
            when = max(out.wake_at, self.now + 0.001)
            if when < self._next_tick[r]:
                self._next_tick[r] = when
                self._at(when, lambda: self._tick(r, when))
        if self.byzantine.get(r) == "replay" and self.seen and self.rng.random() < 0.3:
            for _ in range(3):
                old = self.rng.choice(self.seen)
                self.send(r, self.rng.choice(self.nodes), old)

    def _send_from(self, r: str, dst: str, msg: pb.PBFTMessage) -> None:
        kind = self.byzantine.get(r)
        if kind == "equivocate" and msg.type == pb.PRE_PREPARE and dst in self.nodes[::2]:
            msg = self._twin_pre_prepare(r, msg)
        elif kind == "conflict" and msg.type == pb.PREPARE and self.rng.random() < .5:
            msg = sign_envelope(self.signers[r], msg.type, msg.view, msg.sequence,
                                self.rng.randbytes(32))
        elif kind == "conflict" and msg.type == pb.COMMIT and self.rng.random() < .5:
            msg = self._mac_commit(r, r, msg.view, msg.sequence, self.rng.randbytes(32))
        elif kind == "forge_commit" and msg.type == pb.COMMIT:
            msg = self._forge_commits(r, dst, msg)
        elif kind == "forge_request" and msg.type == pb.PRE_PREPARE:
            msg = self._forged_request_pre_prepare(r, msg)
        elif kind == "forge":
            forged = pb.PBFTMessage()
            forged.CopyFrom(msg)
            forged.node_id = self.rng.choice(self.nodes)
            forged.digest = self.rng.randbytes(32) if forged.digest else forged.digest
            self.send(r, dst, forged)
        self.send(r, dst, msg)

    def _mac_commit(self, r: str, author: str, view: int, seq: int,
                    digest: bytes) -> pb.PBFTMessage:
        """A COMMIT claiming `author`, with the MAC vector `r` can compute (its own keys)."""
        msg = pb.PBFTMessage(type=pb.COMMIT, view=view, sequence=seq, digest=digest,
                             node_id=author)
        msg.signature = mac_vector(self.peer_macs[r], self.nodes, r,
                                   msg.SerializeToString(deterministic=True))
        return msg

    def _forge_commits(self, r: str, dst: str, msg: pb.PBFTMessage) -> pb.PBFTMessage:
        """A Byzantine replica's COMMITs to `dst`: the same vote claimed by every other replica
        (in this view or a later one, which view sync must not follow) under the only MACs it
        can compute, its own, and its own COMMIT with a random digest; the vote itself goes
        out with the entry for `dst` garbled half of the time. None of it may count at `dst`:
        with MAC keys per pair, `r` cannot make another replica's entry for `dst`."""
        for author in self.nodes:
            if author not in (r, dst):
                view = msg.view + (self.rng.randint(1, 3) if self.rng.random() < 0.3 else 0)
                self.send(r, dst, self._mac_commit(r, author, view, msg.sequence, msg.digest))
        self.send(r, dst, self._mac_commit(r, r, msg.view, msg.sequence, self.rng.randbytes(32)))
        if self.rng.random() < 0.5 and dst in self.nodes:
            garbled = pb.PBFTMessage()
            garbled.CopyFrom(msg)
            start = self.nodes.index(dst) * MAC_SIZE
            garbled.signature = (msg.signature[:start] + self.rng.randbytes(MAC_SIZE)
                                 + msg.signature[start + MAC_SIZE:])
            return garbled
        return msg

    def _forged_request_pre_prepare(self, r: str, msg: pb.PBFTMessage) -> pb.PBFTMessage:
        """A Byzantine primary's batch with a client request it made up (FORGED_KEY) or one
        whose body it altered. A replica holds no client key, so it signs the request with its
        own key and fills every authenticator entry with the MAC it can compute (the one it
        shares with that client): honest backups must refuse the batch."""
        body = pb.PrePrepare()
        body.ParseFromString(msg.payload)
        requests = list(body.requests)
        client = self.rng.choice(self.client_ids)
        if requests and self.rng.random() < 0.5:
            forged = pb.Request()
            forged.CopyFrom(requests[0])
            forged.operation = encode_set(FORGED_KEY, b"x")
            requests[0] = forged  # the client's real signature and MACs, over another body
        else:
            forged = pb.Request(client_id=client, timestamp=2_000_000 + self.rng.randrange(10**6),
                                operation=encode_set(FORGED_KEY, b"x"))
            data = request_signing_bytes(forged)
            if not self.mac_only:
                forged.client_signature = self.signers[r].sign(data)
            own = self.replica_macs[r].mac(client, data) or b""
            forged.authenticator.extend([own] * len(self.nodes))
            requests = [forged, *requests][: self.params.max_batch_size]
        payload = pb.PrePrepare(requests=requests, view=body.view).SerializeToString(
            deterministic=True)
        return sign_envelope(self.signers[r], pb.PRE_PREPARE, msg.view, msg.sequence,
                             sha256(payload), payload)

    def _twin_pre_prepare(self, r: str, msg: pb.PBFTMessage) -> pb.PBFTMessage:
        """The same (view, sequence) with a different, validly signed batch."""
        body = pb.PrePrepare()
        body.ParseFromString(msg.payload)
        if not body.requests:
            return msg
        twin = pb.PrePrepare(requests=list(body.requests)[::-1][: max(len(body.requests), 2) - 1],
                             view=body.view)
        payload = twin.SerializeToString(deterministic=True)
        return sign_envelope(self.signers[r], pb.PRE_PREPARE, msg.view, msg.sequence,
                             sha256(payload), payload)

    def _serve_fetch(self, r: str, from_height: int) -> None:
        self.fetches[r] += 1
        peer = self.rng.choice([x for x in self.nodes if x != r])
        if self.replicas[peer] is None and peer not in self.byzantine:
            return
        store = self.stores[peer]
        blocks = store.blocks_from_height(from_height, 10_000)
        certs = store.checkpoints()[-2:]
        if peer in self.byzantine and blocks:
            forged = pb.Block()
            forged.CopyFrom(blocks[-1])
            forged.results.append(b"\x00forged")
            del forged.results[0]
            forged.hash = block_hash(forged)
            blocks = [*blocks[:-1], forged]

        def answer() -> None:
            replica = self.replicas[r]
            if replica is not None:
                self._apply(r, replica.on_state_fetched(blocks, certs, self.now))

        self._at(self.now + self.rng.uniform(0.01, 0.2), answer)

    # ----------------------------------------------------------------- invariants

    def _check_block(self, r: str, block: pb.Block) -> None:
        chain = self.chains[r]
        if r in self.byzantine:
            chain.append(block)
            return
        prev = chain[-1].hash if chain else bytes(32)
        if block.height != len(chain) + 1 or block.prev_hash != prev:
            raise SafetyViolation(f"seed {self.seed}: {r} broke its chain at {block.height}")
        if block_hash(block) != block.hash:
            raise SafetyViolation(f"seed {self.seed}: {r} block {block.height} bad hash")
        agreed = self.agreed.setdefault(block.height, block.hash)
        if agreed != block.hash:
            raise SafetyViolation(
                f"seed {self.seed}: {r} committed a different block at height {block.height}")
        chain.append(block)

    def _check_vote(self, r: str, msg: pb.PBFTMessage) -> None:
        if r in self.byzantine or msg.node_id != r:
            return
        if msg.type in (pb.PRE_PREPARE, pb.PREPARE, pb.COMMIT):
            key = (r, msg.type, msg.view, msg.sequence)
            known = self.votes.setdefault(key, msg.digest)
            if known != msg.digest:
                raise SafetyViolation(
                    f"seed {self.seed}: honest {r} sent conflicting {pb.MessageType.Name(msg.type)}"
                    f" for view {msg.view} sequence {msg.sequence}")

    # ----------------------------------------------------------------- clients

    def _workload(self, c: str, count: int) -> list[bytes]:
        ops = []
        for i in range(count):
            key = f"k{self.rng.randint(0, 5)}".encode()
            choice = self.rng.random()
            if choice < 0.6:
                ops.append(encode_set(key, f"{c}-{i}".encode()))
            elif choice < 0.85:
                ops.append(encode_get(key))
            else:
                ops.append(encode_delete(key))
        return ops

    def _client_next(self, c: str) -> None:
        if not self.workload[c]:
            return
        op = self.workload[c][0]
        env = self.clients[c].request(op, self.now)
        self._client_send(c, env)
        self._schedule_client(c)

    def _schedule_client(self, c: str) -> None:
        deadline = self.clients[c].next_deadline()
        if deadline is not None and deadline != self._client_tick_at.get(c):
            self._client_tick_at[c] = deadline
            self._at(deadline, lambda: self._client_tick(c, deadline))

    def _client_send(self, c: str, env: pb.PBFTMessage) -> None:
        if c == self.sloppy and self.mac_only and self.rng.random() < 0.5:
            # One copy for every replica, its entries right for a random subset of them only
            # (perhaps the primary's alone): no replica can tell it from an honest request.
            req = pb.Request.FromString(env.payload)
            good = self.rng.sample(range(len(self.nodes)), self.rng.randint(1, len(self.nodes)))
            for i in range(len(self.nodes)):
                if i not in good:
                    req.authenticator[i] = self.rng.randbytes(16)
            split = request_envelope(req)
            for r in self.nodes:
                self.send(c, r, split)
            return
        for r in self.nodes:
            if c == self.sloppy and self.rng.random() < 0.5:
                req = pb.Request.FromString(env.payload)
                req.authenticator[self.rng.randrange(len(self.nodes))] = self.rng.randbytes(16)
                self.send(c, r, request_envelope(req))
            else:
                self.send(c, r, env)

    def _send_forged(self, k: int) -> None:
        """A request with good MACs and a bad signature, under a timestamp of its own."""
        c = self.sloppy
        assert c is not None
        req = sign_request(self.client_signers[c], 1_000_000 + k, encode_set(FORGED_KEY, b"x"))
        authenticate(req, self.client_macs[c], self.nodes, request_signing_bytes(req))
        req.client_signature = bytes(len(req.client_signature))
        for r in self.nodes:
            self.send(c, r, request_envelope(req))

    def _client_tick(self, c: str, when: float) -> None:
        if self._client_tick_at.get(c) != when:
            return
        env = self.clients[c].tick(self.now)
        if env is not None:
            self._client_send(c, env)
        self._schedule_client(c)

    def _client_reply(self, c: str, msg: pb.PBFTMessage) -> None:
        result = self.clients[c].on_reply(msg)
        if result is None:
            return
        op = self.workload[c].pop(0)
        self.accepted[c].append((op, result))
        self._at(self.now + self.rng.uniform(0, 0.5), lambda: self._client_next(c))

    # ----------------------------------------------------------------- verdicts

    def live_replicas(self) -> list[PBFTReplica]:
        return [self.replicas[r] for r in self.honest if self.replicas[r] is not None]

    def settled(self) -> bool:
        if any(self.workload.values()) or any(self.replicas[r] is None for r in self.honest):
            return False
        heights = {len(self.chains[r]) for r in self.honest}
        if len(heights) != 1:
            return False
        return all(rep.pending_requests == 0 for rep in self.live_replicas())

    def check_final(self) -> None:
        """Liveness and agreement once the network has healed."""
        left = {c: len(w) for c, w in self.workload.items() if w}
        assert not left, f"seed {self.seed}: requests never accepted {left} at t={self.now:.1f}"
        heights = {r: len(self.chains[r]) for r in self.honest}
        assert len(set(heights.values())) == 1, f"seed {self.seed}: heights differ {heights}"
        digests = {self.apps[r].state_digest() for r in self.honest}
        assert len(digests) == 1, f"seed {self.seed}: application states differ"
        forged = encode_set(FORGED_KEY, b"x")
        assert not any(req.operation == forged for block in self.chains[self.honest[0]]
                       for req in block.requests), f"seed {self.seed}: a forged request ran"
        self.check_client_results()

    def check_client_results(self) -> None:
        """Every accepted result is what the agreed chain says the request returned."""
        executed: dict[tuple[str, int], bytes] = {}
        chain = self.chains[self.honest[0]]
        for block in chain:
            for req, res in zip(block.requests, block.results, strict=True):
                executed.setdefault((req.client_id, req.timestamp), res)
        for c, results in self.accepted.items():
            for ts, (_, result) in enumerate(results, start=1):
                assert executed.get((c, ts)) == result, (
                    f"seed {self.seed}: client {c} accepted a result the chain does not hold")


def run_seed(seed: int, **overrides) -> Simulation:
    """One full scenario chosen by the seed: faults during chaos, then heal and settle."""
    rng = random.Random(seed ^ 0x5EED)
    scenario = rng.random()
    kwargs: dict = {
        "drop": rng.choice([0.0, 0.05, 0.15, 0.3]),
        "params": replace(SIM_PARAMS, max_batch_delay=rng.choice([0.0, 0.0, 0.05]),
                          max_inflight_batches=rng.choice([1, 4, 4])),
    }
    kwargs["sloppy_client"] = rng.random() < 0.3
    # Its own generator, so that every seed keeps the scenario it had before MAC-only clients.
    kwargs["mac_only"] = random.Random(seed * 31 + 7).random() < 0.5
    if scenario < 0.55:
        kwargs["byzantine"] = rng.choice(BYZANTINE_KINDS)
    elif scenario < 0.8:
        kwargs["crash"] = True
    kwargs.update(overrides)
    sim = Simulation(seed, **kwargs)
    sim.run(until=sim.chaos_until + 600, done=sim.settled)
    sim.check_final()
    return sim
