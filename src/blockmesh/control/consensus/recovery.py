"""How a replica restarted from its store becomes again the replica it was before the crash.

The runtime writes what an engine step asks it to persist before it sends anything
(outputs.py), so the store holds every vote this replica may have sent. Rebuilding from it
keeps the replica from contradicting itself after a restart: it replays the certified blocks
through the application, signs its CHECKPOINTs again, reloads its own PRE_PREPAREs, PREPAREs
and COMMITs (to retransmit them verbatim), its prepared certificates (for the next
VIEW_CHANGE), its VIEW_CHANGE if it was changing view and the last NEW_VIEW it installed (to
relay to a replica that missed it).

These are functions of the replica rather than a phase object: recovery writes the engine's
own state (log, watermarks, view, next sequence) and runs once, before the first input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blockmesh.control.consensus.blocks import verify_chain
from blockmesh.control.consensus.proofs import InvalidMessage
from blockmesh.control.consensus.store import RecoveredState
from blockmesh.control.proto import pbft_pb2 as pb

if TYPE_CHECKING:
    from blockmesh.control.consensus.engine import PBFTReplica


def recover(replica: PBFTReplica, state: RecoveredState) -> None:
    """Rebuild `replica` (just constructed) from the store: replay blocks, then reload its own
    votes. Raises InvalidMessage if the store contradicts itself."""
    interval = replica.params.checkpoint_interval
    if state.checkpoint is not None:
        replica._checkpoints.stable = state.checkpoint
        replica._low = state.checkpoint.sequence
    hashes: dict[int, bytes] = {}
    for block in state.blocks:
        verify_chain([block], replica._last_executed, replica._head_hash)
        replica._replay_block(block)
        replica._head_hash = block.hash
        replica._last_executed = block.height
        if block.height >= replica._low and block.height % interval == 0:
            hashes[block.height] = block.hash
    if replica._last_executed < replica._low:
        raise InvalidMessage("malformed", "store has a stable checkpoint above its blocks")
    for seq, digest in hashes.items():
        body = pb.Checkpoint(height=seq, state_digest=digest)
        msg = replica._sign(pb.CHECKPOINT, state.view, seq, digest,
                            body.SerializeToString(deterministic=True))
        replica._checkpoints.add_own(msg, replica._low)
    replica.view = state.view
    replica.view_changing = state.view_changing
    for msg in state.messages:
        _recover_message(replica, msg)
    for seq, cert in state.prepared:
        if seq <= replica._low:
            continue
        slot = replica._slot(seq)
        pp = cert.pre_prepare
        slot.batches.setdefault(pp.digest, replica._parse_batch(pp.payload, pp.digest,
                                                                authenticate=False)[0])
        slot.pre_prepares.setdefault(pp.digest, pp)
        if pp.view > slot.prepared_view:
            slot.prepared_view = pp.view
            slot.prepared_cert = cert
    accepted_now = [seq for seq, slot in replica._log.items() if replica.view in slot.accepted]
    replica._max_accepted = max(accepted_now, default=0)
    replica._next_seq = max(replica._max_accepted, replica._low, replica._last_executed) + 1


def _recover_message(replica: PBFTReplica, msg: pb.PBFTMessage) -> None:
    """One message from the store: a vote this replica sent, a PRE_PREPARE it accepted, its
    VIEW_CHANGE or a NEW_VIEW it installed."""
    kind, view, seq = msg.type, msg.view, msg.sequence
    if kind in (pb.PRE_PREPARE, pb.PREPARE, pb.COMMIT) and seq <= replica._low:
        return
    if kind == pb.PRE_PREPARE:
        slot = replica._slot(seq)
        slot.batches.setdefault(msg.digest, replica._parse_batch(msg.payload, msg.digest,
                                                                 authenticate=False)[0])
        slot.pre_prepares.setdefault(msg.digest, msg)
        slot.accepted[view] = msg
    elif kind == pb.PREPARE:
        slot = replica._slot(seq)
        slot.sent[(kind, view)] = msg
        slot.add_prepare(view, replica.node_id, msg)
    elif kind == pb.COMMIT:
        slot = replica._slot(seq)
        slot.sent[(kind, view)] = msg
        slot.add_commit(view, replica.node_id, msg)
    elif kind == pb.VIEW_CHANGE and view == replica.view and replica.view_changing:
        replica._view_change.recovered(msg)
    elif kind == pb.NEW_VIEW and view <= replica.view:
        last = replica._view_change.new_view
        if last is None or view > last.view:
            replica._view_change.new_view = msg
