"""The VIEW_CHANGE messages a replica collects and the NEW_VIEW it installed last.

A replica that suspects its primary (or sees f+1 others ask for a later view) moves to view
v+1 and broadcasts a VIEW_CHANGE carrying its stable checkpoint and prepared certificates.
Once 2f+1 of them are in, the primary of v+1 sends NEW_VIEW, which re-issues what they prove
prepared (proofs.py computes that plan, so a backup can check it entry by entry).

This module owns those messages: the VIEW_CHANGEs received (a few newest views per sender),
this replica's own ones since the last installed view (retransmitted until a view forms: a
replica that gave up on view v still lets v form if the others only lack its vote for v), and
the NEW_VIEW of the last installed view. The engine decides when to start a view change and
what installing a view does to the log.

A replica keeps the NEW_VIEW of the last view it installed until it installs another, and
answers a VIEW_CHANGE for that view (or an older one) with it, even while it is changing to a
later view itself. Forgetting it on leaving the view cost liveness (simulation seeds 4249 and
8029): with one replica silent, a primary whose NEW_VIEW was lost timed out alone towards the
next view; the other two, short of a quorum for its view and of f+1 for the next, waited for
good.
"""

from __future__ import annotations

from collections.abc import Callable

from blockmesh.control.consensus.messages import SignatureChecker
from blockmesh.control.consensus.outputs import Output, Send
from blockmesh.control.consensus.params import PBFTParams
from blockmesh.control.consensus.proofs import (
    Committee,
    InvalidMessage,
    NewViewPlan,
    ParsedViewChange,
    parse_payload,
    parse_view_change,
    plan_new_view,
)
from blockmesh.control.proto import pbft_pb2 as pb

#: VIEW_CHANGEs kept per sender (its newest views); honest replicas rarely need more than two.
MAX_VIEW_CHANGES = 4


