"""The PBFT replica as a sans-I/O state machine (Castro & Liskov; signatures where a message may
serve as proof to a third party, MACs for COMMITs and for client requests).

Inputs are start / receive / submit / tick / on_state_fetched, each given the current time;
each returns an `Output` the runtime carries out (persist, then send). The engine never reads
a clock, sleeps or touches a socket or a file, so a simulation can drive thousands of runs.

Two choices worth knowing when reading the code:
- A sequence is executed once its batch is known and 2f+1 COMMITs for it arrived in any one
  view. That many commits mean at least f+1 honest replicas prepared it, which is PBFT's own
  `committed` predicate, so a replica that fell behind (or moved on to a higher view alone) can
  still catch up from retransmitted commits without voting.
- Every sequence yields a block (an empty one for a null request), so block height == sequence
  and a checkpoint names a block.
- With `peer_keys`, a COMMIT carries a MAC authenticator vector instead of a signature
  (authenticators.py). No certificate contains COMMITs: a view change carries prepared
  certificates (signed PRE_PREPARE and PREPAREs), state transfer checkpoint certificates
  (signed CHECKPOINTs). COMMITs are relayed (`_commit_proof`) and counted by view sync, and in
  both a recipient checks the entry made for it by the COMMIT's author, so a COMMIT counts at
  a replica only if its author sent it that vote. An author that garbles some entries only
  denies those recipients its vote, which a Byzantine replica can do by staying silent anyway.

The engine holds the log, the watermarks and the view, and orchestrates the phases; each phase
that keeps state of its own has a module that owns it: checkpoints.py (CHECKPOINT votes and
certificates), state_transfer.py (when to fetch blocks, which fetched ones to adopt),
view_change.py (VIEW_CHANGEs and the last NEW_VIEW), view_sync.py (the views peers vote in),
view_timer.py (how long to wait for the primary); recovery.py rebuilds a replica from its store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from blockmesh.control.consensus.app import Application
from blockmesh.control.consensus.authenticators import (
    MacKeys,
    check_vector,
    mac_vector,
    verify_entry,
)
from blockmesh.control.consensus.blocks import make_block
from blockmesh.control.consensus.checkpoints import Checkpoints
from blockmesh.control.consensus.log import (
    MAX_COMMIT_VIEWS,
    MAX_COMMITS_PER_VIEW,
    MAX_FOREIGN_BATCHES,
    Batch,
    ClientKey,
    Slot,
)
from blockmesh.control.consensus.messages import (
    ZERO_HASH,
    SignatureChecker,
    SignerLike,
    VerifierLike,
    envelope_signing_bytes,
    reply_digest,
    request_signing_bytes,
    sha256,
    sign_batch_replies,
    sign_envelope,
)
from blockmesh.control.consensus.outputs import (
    ClientReply,
    Metric,
    Output,
    SaveBlock,
    SaveCheckpoint,
    SaveMessage,
    SavePrepared,
    SaveView,
    Send,
)
from blockmesh.control.consensus.params import PBFTParams
from blockmesh.control.consensus.proofs import (
    DIGEST_SIZE,
    Committee,
    InvalidMessage,
    NewViewPlan,
    ParsedViewChange,
    parse_payload,
    plan_new_view,
)
from blockmesh.control.consensus.recovery import recover
from blockmesh.control.consensus.state_transfer import StateTransfer
from blockmesh.control.consensus.store import RecoveredState
from blockmesh.control.consensus.view_change import ViewChanges
from blockmesh.control.consensus.view_sync import VOTES, PeerViews
from blockmesh.control.consensus.view_timer import ViewTimeout
from blockmesh.control.proto import pbft_pb2 as pb

#: Room for the client id, timestamp and signature around an operation in a REQUEST payload.
REQUEST_OVERHEAD = 128
#: The message types replicas send each other (REQUEST comes from clients).
_REPLICA_KINDS = frozenset((pb.PRE_PREPARE, pb.PREPARE, pb.COMMIT, pb.CHECKPOINT,
                            pb.VIEW_CHANGE, pb.NEW_VIEW))


@dataclass
class _Pending:
    request: pb.Request
    arrival: float
    #: Nothing is left to check: its Ed25519 signature was checked here, or it carries none
    #: (a MAC-only request, which its MAC entry alone authenticates).
    signed: bool


@dataclass
class _ClientRecord:
    """The last executed request of a client, to answer its retransmissions without re-running."""

    timestamp: int
    result: bytes
    sequence: int
    reply: pb.PBFTMessage | None = None


class PBFTReplica:
    """One PBFT replica. Not thread-safe: the runtime calls it from one task."""

    def __init__(
        self,
        signer: SignerLike,
        nodes: Sequence[str],
        replica_keys: VerifierLike,
        client_keys: VerifierLike,
        app: Application,
        params: PBFTParams | None = None,
        recovered: RecoveredState | None = None,
        pair_keys: MacKeys | None = None,
        authorize: Callable[[pb.Request], bool] | None = None,
        peer_keys: MacKeys | None = None,
    ) -> None:
        """`pair_keys` (this replica's MAC keys with each client) lets it accept a request by
        its authenticator entry instead of an Ed25519 check; without it, by signature only.
        `authorize` says whether a request's client may ask for its operation (a read-only
        client may not write); it must be deterministic and the same on every replica, since
        backups apply it to the requests a primary proposes too. `peer_keys` (this replica's
        MAC keys with the other replicas) authenticates COMMITs by MAC vector instead of an
        Ed25519 signature; every replica of a cluster must have them, or none."""
        self.node_id = signer.node_id
        self.committee = Committee(tuple(nodes))
        if self.node_id not in self.committee.nodes:
            raise ValueError(f"{self.node_id} is not one of the replicas {list(nodes)}")
        self.params = params or PBFTParams()
        self._signer = signer
        self._checker = SignatureChecker(replica_keys, client_keys, self.params.verified_cache_size)
        self._pair_keys = pair_keys
        self._peer_keys = peer_keys
        self._authorize = authorize
        self._index = self.committee.nodes.index(self.node_id)
        #: Some pending request may be unsigned (taken by MAC): `_vet_pending` has work.
        self._unvetted = False
        #: Pending MAC-only requests that were pending at this replica's last view change.
        self._carried: set[ClientKey] = set()
        self._app = app
        self.drops: Counter[str] = Counter()

        self.view = 0
        self.view_changing = False
        self._vc_timeout = ViewTimeout(self.params.view_change_timeout,
                                       self.params.max_view_change_timeout)
        self._log: dict[int, Slot] = {}
        self._last_executed = 0
        self._head_hash = ZERO_HASH
        self._low = 0
        self._checkpoints = Checkpoints(self.committee, self.params.checkpoint_interval)
        self._transfer = StateTransfer(self.params)

        self._pending: dict[ClientKey, _Pending] = {}
        self._queue: dict[ClientKey, None] = {}
        self._client_pending: dict[str, set[int]] = {}
        self._clients: dict[str, _ClientRecord] = {}
        self._next_seq = 1
        self._max_accepted = 0

        self._view_change = ViewChanges(self.node_id, self.committee, self._checker,
                                        self.params)
        self._peer_views = PeerViews(self.f)
        #: peer -> when it was last sent the proofs of what it lacks (see _heard_late).
        self._helped: dict[str, float] = {}

        self._request_deadline: float | None = None
        self._request_armed = 0.0
        self._retransmit_every = self.params.retransmit_interval
        self._retransmit_at = 0.0

        if recovered is not None:
            recover(self, recovered)

    # ----------------------------------------------------------------- read-only state

    @property
    def n(self) -> int:
        return self.committee.n

    @property
    def f(self) -> int:
        return self.committee.f

    @property
    def primary(self) -> str:
        return self.committee.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.node_id

    @property
    def height(self) -> int:
        return self._last_executed

    @property
    def head_hash(self) -> bytes:
        return self._head_hash

    @property
    def stable_checkpoint(self) -> pb.CheckpointCertificate | None:
        return self._checkpoints.stable

    @property
    def low_watermark(self) -> int:
        return self._low

    @property
    def high_watermark(self) -> int:
        return self._low + self.params.log_window

    @property
    def pending_requests(self) -> int:
        return len(self._pending)

    def log_sequences(self) -> list[int]:
        return sorted(self._log)

    def status(self) -> pb.GetStatusResponse:
        """What GetStatus reports; the runtime adds the connected peers."""
        return pb.GetStatusResponse(
            node_id=self.node_id,
            view=self.view,
            primary=self.primary,
            height=self._last_executed,
            head_hash=self._head_hash,
            stable_checkpoint=self._low,
            view_changing=self.view_changing,
        )

    def next_deadline(self) -> float:
        """The earliest time tick() has work to do (also returned as Output.wake_at)."""
        times = [self._retransmit_at]
        for t in (self._request_deadline, self._view_change.deadline,
                  self._transfer.next_deadline()):
            if t is not None:
                times.append(t)
        if (self._queue and self.is_primary and not self.view_changing
                and self._next_seq <= self.high_watermark
                and self._next_seq - self._last_executed <= self.params.max_inflight_batches):
            first = self._pending[next(iter(self._queue))].arrival
            times.append(first + self.params.max_batch_delay)
        return min(times)

    # ----------------------------------------------------------------- inputs

    def start(self, now: float) -> Output:
        """Announce what this replica already voted (after a restart) and arm its timers."""
        out = Output()
        self._retransmit(out, now)
        return self._finish(out, now)

    def receive(self, msg: pb.PBFTMessage, now: float, sender: str | None = None) -> Output:
        """`sender` is the replica the transport got `msg` from, if known: it lets a vote that
        comes after execution tell what its author has (`_heard_late`)."""
        out = Output()
        try:
            self._dispatch(msg, out, now)
        except InvalidMessage as exc:
            self._drop(out, exc.reason)
            if (exc.reason == "late" and sender == msg.node_id
                    and msg.type in (pb.PREPARE, pb.COMMIT)):
                self._heard_late(msg, out, now)
        return self._finish(out, now)

    def submit(self, msg: pb.PBFTMessage, now: float,
               request: pb.Request | None = None) -> Output:
        """A client's signed REQUEST envelope (e.g. from the SubmitRequest RPC); `request` is
        its payload if the caller parsed it already."""
        out = Output()
        try:
            if msg.type != pb.REQUEST:
                raise InvalidMessage("unknown_type")
            self._on_request(msg, out, now, request)
        except InvalidMessage as exc:
            self._drop(out, exc.reason)
        return self._finish(out, now)

    def tick(self, now: float) -> Output:
        out = Output()
        if self.view_changing:
            deadline = self._view_change.deadline
            if deadline is not None and now >= deadline:
                self._start_view_change(self.view + 1, out, now)
        elif self._request_deadline is not None and now >= self._request_deadline:
            self._vet_pending(out)
            if self._pending or self._max_accepted > self._last_executed:
                self._start_view_change(self.view + 1, out, now)
            else:
                self._request_deadline = None
        self._transfer.expire(now)
        self._transfer.maybe_fetch(self._last_executed, out, now)
        self._propose(out, now)
        if now >= self._retransmit_at:
            self._retransmit(out, now)
        return self._finish(out, now)

    def on_state_fetched(
        self,
        blocks: Sequence[pb.Block],
        certificates: Iterable[pb.CheckpointCertificate],
        now: float,
    ) -> Output:
        """Blocks (in height order) and checkpoint certificates fetched for a FetchState.

        Only blocks up to a checkpoint whose 2f+1 signatures verify and whose digest is the hash
        of the fetched block at that height are adopted: the hash chain vouches for the rest.
        """
        out = Output()
        adopted = self._transfer.fetched(blocks, certificates, self._last_executed,
                                         self._head_hash, self.committee, self._checker,
                                         self._drop, out, now)
        if adopted is None:
            return self._finish(out, now)
        fresh, best = adopted
        for block in fresh:
            self._replay_block(block)
            self._record_block(block, out, now, announce=False)
        out.metrics.append(Metric("state_transfer", best.sequence))
        self._stabilize(best, out, now)
        self._transfer.behind_unknown = len(self._checkpoints.far) > self.f
        self._execute_ready(out, now)
        self._propose(out, now)
        self._transfer.maybe_fetch(self._last_executed, out, now)
        return self._finish(out, now)

    # ----------------------------------------------------------------- dispatch

    def _dispatch(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        kind = msg.type
        if kind == pb.REQUEST:
            self._on_request(msg, out, now)
            return
        if kind not in _REPLICA_KINDS:
            raise InvalidMessage("unknown_type")
        if not self._checker.knows_replica(msg.node_id):
            raise InvalidMessage("unknown_sender")
        if msg.node_id == self.node_id:
            raise InvalidMessage("duplicate")
        if len(msg.payload) > self.params.max_payload_size:
            raise InvalidMessage("too_large")
        if kind in VOTES and msg.view > self.view:
            joined = self._peer_views.observe(msg, self.view, self._verify_vote)
            if joined is not None:  # view_sync.py: the view f+1 replicas vote in
                out.metrics.append(Metric("view_sync", joined))
                self._start_view_change(joined, out, now)
        # A plain chain rather than a table of methods: compiled (mypyc), each is a direct call.
        if kind == pb.PREPARE:
            self._on_prepare(msg, out, now)
        elif kind == pb.COMMIT:
            self._on_commit(msg, out, now)
        elif kind == pb.PRE_PREPARE:
            self._on_pre_prepare(msg, out, now)
        elif kind == pb.CHECKPOINT:
            self._on_checkpoint(msg, out, now)
        elif kind == pb.VIEW_CHANGE:
            self._on_view_change(msg, out, now)
        else:
            self._on_new_view(msg, out, now)

    def _drop(self, out: Output, reason: str) -> None:
        self.drops[reason] += 1
        out.metrics.append(Metric("drop", 1, reason))

    def _finish(self, out: Output, now: float) -> Output:
        if self.view_changing:
            self._request_deadline = None
        elif self._pending or self._max_accepted > self._last_executed:
            if self._request_deadline is None:
                self._request_armed = now
                self._request_deadline = now + self._timeout()
        else:
            self._request_deadline = None
        out.wake_at = self.next_deadline()
        return out

    def _timeout(self) -> float:
        return self._vc_timeout.current

    def _verify(self, msg: pb.PBFTMessage) -> None:
        if not self._checker.envelope(msg):
            raise InvalidMessage("bad_signature")

    def _verify_vote(self, msg: pb.PBFTMessage) -> None:
        """A COMMIT by its MAC entry for this replica (with `peer_keys`), any other message by
        its signature."""
        if msg.type != pb.COMMIT or self._peer_keys is None:
            self._verify(msg)
        elif not check_vector(self._peer_keys, msg.node_id, self._index, self.n, msg.signature,
                              envelope_signing_bytes(msg)):
            raise InvalidMessage("bad_mac")

    def _slot(self, seq: int) -> Slot:
        slot = self._log.get(seq)
        if slot is None:
            slot = self._log[seq] = Slot()
        return slot

    def _sign(self, kind: int, view: int, seq: int, digest: bytes = b"",
              payload: bytes = b"") -> pb.PBFTMessage:
        return sign_envelope(self._signer, kind, view, seq, digest, payload)

    # ----------------------------------------------------------------- client requests

    def _on_request(self, msg: pb.PBFTMessage, out: Output, now: float,
                    parsed: pb.Request | None = None) -> None:
        p = self.params
        client = msg.node_id
        if not self._checker.knows_client(client):
            raise InvalidMessage("unknown_sender")
        if len(msg.payload) > p.max_operation_size + p.max_client_id_size + REQUEST_OVERHEAD:
            raise InvalidMessage("too_large")
        req = parsed if parsed is not None else parse_payload(pb.Request, msg.payload)
        if req.client_id != client or msg.digest != sha256(msg.payload):
            raise InvalidMessage("malformed")
        key = (client, req.timestamp)
        record = self._clients.get(client)
        if record is not None and req.timestamp <= record.timestamp:
            if req.timestamp < record.timestamp:
                raise InvalidMessage("stale_request")
            self._check_request(req, signature=False)
            if record.reply is None:
                record.reply = self._sign_reply(client, record.timestamp, record.result,
                                                record.sequence)
            out.replies.append(ClientReply(client, record.reply))
            out.metrics.append(Metric("request_duplicate"))
            return
        if key in self._pending:
            raise InvalidMessage("duplicate")
        # The request's own authentication covers every field of the envelope that matters
        # (the envelope digest is checked against the payload above). A backup takes its MAC
        # entry; the primary checks the signature of a signed request, since it vouches for
        # what it proposes (a MAC-only request has only the primary's own entry to check).
        signed = (self.is_primary and not self.view_changing) or not req.client_signature
        self._check_request(req, signature=signed)
        mine = self._client_pending.setdefault(client, set())
        if len(mine) >= p.max_pending_per_client:
            raise InvalidMessage("client_limit")
        if len(self._pending) >= p.max_pending_total:
            raise InvalidMessage("overload")
        mine.add(req.timestamp)
        self._pending[key] = _Pending(req, now, signed)
        self._unvetted = self._unvetted or not signed
        self._queue[key] = None
        self._propose(out, now)

    def _check_request(self, req: pb.Request, *, signature: bool) -> None:
        """Size, known client and authenticity: this replica's MAC entry unless `signature`
        demands the Ed25519 check (which is also the fallback for a missing or bad entry). A
        request without a signature (MAC-only) is authenticated by its MAC entry alone."""
        if not self._authentic(req, signature=signature):
            raise InvalidMessage("bad_client_signature")

    def _admissible(self, req: pb.Request) -> None:
        """What no authenticator can mend: size, an unknown or unauthorized client, a
        signature the cluster requires but the request lacks."""
        p = self.params
        if not self._checker.knows_client(req.client_id):
            raise InvalidMessage("unknown_client")
        if len(req.client_id) > p.max_client_id_size or len(req.operation) > p.max_operation_size:
            raise InvalidMessage("too_large")
        if self._authorize is not None and not self._authorize(req):
            raise InvalidMessage("forbidden")
        if not req.client_signature and p.client_signatures_required:
            raise InvalidMessage("unsigned_request")

    def _authentic(self, req: pb.Request, *, signature: bool) -> bool:
        """`_check_request` as a verdict: raises only where `_admissible` does."""
        self._admissible(req)
        if not req.client_signature:
            signature = False
        data = request_signing_bytes(req)
        if (not signature and self._pair_keys is not None
                and verify_entry(req, self._pair_keys, self._index, data)):
            return True
        return bool(req.client_signature) and self._checker.request(req, data)

    def _forget_pending(self, client: str, timestamp: int) -> None:
        mine = self._client_pending.get(client)
        if not mine:
            return
        for ts in [t for t in mine if t <= timestamp]:
            mine.discard(ts)
            self._pending.pop((client, ts), None)
            self._queue.pop((client, ts), None)
        if not mine:
            del self._client_pending[client]

    def _sign_reply(self, client: str, timestamp: int, result: bytes, seq: int) -> pb.PBFTMessage:
        body = pb.Reply(client_id=client, timestamp=timestamp, result=result, view=self.view)
        return self._sign(pb.REPLY, self.view, seq, reply_digest(client, timestamp, result),
                          body.SerializeToString(deterministic=True))

    def _parse_batch(self, payload: bytes, digest: bytes, *,
                     authenticate: bool = True) -> tuple[Batch, bool]:
        """The batch a PRE_PREPARE proposes, and whether this replica authenticated every one
        of its requests itself. `authenticate` is False for a batch that a prepared
        certificate (2f+1 replicas, so f+1 correct ones that vouched for every request) or
        this replica's own store vouches for: a backup may be unable to authenticate a request
        another backup took by its own MAC entry, and must still adopt the batch."""
        if sha256(payload) != digest:
            raise InvalidMessage("malformed", "batch digest mismatch")
        body = parse_payload(pb.PrePrepare, payload)
        if len(body.requests) > self.params.max_batch_size:
            raise InvalidMessage("too_large")
        keys: list[ClientKey] = []
        size = 0
        pending = self._pending
        vouched = True
        for req in body.requests:
            if authenticate:
                # A request the client also sent us directly was authenticated on arrival.
                known = pending.get((req.client_id, req.timestamp))
                if known is None or known.request != req:
                    if vouched:
                        vouched = self._authentic(req, signature=False)
                    else:  # the batch is held anyway: spare the signature checks
                        self._admissible(req)
            keys.append((req.client_id, req.timestamp))
            size += len(req.operation)
        if size > self.params.max_batch_bytes or len(set(keys)) != len(keys):
            raise InvalidMessage("malformed", "batch too large or with a repeated request")
        return Batch(digest, body.view, list(body.requests), keys), vouched

    # ----------------------------------------------------------------- normal case

    def _propose(self, out: Output, now: float) -> None:
        """Primary only: cut batches from the queue while the window has room."""
        if self.view_changing or not self.is_primary:
            return
        p = self.params
        while (self._queue and self._next_seq <= self.high_watermark
               and self._next_seq - self._last_executed <= p.max_inflight_batches):
            if p.max_batch_delay > 0 and len(self._queue) < p.max_batch_size:
                first = self._pending[next(iter(self._queue))].arrival
                if now - first < p.max_batch_delay:
                    return
            self._vet_pending(out)
            if not self._queue:
                return
            keys: list[ClientKey] = []
            size = 0
            for key in self._queue:
                op_len = len(self._pending[key].request.operation)
                if keys and (len(keys) >= p.max_batch_size or size + op_len > p.max_batch_bytes):
                    break
                keys.append(key)
                size += op_len
            requests = [self._pending[k].request for k in keys]
            payload = pb.PrePrepare(requests=requests, view=self.view).SerializeToString(
                deterministic=True)
            digest = sha256(payload)
            seq = self._next_seq
            self._next_seq += 1
            msg = self._sign(pb.PRE_PREPARE, self.view, seq, digest, payload)
            slot = self._slot(seq)
            batch = Batch(digest, self.view, requests, keys)
            slot.batches[digest] = batch
            slot.pre_prepares[digest] = msg
            out.send.append(Send(msg))
            out.metrics.append(Metric("batch_size", len(keys)))
            self._accept_pre_prepare(seq, slot, msg, batch, out)
            self._check_slot(seq, slot, out, now)

    def _vet_pending(self, out: Output) -> None:
        """Check the signature of every pending request this replica took by MAC alone, and
        drop the ones that fail (MAC-only requests have no signature and are left alone). Two
        moments need it. Before proposing: a primary proposes a signed request only once its
        signature checks, so a client cannot make backups refuse its batch with bad MAC
        entries for them. Before suspecting the primary: a client whose MACs are good but whose
        signature is not would otherwise make every backup wait for a request the primary
        rightly refused, and start a view change."""
        if not self._unvetted:
            return
        self._unvetted = False
        unsigned = [k for k, pending in self._pending.items() if not pending.signed]
        for key in unsigned:
            pending = self._pending[key]
            if self._checker.request(pending.request, request_signing_bytes(pending.request)):
                pending.signed = True
            else:
                self._drop(out, "bad_client_signature")
                self._discard_pending(key)

    def _discard_pending(self, key: ClientKey) -> None:
        self._queue.pop(key, None)
        self._pending.pop(key, None)
        mine = self._client_pending.get(key[0])
        if mine is not None:
            mine.discard(key[1])
            if not mine:
                del self._client_pending[key[0]]

    def _forget_mac_only(self) -> None:
        """When this replica suspects its primary, drop the pending MAC-only requests that were
        already pending at its previous view change; clients retransmit what they still wait
        for. A Byzantine client can make a request's entries right for this replica alone, so
        that no primary could ever get it prepared: kept, it would make this replica suspect
        every primary in turn. So each request rides through one view change (an honest one
        caught by a primary crash is ordered by the next primary without a retransmission)
        and a forged-looking one costs at most two (docs/benchmarks.md)."""
        unsigned = [k for k, p in self._pending.items() if not p.request.client_signature]
        for key in unsigned:
            if key in self._carried:
                self._discard_pending(key)
        self._carried = {k for k in unsigned if k in self._pending}

    def _accept_pre_prepare(self, seq: int, slot: Slot, msg: pb.PBFTMessage, batch: Batch,
                            out: Output) -> None:
        """Vote for `msg` in its view: persist it (and our PREPARE) before anything is sent."""
        view = msg.view
        slot.accepted[view] = msg
        for key in batch.keys:
            self._queue.pop(key, None)
        self._max_accepted = max(self._max_accepted, seq)
        out.persist.append(SaveMessage(msg))
        if self.committee.primary(view) == self.node_id:
            return
        prepare = self._sign(pb.PREPARE, view, seq, msg.digest)
        out.persist.append(SaveMessage(prepare))
        out.send.append(Send(prepare))
        slot.sent[(pb.PREPARE, view)] = prepare
        slot.add_prepare(view, self.node_id, prepare)

    def _on_pre_prepare(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        view, seq, digest = msg.view, msg.sequence, msg.digest
        if msg.node_id != self.committee.primary(view):
            raise InvalidMessage("wrong_sender")
        if not self._low < seq <= self.high_watermark:
            raise InvalidMessage("outside_watermarks")
        voting = view == self.view and not self.view_changing
        slot = self._log.get(seq)
        if seq <= self._last_executed and (not voting or slot is None or view in slot.accepted):
            raise InvalidMessage("late")
        conflicting = False
        if slot is not None:
            chosen = slot.accepted[view].digest if view in slot.accepted else slot.held.get(view)
            if voting and chosen is not None:
                if chosen == digest:
                    raise InvalidMessage("duplicate")
                # An equivocating primary: never vote twice, but keep the batch, which may be
                # the one the others committed (we learn that from their COMMITs).
                voting = conflicting = True
            if digest in slot.batches:
                raise InvalidMessage("duplicate")
            if not voting and len(slot.batches) >= MAX_FOREIGN_BATCHES:
                raise InvalidMessage("spam")
        self._verify(msg)
        batch, vouched = self._parse_batch(msg.payload, digest)
        if voting and batch.view != view:
            raise InvalidMessage("malformed", "fresh batch names another view")
        slot = self._slot(seq)
        slot.batches.setdefault(digest, batch)
        slot.pre_prepares.setdefault(digest, msg)
        if voting and not conflicting:
            if vouched:
                self._accept_pre_prepare(seq, slot, msg, batch, out)
            else:
                # A request whose MAC entry for us is wrong (a MAC-only client may garble some
                # entries): vote once f other backups did, see `_check_slot`.
                slot.held[view] = digest
                self._drop(out, "unauthenticated_request")  # our vote is held, not the batch
        self._check_slot(seq, slot, out, now)
        if conflicting:
            raise InvalidMessage("conflicting")

    def _on_prepare(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        view, seq, sender = msg.view, msg.sequence, msg.node_id
        if view != self.view:
            raise InvalidMessage("wrong_view")
        if sender == self.committee.primary(view):
            raise InvalidMessage("wrong_sender")
        if not self._low < seq <= self.high_watermark:
            raise InvalidMessage("outside_watermarks")
        if len(msg.digest) != DIGEST_SIZE or msg.payload:
            raise InvalidMessage("malformed")
        slot = self._log.get(seq)
        if seq <= self._last_executed and (slot is None or slot.prepared_view >= view):
            raise InvalidMessage("late")
        if slot is not None:
            if (slot.prepared_view >= view and view in slot.accepted
                    and slot.accepted[view].digest == msg.digest):
                # The certificate is built; a further matching vote would only cost a check.
                raise InvalidMessage("late")
            known = slot.prepare_votes.get((view, sender))
            if known is not None:
                if known == msg.digest:
                    raise InvalidMessage("duplicate")
                self._verify(msg)
                raise InvalidMessage("conflicting")
        self._verify(msg)
        slot = self._slot(seq)
        slot.add_prepare(view, sender, msg)
        self._check_slot(seq, slot, out, now)

    def _on_commit(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        view, seq, sender = msg.view, msg.sequence, msg.node_id
        if not self._low < seq <= self.high_watermark:
            raise InvalidMessage("outside_watermarks")
        if seq <= self._last_executed:
            raise InvalidMessage("late")
        if len(msg.digest) != DIGEST_SIZE or msg.payload:
            raise InvalidMessage("malformed")
        slot = self._log.get(seq)
        if slot is not None:
            known = slot.commit_votes.get((view, sender), [])
            if msg.digest in known:
                raise InvalidMessage("duplicate")
            if not slot.make_room_for_digest(view, sender, msg.digest, MAX_COMMITS_PER_VIEW):
                self._verify_vote(msg)
                raise InvalidMessage("conflicting")
        self._verify_vote(msg)
        slot = self._slot(seq)
        if not slot.make_room_for_commit(view, sender, MAX_COMMIT_VIEWS):
            raise InvalidMessage("spam")
        if (view, sender) in slot.commit_votes:
            out.metrics.append(Metric("equivocation", 1, sender))
        slot.add_commit(view, sender, msg)
        self._check_slot(seq, slot, out, now)

    def _check_slot(self, seq: int, slot: Slot, out: Output, now: float) -> None:
        view = self.view
        if slot.held and not self.view_changing and view in slot.held:
            self._release_held(seq, slot, out)
        if not self.view_changing and slot.prepared_view < view and view in slot.accepted:
            pre_prepare = slot.accepted[view]
            votes = slot.prepares.get((view, pre_prepare.digest), {})
            if len(votes) >= 2 * self.f:
                self._on_prepared(seq, slot, pre_prepare, votes, out)
        if slot.committed is None:
            for (_, digest), senders in slot.commits.items():
                if len(senders) >= self.committee.quorum and digest in slot.batches:
                    slot.committed = digest
                    break
        if slot.committed is not None and seq == self._last_executed + 1:
            self._execute_ready(out, now)

    def _release_held(self, seq: int, slot: Slot, out: Output) -> None:
        """Vote for a held PRE_PREPARE once f backups other than this one prepared it. With the
        primary that is f+1 replicas, so at least one correct replica vouches for every request
        in the batch: by its own MAC entry, or (by induction) by f+1 vouchers of its own. A
        forged request therefore never prepares, while a request whose entries are right for
        the primary and for f correct backups cannot stall a correct primary's batch."""
        view = self.view
        digest = slot.held[view]
        if view in slot.accepted:
            return
        if len(slot.prepares.get((view, digest), {})) < self.f:
            return
        del slot.held[view]
        self._accept_pre_prepare(seq, slot, slot.pre_prepares[digest], slot.batches[digest], out)

    def _commit_proof(self, slot: Slot) -> list[pb.PBFTMessage]:
        """The 2f+1 matching COMMITs that made the slot committed: relayed, they let a replica
        that lost some of them (or was lied to by an equivocator) commit too."""
        for (_, digest), senders in slot.commits.items():
            if digest == slot.committed and len(senders) >= self.committee.quorum:
                return list(senders.values())
        return []

    def _on_prepared(self, seq: int, slot: Slot, pre_prepare: pb.PBFTMessage,
                     votes: dict[str, pb.PBFTMessage], out: Output) -> None:
        view = pre_prepare.view
        senders = self.committee.ordered(votes)[: 2 * self.f]
        cert = pb.PreparedCertificate(pre_prepare=pre_prepare,
                                      prepares=[votes[s] for s in senders])
        slot.prepared_view = view
        slot.prepared_cert = cert
        commit = self._commit(view, seq, pre_prepare.digest)
        out.persist.append(SavePrepared(seq, cert))
        out.persist.append(SaveMessage(commit))
        out.send.append(Send(commit))
        slot.sent[(pb.COMMIT, view)] = commit
        slot.add_commit(view, self.node_id, commit)

    def _commit(self, view: int, seq: int, digest: bytes) -> pb.PBFTMessage:
        """This replica's COMMIT: its `signature` field holds the MAC vector with `peer_keys`."""
        if self._peer_keys is None:
            return self._sign(pb.COMMIT, view, seq, digest)
        msg = pb.PBFTMessage(type=pb.COMMIT, view=view, sequence=seq, digest=digest,
                             node_id=self.node_id)
        msg.signature = mac_vector(self._peer_keys, self.committee.nodes, self.node_id,
                                   msg.SerializeToString(deterministic=True))
        return msg

    # ----------------------------------------------------------------- execution

    def _execute_ready(self, out: Output, now: float) -> None:
        progressed = False
        while True:
            slot = self._log.get(self._last_executed + 1)
            if slot is None or slot.committed is None:
                break
            self._execute(self._last_executed + 1, slot.batches[slot.committed], out, now)
            slot.executed_at = now
            progressed = True
        if progressed:
            if not self.view_changing and self._request_deadline is not None:
                self._vc_timeout.progressed(now - self._request_armed)
            self._request_deadline = None
            self._note_progress(now)
            self._propose(out, now)

    def _execute(self, seq: int, batch: Batch, out: Output, now: float) -> None:
        results = []
        answered: list[tuple[str, int, bytes]] = []
        for req, (client, ts) in zip(batch.requests, batch.keys, strict=True):
            record = self._clients.get(client)
            if record is not None and ts <= record.timestamp:
                results.append(b"")
                continue
            result = self._app.execute(req.operation, client)
            answered.append((client, ts, result))
            self._clients[client] = _ClientRecord(ts, result, seq)
            self._forget_pending(client, ts)
            results.append(result)
        replies: Sequence[tuple[pb.PBFTMessage, pb.Reply | None]]
        if len(answered) == 1:
            client, ts, result = answered[0]
            replies = [(self._sign_reply(client, ts, result, seq), None)]
        else:
            replies = sign_batch_replies(self._signer, self.view, seq, answered)
        for (client, ts, _), (reply, body) in zip(answered, replies, strict=True):
            out.replies.append(ClientReply(client, reply, body))
            record = self._clients[client]
            if record.timestamp == ts:
                record.reply = reply
        block = make_block(seq, self._head_hash, batch.view, batch.requests, results)
        self._record_block(block, out, now, announce=True)

    def _replay_block(self, block: pb.Block) -> None:
        """Re-execute a certified block; its recorded results are what clients were told."""
        for req, result in zip(block.requests, block.results, strict=True):
            client, ts = req.client_id, req.timestamp
            record = self._clients.get(client)
            if record is not None and ts <= record.timestamp:
                continue
            self._app.execute(req.operation, client)
            self._clients[client] = _ClientRecord(ts, result, block.height)
            self._forget_pending(client, ts)

    def _record_block(self, block: pb.Block, out: Output, now: float, announce: bool) -> None:
        self._head_hash = block.hash
        self._last_executed = block.height
        out.persist.append(SaveBlock(block))
        out.committed.append(block)
        out.metrics.append(Metric("committed_height", block.height))
        if announce and block.height % self.params.checkpoint_interval == 0:
            msg = self._sign(pb.CHECKPOINT, self.view, block.height, block.hash,
                             pb.Checkpoint(height=block.height, state_digest=block.hash)
                             .SerializeToString(deterministic=True))
            self._checkpoints.add_own(msg, self._low)
            out.send.append(Send(msg))
            self._check_checkpoint(block.height, out, now)

    # ----------------------------------------------------------------- checkpoints

    def _on_checkpoint(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        if self._checkpoints.receive(msg, self._low, self.high_watermark, self._verify):
            self._check_checkpoint(msg.sequence, out, now)
            self._propose(out, now)
            return
        cert = self._checkpoints.far_certificate()
        if cert is not None:
            self._learn_ahead(cert, out, now)
        elif len(self._checkpoints.far) > self.f:
            self._transfer.fell_behind(self._last_executed, out, now)

    def _check_checkpoint(self, seq: int, out: Output, now: float) -> None:
        cert = self._checkpoints.certificate(seq)
        if cert is None:
            return
        if seq > self._last_executed:
            self._learn_ahead(cert, out, now)
        elif self._checkpoints.agrees(cert):
            self._stabilize(cert, out, now)
        else:
            out.metrics.append(Metric("checkpoint_mismatch", seq))

    def _stabilize(self, cert: pb.CheckpointCertificate, out: Output, now: float) -> None:
        """Adopt a stable checkpoint: the only place the watermarks move."""
        seq = cert.sequence
        if seq <= self._low:
            return
        self._low = seq
        if not self.view_changing:
            self._vc_timeout.checkpoint()
        out.persist.append(SaveCheckpoint(cert))
        out.metrics.append(Metric("checkpoint_stable", seq))
        self._log = {s: slot for s, slot in self._log.items() if s > seq}
        moved = self._checkpoints.stabilize(cert, self.high_watermark)
        self._transfer.stabilized(seq)
        self._next_seq = max(self._next_seq, seq + 1)
        for s in moved:
            if s > self._low:
                self._check_checkpoint(s, out, now)

    def _learn_ahead(self, cert: pb.CheckpointCertificate, out: Output, now: float) -> None:
        self._transfer.learn_ahead(cert, self._last_executed, out, now)

    # ----------------------------------------------------------------- view change

    def _start_view_change(self, target: int, out: Output, now: float) -> None:
        self.view = target
        self.view_changing = True
        self._vc_timeout.view_changed()
        self._forget_mac_only()
        self._request_deadline = None
        self._view_change.deadline = None
        self._max_accepted = 0
        prepared = {seq: (slot.prepared_view, slot.prepared_cert.pre_prepare.digest,
                          slot.prepared_cert.pre_prepare)
                    for seq, slot in sorted(self._log.items())
                    if seq > self._low and slot.prepared_cert is not None}
        stable = self._checkpoints.stable
        proof = list(stable.proof) if stable is not None else []
        digest = stable.state_digest if stable is not None else b""
        body = pb.ViewChange(
            stable_sequence=self._low,
            checkpoint_proof=proof,
            prepared=[cert for seq in prepared
                      if (cert := self._log[seq].prepared_cert) is not None],
        )
        msg = self._sign(pb.VIEW_CHANGE, target, self._low, digest,
                         body.SerializeToString(deterministic=True))
        out.persist.append(SaveView(target, True))
        out.persist.append(SaveMessage(msg))
        out.send.append(Send(msg))
        out.metrics.append(Metric("view_change", target))
        self._view_change.started(ParsedViewChange(
            msg, target, self.node_id, self._low, digest, tuple(proof), prepared))
        self._check_view_changes(out, now)

    def _on_view_change(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        if self._view_change.receive(msg, self.view, self.view_changing, out, now, self._verify):
            self._check_view_changes(out, now)

    def _check_view_changes(self, out: Output, now: float) -> None:
        changes = self._view_change
        joined = changes.joinable(self.view)
        if joined is not None:
            self._start_view_change(joined, out, now)
            return
        if not self.view_changing or not changes.has_quorum(self.view):
            return
        if changes.deadline is None:
            changes.deadline = now + self._timeout()
        if self.is_primary and changes.awaits_new_view(self.view):
            self._send_new_view(out, now)

    def _send_new_view(self, out: Output, now: float) -> None:
        chosen = self._view_change.quorum(self.view)
        plan = plan_new_view(self.view, chosen)
        pre_prepares = [self._sign(pb.PRE_PREPARE, self.view, seq, digest, payload)
                        for seq, payload, digest in plan.entries]
        body = pb.NewView(view_changes=[c.message for c in chosen], pre_prepares=pre_prepares)
        msg = self._sign(pb.NEW_VIEW, self.view, plan.low, b"",
                         body.SerializeToString(deterministic=True))
        out.send.append(Send(msg))
        batches = [self._batch_for(seq, payload, digest) if seq > self._low else None
                   for seq, payload, digest in plan.entries]
        self._enter_new_view(plan, pre_prepares, batches, msg, out, now)

    def _batch_for(self, seq: int, payload: bytes, digest: bytes) -> Batch:
        """A batch the new view re-issues: its prepared certificate vouches for it."""
        slot = self._log.get(seq)
        if slot is not None and digest in slot.batches:
            return slot.batches[digest]
        return self._parse_batch(payload, digest, authenticate=False)[0]

    def _on_new_view(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        plan, body = self._view_change.check_new_view(msg, self.view, self.view_changing,
                                                      self._verify)
        batches: list[Batch | None] = []
        for pp, (seq, _payload, digest) in zip(body.pre_prepares, plan.entries, strict=True):
            self._view_change.check_reissued(pp, msg, seq, digest)
            batches.append(self._batch_for(seq, pp.payload, digest) if seq > self._low else None)
        self._enter_new_view(plan, list(body.pre_prepares), batches, msg, out, now)

    def _enter_new_view(
        self,
        plan: NewViewPlan,
        pre_prepares: list[pb.PBFTMessage],
        batches: list[Batch | None],
        msg: pb.PBFTMessage,
        out: Output,
        now: float,
    ) -> None:
        view = plan.view
        self.view = view
        self.view_changing = False
        self._view_change.installed(msg)
        if self.is_primary:
            self._next_seq = max(plan.high, self._low, self._last_executed) + 1
        out.persist.append(SaveMessage(msg))  # kept through later views, to relay after a crash
        out.persist.append(SaveView(view, False))
        out.metrics.append(Metric("new_view", view))
        if plan.certificate is not None and plan.low > self._low:
            if plan.low > self._last_executed:
                self._learn_ahead(plan.certificate, out, now)
            elif self._checkpoints.agrees(plan.certificate):
                self._stabilize(plan.certificate, out, now)
        self._max_accepted = 0
        for pp, batch in zip(pre_prepares, batches, strict=True):
            if batch is None or pp.sequence <= self._low:
                continue
            slot = self._slot(pp.sequence)
            slot.batches.setdefault(pp.digest, batch)
            slot.pre_prepares.setdefault(pp.digest, pp)
            self._accept_pre_prepare(pp.sequence, slot, pp, batch, out)
        in_flight = {key for seq, slot in self._log.items() if seq > self._last_executed
                     and view in slot.accepted
                     for key in slot.batches[slot.accepted[view].digest].keys}
        self._queue = {key: None for key in self._pending if key not in in_flight}
        self._note_progress(now)
        for seq, slot in sorted(self._log.items()):
            if seq in self._log:
                self._check_slot(seq, slot, out, now)
        self._propose(out, now)

    # ----------------------------------------------------------------- retransmission

    def _note_progress(self, now: float) -> None:
        self._retransmit_every = self.params.retransmit_interval
        self._retransmit_at = now + self._retransmit_every

    def _retransmit(self, out: Output, now: float) -> None:
        """Re-send what this replica said about unfinished business, backing off while idle.

        PBFT assumes messages are eventually delivered; this is what makes that true over a
        lossy network: lost votes come again, and a replica that missed a batch gets the
        PRE_PREPARE relayed by anyone who has it. A sequence executed here goes only to the
        replicas that may lack it, those that never voted on it. Broadcasting every sequence
        since the last stable checkpoint put hundreds of messages ahead of a VIEW_CHANGE just
        when it had to go out.
        """
        self._retransmit_at = now + self._retransmit_every
        self._retransmit_every = min(self._retransmit_every * 2,
                                     self.params.max_retransmit_interval)
        sent = len(out.send)
        out.send.extend(Send(m) for _, m in sorted(self._view_change.own.items()))
        done_by = {n: self._checkpoints.checkpointed(n, self._low)
                   for n in self.committee.nodes if n != self.node_id}
        for seq, slot in sorted(self._log.items()):
            if seq <= self._last_executed:
                holders = slot.holders()
                for peer, done in done_by.items():
                    if peer not in holders and done < seq:
                        self._send_proof(slot, peer, out)
                continue
            digest = slot.committed
            if digest is None and self.view in slot.accepted:
                digest = slot.accepted[self.view].digest
            if digest is not None and digest in slot.pre_prepares:
                out.send.append(Send(slot.pre_prepares[digest]))
            out.send.extend(Send(m) for m in slot.sent.values())
            if slot.committed is not None:
                out.send.extend(Send(m) for m in self._commit_proof(slot)
                                if m.node_id != self.node_id)
        own_checkpoint = self._checkpoints.newest_own()
        if own_checkpoint is not None:
            out.send.append(Send(own_checkpoint))
        if len(out.send) > sent:
            out.metrics.append(Metric("retransmit", len(out.send) - sent))

    def _send_proof(self, slot: Slot, peer: str, out: Output) -> None:
        """What lets `peer` execute a sequence committed here: its batch and 2f+1 COMMITs."""
        if slot.committed is None:
            return
        if slot.committed in slot.pre_prepares:
            out.send.append(Send(slot.pre_prepares[slot.committed], to=peer))
        # Its own COMMIT too: it may have voted in another view, or lost the vote in a crash.
        out.send.extend(Send(m, to=peer) for m in self._commit_proof(slot))

    def _heard_late(self, msg: pb.PBFTMessage, out: Output, now: float) -> None:
        """A replica's own vote on a sequence executed here, sent by itself. The first one
        in a view tells that it holds the batch; the same vote again, long after execution,
        is its retransmission: it has not executed the sequence, nor anything after it, so it
        gets the proofs of all of them, at most once a retransmit interval. (A vote late only
        because the quorum formed without it, or a duplicate of it, comes right after the
        execution; a new view re-running executed sequences brings votes of another view.)"""
        peer, seq, key = msg.node_id, msg.sequence, (msg.view, msg.node_id)
        slot = self._log.get(seq)
        if (slot is None or seq > self._last_executed or peer == self.node_id
                or peer not in self.committee.nodes):
            return
        if msg.type == pb.PREPARE:
            again = slot.prepare_votes.get(key) == msg.digest
        else:
            again = msg.digest in slot.commit_votes.get(key, ())
        if not again and key not in slot.late_voters:
            if msg.digest == slot.committed:
                slot.late_voters.add(key)
            return
        if now - slot.executed_at < self.params.retransmit_interval / 2:
            return
        last = self._helped.get(peer)
        if last is not None and now - last < self.params.retransmit_interval:
            return
        self._helped[peer] = now
        sent = len(out.send)
        for done in range(seq, self._last_executed + 1):
            known = self._log.get(done)
            if known is not None:
                self._send_proof(known, peer, out)
        if len(out.send) > sent:
            out.metrics.append(Metric("retransmit", len(out.send) - sent))
