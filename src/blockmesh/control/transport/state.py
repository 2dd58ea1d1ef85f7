"""Answers to the state-transfer and submission calls, shared by both transports.

The content is self-authenticating (blocks are hash-chained, checkpoints carry 2f+1 signed
CHECKPOINT messages, requests are signed by their client), so nothing here checks the caller
again: but the log is not public, and each transport serves these calls only to callers whose
TLS certificate the cluster lists (a member or a client identity; tls.py). What this module
bounds is their size and how many run at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from blockmesh.control.proto import pbft_pb2 as pb
from blockmesh.control.transport.config import TransportConfig
from blockmesh.control.transport.interface import RequestHandler, StateProvider

log = logging.getLogger(__name__)

# Room left for the response's own fields and the checkpoints when packing blocks.
_RESPONSE_SLACK = 64 * 1024


def sync_state(
    provider: StateProvider | None, request: pb.SyncStateRequest, config: TransportConfig
) -> pb.SyncStateResponse:
    if provider is None:
        return pb.SyncStateResponse()
    wanted = request.max_blocks or config.sync_max_blocks
    limit = min(wanted, config.sync_max_blocks)
    checkpoints = provider.checkpoints()
    response = pb.SyncStateResponse(checkpoints=checkpoints, height=provider.status().height)
    budget = config.max_message_size - _RESPONSE_SLACK - response.ByteSize()
    blocks = provider.blocks_from_height(request.from_height, limit + 1)
    for block in blocks[:limit]:
        budget -= block.ByteSize() + 8
        if budget < 0:
            response.more = True
            return response
        response.blocks.append(block)
    response.more = len(blocks) > limit
    return response


def get_checkpoint(
    provider: StateProvider | None, request: pb.GetCheckpointRequest
) -> pb.GetCheckpointResponse:
    if provider is None:
        return pb.GetCheckpointResponse()
    if request.sequence == 0:
        kept = provider.checkpoints()
        found = max(kept, key=lambda c: c.sequence) if kept else None
    else:
        found = provider.checkpoint(request.sequence)
    if found is None:
        return pb.GetCheckpointResponse()
    return pb.GetCheckpointResponse(found=True, checkpoint=found)


def get_status(
    provider: StateProvider | None, node_id: str, peers: list[str]
) -> pb.GetStatusResponse:
    status = pb.GetStatusResponse() if provider is None else provider.status()
    status.node_id = node_id
    del status.peers[:]
    status.peers.extend(peers)
    return status


class _Once:
    """A Responder that delivers the first answer only and disarms its timeout."""

    __slots__ = ("_deliver", "_gate", "done", "timer")

    def __init__(self, gate: SubmitGate, deliver: Callable[[pb.SubmitRequestResponse], None]
                 ) -> None:
        self._gate = gate
        self._deliver = deliver
        self.done = False
        self.timer: asyncio.TimerHandle | None = None

    def __call__(self, response: pb.SubmitRequestResponse) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self._gate.pending -= 1
        self._deliver(response)


class SubmitGate:
    """Hands client requests to the request handler, bounding how many wait at once."""

    def __init__(self, node_id: str, config: TransportConfig) -> None:
        self._node_id = node_id
        self._config = config
        self.pending = 0
        self.handler: RequestHandler | None = None

    def submit(self, request: pb.PBFTMessage,
               deliver: Callable[[pb.SubmitRequestResponse], None]) -> None:
        """Pass `request` on; its answer (or a refusal, or a timeout) goes to `deliver` once."""
        handler = self.handler
        if request.type != pb.REQUEST:
            deliver(self._refuse("not a REQUEST message"))
            return
        if handler is None:
            deliver(self._refuse("this replica takes no requests"))
            return
        if self.pending >= self._config.max_pending_requests:
            deliver(self._refuse("too many pending requests"))
            return
        self.pending += 1
        respond = _Once(self, deliver)
        respond.timer = asyncio.get_running_loop().call_later(
            self._config.request_timeout, respond, self._refuse("request timed out"))
        try:
            handler(request, respond)
        except Exception as exc:
            log.exception("request handler failed")
            respond(self._refuse(f"request handler failed: {exc}"))

    async def submit_async(self, request: pb.PBFTMessage) -> pb.SubmitRequestResponse:
        """`submit` for callers that want to await the answer (a unary RPC)."""
        future: asyncio.Future[pb.SubmitRequestResponse] = (
            asyncio.get_running_loop().create_future())

        def deliver(response: pb.SubmitRequestResponse) -> None:
            if not future.done():
                future.set_result(response)

        self.submit(request, deliver)
        return await future

    def _refuse(self, why: str) -> pb.SubmitRequestResponse:
        return pb.SubmitRequestResponse(accepted=False, error=why, node_id=self._node_id)