class ViewChanges:
    """VIEW_CHANGEs by sender and view, this replica's own, and the last installed NEW_VIEW."""

    def __init__(self, node_id: str, committee: Committee, checker: SignatureChecker,
                 params: PBFTParams) -> None:
        self._node_id = node_id
        self._committee = committee
        self._checker = checker
        self._params = params
        #: sender -> view -> its VIEW_CHANGE (a few newest views each, see MAX_VIEW_CHANGES)
        self.received: dict[str, dict[int, ParsedViewChange]] = {}
        #: Own VIEW_CHANGEs since the last installed view, all retransmitted.
        self.own: dict[int, pb.PBFTMessage] = {}
        #: The NEW_VIEW of the last view installed here, kept while changing to a later one.
        self.new_view: pb.PBFTMessage | None = None
        #: asker -> when it was last sent `new_view`.
        self._resent: dict[str, float] = {}
        #: When this replica gives up waiting for the NEW_VIEW of its view (None: not waiting).
        self.deadline: float | None = None

    def _parse(self, msg: pb.PBFTMessage) -> ParsedViewChange:
        return parse_view_change(msg, self._committee, self._checker,
                                 self._params.checkpoint_interval, self._params.log_window)

    def add(self, parsed: ParsedViewChange) -> None:
        known = self.received.setdefault(parsed.sender, {})
        known[parsed.view] = parsed
        while len(known) > MAX_VIEW_CHANGES:
            del known[min(known)]
        mine = self.own
        while len(mine) > MAX_VIEW_CHANGES:
            del mine[min(mine)]

    def started(self, parsed: ParsedViewChange) -> None:
        """This replica sent the VIEW_CHANGE `parsed` (built by itself, so not checked)."""
        self.own[parsed.view] = parsed.message
        self.add(parsed)

    def recovered(self, msg: pb.PBFTMessage) -> None:
        """This replica's own VIEW_CHANGE for the view it was changing to, from its store."""
        self.own[msg.view] = msg
        self.add(self._parse(msg))

    def receive(self, msg: pb.PBFTMessage, view: int, changing: bool, out: Output, now: float,
                verify: Callable[[pb.PBFTMessage], None]) -> bool:
        """Another replica's VIEW_CHANGE, this replica being in `view` (`changing` to it or
        not): True if recorded, False if answered with the NEW_VIEW the sender missed.
        Raises InvalidMessage to drop it."""
        target, sender = msg.view, msg.node_id
        if target < view or (target == view and not changing):
            # Also while this replica is changing to a later view: if it alone installed the
            # view the asker waits for, the asker can reach neither that view (its primary
            # moved on) nor ours (f+1 replicas must ask for it first) without this NEW_VIEW.
            if self.new_view is not None and target <= self.new_view.view:
                self._resend_new_view(msg, out, now, verify)
                return False
            raise InvalidMessage("wrong_view")
        known = self.received.get(sender, {})
        if target in known:
            raise InvalidMessage("duplicate")
        if len(known) >= MAX_VIEW_CHANGES and target < min(known):
            raise InvalidMessage("wrong_view")
        try:
            parsed = self._parse(msg)
        except InvalidMessage as exc:
            raise InvalidMessage(exc.reason if exc.reason == "bad_signature" else "invalid_proof",
                                 str(exc)) from None
        self.add(parsed)
        return True

    def _resend_new_view(self, msg: pb.PBFTMessage, out: Output, now: float,
                         verify: Callable[[pb.PBFTMessage], None]) -> None:
        """A replica still asking for a view we installed missed the NEW_VIEW that installed it;
        relaying it (the primary's signature travels with it) lets that replica catch up."""
        last = self._resent.get(msg.node_id)
        if last is not None and now - last < self._params.retransmit_interval:
            raise InvalidMessage("duplicate")
        verify(msg)
        self._resent[msg.node_id] = now
        assert self.new_view is not None
        out.send.append(Send(self.new_view, to=msg.node_id))

    def joinable(self, view: int) -> int | None:
        """The lowest of the newest views f+1 replicas ask for beyond `view`, if they do."""
        higher = [max(views) for views in self.received.values() if max(views) > view]
        if len(higher) > self._committee.f:
            return min(higher)
        return None

    def has_quorum(self, view: int) -> bool:
        """2f+1 replicas (this one included, if it asked) sent a VIEW_CHANGE for `view`."""
        same = [s for s, views in self.received.items() if view in views]
        return len(same) >= self._committee.quorum

    def awaits_new_view(self, view: int) -> bool:
        """No NEW_VIEW for `view` was installed (or sent) here yet."""
        return self.new_view is None or self.new_view.view < view

    def quorum(self, view: int) -> list[ParsedViewChange]:
        """The 2f+1 VIEW_CHANGEs for `view` a new primary puts in its NEW_VIEW: its own first,
        then the others' in committee order."""
        others = [s for s in self._committee.ordered(self.received)
                  if s != self._node_id and view in self.received[s]]
        return [self.received[s][view] for s in [self._node_id, *others][: self._committee.quorum]]

    def check_new_view(self, msg: pb.PBFTMessage, view: int, changing: bool,
                       verify: Callable[[pb.PBFTMessage], None]) -> tuple[NewViewPlan, pb.NewView]:
        """A NEW_VIEW's sender, signature and 2f+1 VIEW_CHANGEs, this replica being in `view`:
        the plan they imply and the message body, whose PRE_PREPAREs `check_reissued` checks
        against the plan's entries. Raises InvalidMessage to drop it."""
        target = msg.view
        if msg.node_id != self._committee.primary(target):
            raise InvalidMessage("wrong_sender")
        if target < view:
            raise InvalidMessage("wrong_view")
        if target == view and not changing:
            raise InvalidMessage("duplicate")
        verify(msg)
        body = parse_payload(pb.NewView, msg.payload)
        changes: list[ParsedViewChange] = []
        senders: set[str] = set()
        for vc in body.view_changes:
            if (vc.type != pb.VIEW_CHANGE or vc.view != target or vc.node_id in senders
                    or not self._checker.knows_replica(vc.node_id)):
                raise InvalidMessage("invalid_proof", "foreign view change in new view")
            try:
                changes.append(self._parse(vc))
            except InvalidMessage as exc:
                raise InvalidMessage("invalid_proof", str(exc)) from None
            senders.add(vc.node_id)
        if len(senders) < self._committee.quorum:
            raise InvalidMessage("invalid_proof", "new view without a quorum of view changes")
        plan = plan_new_view(target, changes)
        if len(body.pre_prepares) != len(plan.entries) or msg.sequence != plan.low:
            raise InvalidMessage("invalid_proof", "new view re-issues the wrong sequences")
        return plan, body

    def check_reissued(self, pp: pb.PBFTMessage, msg: pb.PBFTMessage, seq: int,
                       digest: bytes) -> None:
        """A PRE_PREPARE of NEW_VIEW `msg` must re-issue the plan's entry (`seq`, `digest`)."""
        if (pp.type != pb.PRE_PREPARE or pp.node_id != msg.node_id or pp.view != msg.view
                or pp.sequence != seq or pp.digest != digest):
            raise InvalidMessage("invalid_proof", f"new view pre-prepare for {seq} differs")
        if not self._checker.envelope(pp):
            raise InvalidMessage("invalid_proof", "new view pre-prepare signature")

    def installed(self, msg: pb.PBFTMessage) -> None:
        """NEW_VIEW `msg` installed its view here: forget what led to it."""
        view = msg.view
        self.deadline = None
        self.own = {}
        self.new_view = msg
        self._resent = {}
        self.received = {
            s: later for s, views in self.received.items()
            if (later := {v: p for v, p in views.items() if v > view})}
