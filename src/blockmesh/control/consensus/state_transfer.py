"""When a replica that fell behind fetches blocks instead of waiting for the log, and which
fetched blocks it may adopt.

A replica learns it is behind from checkpoints (checkpoints.py): a certificate for a sequence
it has not executed names a target, and f+1 replicas checkpointing beyond its window say it
is behind by an amount nobody proved yet. A target close ahead is left a little while
(`state_transfer_delay`) to the ordinary log, which usually gets there first; otherwise the
engine asks its runtime for blocks (`FetchState`), one request at a time, again after
`state_fetch_timeout` if no answer came.

An answer is trusted only through a checkpoint certificate: 2f+1 valid signatures on the hash
of a fetched block, which vouches for every block the hash chain links to it. The runtime may
ask any peer, a faulty one included, so nothing else in the answer counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from blockmesh.control.consensus.blocks import ChainError, verify_chain
from blockmesh.control.consensus.messages import SignatureChecker
from blockmesh.control.consensus.outputs import FetchState, Metric, Output
from blockmesh.control.consensus.params import PBFTParams
from blockmesh.control.consensus.proofs import Committee, InvalidMessage, check_certificate
from blockmesh.control.proto import pbft_pb2 as pb


class StateTransfer:
    """The transfer target, since when this replica is behind, and the fetch in flight."""

    def __init__(self, params: PBFTParams) -> None:
        self._params = params
        #: The highest certified checkpoint above what this replica executed.
        self.target: pb.CheckpointCertificate | None = None
        #: When this replica learnt it is behind (None while it is not).
        self.behind_since: float | None = None
        #: f+1 replicas checkpointed beyond the window, with no certificate among them.
        self.behind_unknown = False
        #: When the FetchState in flight is given up on (None: none in flight).
        self.fetch_deadline: float | None = None

    def next_deadline(self) -> float | None:
        """The earliest time `maybe_fetch` may have something to do."""
        if self.fetch_deadline is not None:
            return self.fetch_deadline
        if self.behind_since is not None:
            return self.behind_since + self._params.state_transfer_delay
        return None

    def expire(self, now: float) -> None:
        """Give up on a fetch unanswered past its deadline, so that the next can go out."""
        if self.fetch_deadline is not None and now >= self.fetch_deadline:
            self.fetch_deadline = None

    def learn_ahead(self, cert: pb.CheckpointCertificate, executed: int, out: Output,
                    now: float) -> None:
        """A certified checkpoint above `executed`, the height this replica reached."""
        if self.target is None or cert.sequence > self.target.sequence:
            self.target = cert
        if self.behind_since is None:
            self.behind_since = now
        self.maybe_fetch(executed, out, now)

    def fell_behind(self, executed: int, out: Output, now: float) -> None:
        """f+1 replicas checkpointed beyond the window, without a certificate among them."""
        self.behind_unknown = True
        if self.behind_since is None:
            self.behind_since = now
        self.maybe_fetch(executed, out, now)

    def stabilized(self, seq: int) -> None:
        """A checkpoint at `seq` became stable here: a target up to it is reached."""
        if self.target is not None and self.target.sequence <= seq:
            self.target = None
        if self.target is None and not self.behind_unknown:
            self.behind_since = None

    def maybe_fetch(self, executed: int, out: Output, now: float) -> None:
        """Ask for blocks above `executed` if this replica is behind and no fetch is in flight."""
        target = self.target
        if target is not None and target.sequence <= executed:
            self.target = target = None
        if target is None and not self.behind_unknown:
            self.behind_since = None
            return
        if self.fetch_deadline is not None or out.fetch is not None:
            return
        since = self.behind_since if self.behind_since is not None else now
        if (target is not None
                and target.sequence - executed < self._params.checkpoint_interval
                and now - since < self._params.state_transfer_delay):
            return
        out.fetch = FetchState(executed + 1, target.sequence if target else 0, target)
        out.metrics.append(Metric("state_fetch"))
        self.fetch_deadline = now + self._params.state_fetch_timeout

    def fetched(
        self,
        blocks: Sequence[pb.Block],
        certificates: Iterable[pb.CheckpointCertificate],
        executed: int,
        head_hash: bytes,
        committee: Committee,
        checker: SignatureChecker,
        drop: Callable[[Output, str], None],
        out: Output,
        now: float,
    ) -> tuple[list[pb.Block], pb.CheckpointCertificate] | None:
        """The answer to a FetchState: the blocks to adopt (in height order, above `executed`
        whose hash is `head_hash`) and the certificate of the last of them, or None, after
        `drop` said why, if nothing in the answer is vouched for."""
        self.fetch_deadline = None
        certs: list[pb.CheckpointCertificate] = []
        if self.target is not None:
            certs.append(self.target)
        for cert in certificates:
            try:
                check_certificate(cert, committee, checker, self._params.checkpoint_interval)
            except InvalidMessage:
                drop(out, "invalid_proof")
                continue
            certs.append(cert)
        fresh = [b for b in blocks if b.height > executed]
        try:
            verify_chain(fresh, executed, head_hash)
        except ChainError:
            drop(out, "bad_state")
            self.maybe_fetch(executed, out, now)
            return None
        by_height = {b.height: b for b in fresh}
        usable = [c for c in certs
                  if c.sequence in by_height and by_height[c.sequence].hash == c.state_digest]
        if not usable:
            drop(out, "unverified_state")
            self.fetch_deadline = now + self._params.state_fetch_timeout
            return None
        best = max(usable, key=lambda c: c.sequence)
        adopted = []
        for block in fresh:
            if block.height > best.sequence:
                break
            adopted.append(block)
        return adopted, best
