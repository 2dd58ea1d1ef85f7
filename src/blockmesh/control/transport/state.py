"""Answers to the state-transfer and submission calls, shared by both transports.

The content is self-authenticating (blocks are hash-chained, checkpoints carry 2f+1 signed
CHECKPOINT messages, requests are signed by their client), so these calls are served to any
caller; what a transport must bound is their size and how many run at once.
"""

from __future__ import annotations

import asyncio
import logging

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


class SubmitGate:
    """Hands client requests to the request handler, bounding how many wait at once."""

    def __init__(self, node_id: str, config: TransportConfig) -> None:
        self._node_id = node_id
        self._config = config
        self._pending = 0
        self.handler: RequestHandler | None = None

    async def submit(self, request: pb.PBFTMessage) -> pb.SubmitRequestResponse:
        handler = self.handler
        if request.type != pb.REQUEST:
            return self._refuse("not a REQUEST message")
        if handler is None:
            return self._refuse("this replica takes no requests")
        if self._pending >= self._config.max_pending_requests:
            return self._refuse("too many pending requests")
        self._pending += 1
        try:
            async with asyncio.timeout(self._config.request_timeout):
                return await handler(request)
        except TimeoutError:
            return self._refuse("request timed out")
        except Exception as exc:
            log.exception("request handler failed")
            return self._refuse(f"request handler failed: {exc}")
        finally:
            self._pending -= 1

    def _refuse(self, why: str) -> pb.SubmitRequestResponse:
        return pb.SubmitRequestResponse(accepted=False, error=why, node_id=self._node_id)
